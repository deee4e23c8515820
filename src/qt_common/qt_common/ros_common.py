"""Small rclpy helpers shared by every node package (QoS profiles, stamps, ArmAction messages).

Why here: the sim driver, the teleop nodes (keyboard, joy), the evaluators and the collectors all
publish ``qt_msgs/ArmAction`` the same way, and the teleop package must not depend on the
simulator. Importing this module loads rclpy and qt_msgs, so only ROS processes import it; the
trainer never does (qt_common's other modules stay numpy-only).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

from qt_common.action_spec import ActionSpec


def reliable(depth: int, latched: bool = False) -> QoSProfile:
    """Reliable QoS of ``depth``; ``latched`` adds transient-local durability (late joiners get it)."""
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)


def action_fields(spec: ActionSpec, normalized: Sequence[float]) -> tuple[list[str], list[float], list[int]]:
    """(dimension_names, values, bins) of a qt_msgs/ArmAction for a normalised action."""
    values = spec.normalized_to_values(np.asarray(normalized, dtype=np.float64))
    return spec.names, [float(v) for v in values], [int(b) for b in spec.values_to_bins(values)]


def arm_action(spec: ActionSpec, normalized: Sequence[float], stamp: Any, frame_id: str,
               source: int | None = None) -> Any:
    """A qt_msgs/ArmAction (values + bins) for a normalised action; ``source`` defaults to EXPERT.

    The expert stamps it with the frame it decided on (lockstep and the converter pair by it);
    teleop devices stamp it with the time they sent it.
    """
    from qt_msgs.msg import ArmAction

    names, values, bins = action_fields(spec, normalized)
    msg = ArmAction(dimension_names=names, values=values, bins=bins, num_bins=spec.num_bins,
                    source=ArmAction.SOURCE_EXPERT if source is None else source)
    msg.header.stamp, msg.header.frame_id = stamp, frame_id
    return msg


def spin_until(spin: Callable[[], None], predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Call ``spin`` (one executor turn) until ``predicate`` holds; TimeoutError naming ``what``."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: not within {timeout:g} s")
        spin()
