"""Proprioception layouts: the named vectors a policy may take besides the image (numpy only).

Why named layouts: a model is trained on one exact vector, and the robot side must rebuild that
vector from its topics. The dataset and the policy card name the layout (``proprio_layout``);
the converter builds it from the bag and the policy node builds it from live messages with
the same functions from this module, and refuses a card whose layout it does not know.

* ``ee_yaw_gripper`` (6, the default): end-effector x y z (m, base frame), sin and cos of the
  gripper yaw about the vertical axis (never wraps), measured finger opening 0 closed .. 1 open.
  From ``/ee_pose`` (geometry_msgs/PoseStamped) and the finger joints of ``/joint_states``.
  The opening is what tells a learner whether the fingers have closed on the cube.
* ``ee_pose`` (7, legacy): position x y z and orientation quaternion x y z w of ``/ee_pose``.
* ``none`` (0): image and instruction only.

The policy graph standardises the vector itself (statistics of the training data are stored in
the model and the card), so producers feed raw values.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import transforms3d

DEFAULT_LAYOUT = "ee_yaw_gripper"
# The simulated arm's finger joints (qt_sim.arm); a real gripper sets its own names and travel.
DEFAULT_FINGER_JOINTS = ("finger_left", "finger_right")
DEFAULT_FINGER_TRAVEL_M = 0.04


@dataclass(frozen=True)
class ProprioLayout:
    name: str
    names: tuple[str, ...]
    needs_joint_states: bool
    description: str

    @property
    def dim(self) -> int:
        return len(self.names)


LAYOUTS: dict[str, ProprioLayout] = {
    "none": ProprioLayout("none", (), False, "no proprioception"),
    "ee_yaw_gripper": ProprioLayout(
        "ee_yaw_gripper", ("ee_x", "ee_y", "ee_z", "sin_yaw", "cos_yaw", "gripper"), True,
        "end-effector xyz, sin/cos yaw (from /ee_pose) and finger opening 0..1 (from /joint_states)"),
    "ee_pose": ProprioLayout(
        "ee_pose", ("x", "y", "z", "qx", "qy", "qz", "qw"), False,
        "position x y z, orientation x y z w from geometry_msgs/PoseStamped"),
}


def layout(name: str) -> ProprioLayout:
    """The layout called ``name``; a clear error naming the known ones otherwise."""
    if name not in LAYOUTS:
        raise ValueError(f"proprio_layout: unknown layout {name!r}; known: {sorted(LAYOUTS)}")
    return LAYOUTS[name]


def layout_for_dim(dim: int) -> str:
    """Legacy datasets and cards name only a size: 0 -> none, 7 -> ee_pose, 6 -> ee_yaw_gripper;
    any other size is ``unnamed_<dim>`` (a dataset may carry it; the policy node refuses it)."""
    for item in LAYOUTS.values():
        if item.dim == dim:
            return item.name
    return f"unnamed_{dim}"


def yaw_from_quaternion(quat_wxyz: Sequence[float]) -> float:
    """Yaw of a frame whose z axis points down (the gripper frame): angle of its x axis in xy."""
    matrix = transforms3d.quaternions.quat2mat(np.asarray(quat_wxyz, dtype=np.float64))
    return math.atan2(matrix[1, 0], matrix[0, 0])


def gripper_opening(finger_positions: Sequence[float], travel_m: float = DEFAULT_FINGER_TRAVEL_M) -> float:
    """Mean finger position as a fraction of the travel, clipped to [0, 1]."""
    return float(np.clip(np.mean(np.asarray(finger_positions, dtype=np.float64)) / travel_m, 0.0, 1.0))


def ee_yaw_gripper(position_xyz: Sequence[float], yaw: float, opening: float) -> np.ndarray:
    x, y, z = (float(v) for v in position_xyz)
    return np.array([x, y, z, math.sin(yaw), math.cos(yaw), opening], dtype=np.float32)


def ee_pose(position_xyz: Sequence[float], quat_wxyz: Sequence[float]) -> np.ndarray:
    w, qx, qy, qz = (float(v) for v in quat_wxyz)
    x, y, z = (float(v) for v in position_xyz)
    return np.array([x, y, z, qx, qy, qz, w], dtype=np.float32)


def build(name: str, position_xyz: Sequence[float], quat_wxyz: Sequence[float],
          finger_positions: Sequence[float] | None = None,
          finger_travel_m: float = DEFAULT_FINGER_TRAVEL_M) -> np.ndarray:
    """The layout's vector from an end-effector pose (w-first quaternion) and finger positions."""
    if name == "ee_pose":
        return ee_pose(position_xyz, quat_wxyz)
    if name == "ee_yaw_gripper":
        if finger_positions is None or len(finger_positions) == 0:
            raise ValueError("proprio ee_yaw_gripper: needs the finger joint positions (/joint_states)")
        return ee_yaw_gripper(position_xyz, yaw_from_quaternion(quat_wxyz),
                              gripper_opening(finger_positions, finger_travel_m))
    if name == "none":
        return np.zeros(0, dtype=np.float32)
    raise ValueError(f"proprio_layout: unknown layout {name!r}; known: {sorted(LAYOUTS)}")


def object_features(poses: np.ndarray) -> np.ndarray:
    """Object poses [..., K, 7] (x y z, quaternion w x y z) -> low-dim features [..., K * 7].

    Per object: x y z, sin/cos of the yaw and of 4 x yaw (the second harmonic pair makes a
    cube's 90 degree symmetry an easy function). Used as the observation of the trainer's
    low-dim mode; the quaternion itself would hide the yaw behind its double cover.
    """
    poses = np.asarray(poses, dtype=np.float64)
    flat = poses.reshape(-1, 7)
    yaw = np.array([transforms3d.euler.quat2euler(q)[2] for q in flat[:, 3:7]])
    feats = np.concatenate([flat[:, :3], np.stack([np.sin(yaw), np.cos(yaw), np.sin(4 * yaw), np.cos(4 * yaw)], 1)],
                           axis=1)
    return feats.reshape(*poses.shape[:-2], poses.shape[-2] * 7).astype(np.float32)
