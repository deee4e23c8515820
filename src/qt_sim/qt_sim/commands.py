"""Validation and conversion of incoming arm commands (plain Python; the node only unpacks msgs).

Three command forms reach the driver and all end up as physical action values per control step:

* ``qt_msgs/ArmAction``: ``dimension_names`` must equal the action spec's names exactly, and
  ``values`` (physical units per control step) must hold one finite number per dimension. The
  ``bins`` field is not executed: values are the command, bins are their discretised record.
* ``geometry_msgs/TwistStamped`` (MoveIt Servo convention): a velocity in m/s and rad/s in
  ``base_link`` (or an empty frame id); multiplied by the control period it becomes a delta per
  step. Only ``angular.z`` maps onto the arm (its gripper always points down); ``angular.x/y``
  are ignored.
* ``std_msgs/Float64`` gripper command in [-1 (close), 1 (open)], the same meaning as the
  ``gripper`` action dimension.

Anything else is a :class:`CommandRejected` naming the field and what was expected; callers log
it and never execute it. Values outside the spec's range are clipped (the spec is a hard limit).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from qt_common.action_spec import ActionSpec

ACCEPTED_FRAMES = ("", "base_link")


class CommandRejected(ValueError):
    """An incoming command that must not be executed; the message says why."""


def arm_action_values(
    spec: ActionSpec, names: Sequence[str], values: Sequence[float], frame_id: str = ""
) -> np.ndarray:
    """Checked, clipped physical values of an ArmAction."""
    names = list(names)
    if names != spec.names:
        raise CommandRejected(f"ArmAction.dimension_names: expected {spec.names}, got {names}")
    vals = np.asarray(list(values), dtype=np.float64)
    if vals.shape != (spec.num_dims,):
        raise CommandRejected(f"ArmAction.values: expected {spec.num_dims} numbers, got {vals.size}")
    if not np.isfinite(vals).all():
        raise CommandRejected(f"ArmAction.values: expected finite numbers, got {vals.tolist()}")
    _check_frame("ArmAction.header.frame_id", frame_id)
    return spec.clip(vals)


def twist_values(
    spec: ActionSpec, linear: Sequence[float], angular_z: float, period_s: float, frame_id: str = ""
) -> np.ndarray:
    """dx dy dz dyaw per control step from a twist (velocity), clipped to the spec."""
    vec = np.array([*linear, angular_z], dtype=np.float64)
    if vec.shape != (4,) or not np.isfinite(vec).all():
        raise CommandRejected(f"TwistStamped: expected finite linear.x/y/z and angular.z, got {vec.tolist()}")
    _check_frame("TwistStamped.header.frame_id", frame_id)
    return np.clip(vec * period_s, spec.low[:4], spec.high[:4])


def gripper_value(spec: ActionSpec, value: float) -> float:
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        raise CommandRejected(f"gripper command: expected a finite number in [-1, 1], got {value!r}")
    return float(np.clip(value, spec.low[4], spec.high[4]))


def _check_frame(field: str, frame_id: str) -> None:
    if frame_id not in ACCEPTED_FRAMES:
        raise CommandRejected(f"{field}: expected one of {list(ACCEPTED_FRAMES)}, got {frame_id!r}")
