"""Proprioception input for models trained with it: the layout the card names, from live messages.

The card's ``proprio_layout`` (qt_common.proprio; legacy cards only give ``proprio_dim``: 7 is
``ee_pose``) says which vector the model was trained on. The node rebuilds exactly that vector
with qt_common.proprio's functions, the ones ``qt convert`` used on the bags:

* ``ee_pose``: /ee_pose (geometry_msgs/PoseStamped) position x y z + quaternion x y z w.
* ``ee_yaw_gripper``: /ee_pose position, sin/cos of the gripper yaw, and the finger opening from
  the finger joints of /joint_states (sensor_msgs/JointState; names and travel are parameters).

A card naming any other layout is refused at configure rather than fed a guess. Values go in
raw: the exported graph standardises them with the training data's statistics.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from qt_common import proprio as layouts

SUPPORTED = ("ee_pose", "ee_yaw_gripper")


def card_layout(card: dict[str, Any]) -> str:
    """The layout a card names (``none`` without proprio); a ValueError naming the field otherwise."""
    dim = int(card.get("proprio_dim", 0))
    name = str(card.get("proprio_layout") or layouts.layout_for_dim(dim))
    if name == "none" and dim == 0:
        return name
    if name not in SUPPORTED or layouts.LAYOUTS[name].dim != dim:
        raise ValueError(
            f"policy.json field 'proprio_layout' is {name!r} with proprio_dim {dim}: the node builds "
            f"{ {n: layouts.LAYOUTS[n].dim for n in SUPPORTED} } or none"
        )
    return name


class ProprioAssembler:
    """Keeps the newest pose (and finger positions) and writes the layout's vector into ``out``."""

    def __init__(self, layout: str, out: np.ndarray, finger_joints: Sequence[str] = layouts.DEFAULT_FINGER_JOINTS,
                 finger_travel_m: float = layouts.DEFAULT_FINGER_TRAVEL_M):
        self.layout = layouts.layout(layout)
        self.out = out
        self.finger_joints = tuple(finger_joints)
        self.finger_travel_m = float(finger_travel_m)
        self._pose: tuple[np.ndarray, np.ndarray] | None = None  # xyz, quaternion w x y z
        self._fingers: np.ndarray | None = None

    @property
    def needs_joint_states(self) -> bool:
        return self.layout.needs_joint_states

    @property
    def ready(self) -> bool:
        """Every input of the layout has arrived (``out`` holds a whole vector)."""
        return self._pose is not None and (self._fingers is not None or not self.needs_joint_states)

    def pose(self, msg: Any) -> bool:
        """A PoseStamped; False (nothing changes) when not finite."""
        p, q = msg.pose.position, msg.pose.orientation
        xyz, quat = np.array([p.x, p.y, p.z]), np.array([q.w, q.x, q.y, q.z])
        if not (np.isfinite(xyz).all() and np.isfinite(quat).all()):
            return False
        self._pose = (xyz, quat)
        self._write()
        return True

    def joints(self, msg: Any) -> bool:
        """A JointState; False (nothing changes) when a finger joint is missing or not finite."""
        names = list(msg.name)
        try:
            fingers = np.array([msg.position[names.index(j)] for j in self.finger_joints], dtype=np.float64)
        except (ValueError, IndexError):
            return False
        if not np.isfinite(fingers).all():
            return False
        self._fingers = fingers
        self._write()
        return True

    def set_state(self, xyz: Sequence[float], quat_wxyz: Sequence[float], fingers: Sequence[float] | None) -> None:
        """In-process evaluation: the same vector from the simulator's state."""
        self._pose = (np.asarray(xyz, np.float64), np.asarray(quat_wxyz, np.float64))
        self._fingers = None if fingers is None else np.asarray(fingers, np.float64)
        self._write()

    def _write(self) -> None:
        if self.ready:
            assert self._pose is not None
            self.out[:] = layouts.build(self.layout.name, self._pose[0], self._pose[1], self._fingers,
                                        self.finger_travel_m)
