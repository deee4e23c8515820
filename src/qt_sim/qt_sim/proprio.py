"""The proprioception vector of the env observation: qt_common.proprio's ``ee_yaw_gripper``.

Layout (float32, length 6), all in base_link: ee_x ee_y ee_z (m), sin_yaw cos_yaw (gripper yaw
about the vertical axis), gripper (measured finger opening, 0 closed .. 1 fully open). The
converter and the policy node build the same vector from ``/ee_pose`` and ``/joint_states``
with the same functions (qt_common.proprio), so a policy sees identical inputs in the
gymnasium env and behind the driver node.
"""

from __future__ import annotations

import numpy as np
from qt_common.proprio import LAYOUTS, ee_yaw_gripper, gripper_opening, yaw_from_quaternion

from qt_sim.arm import FINGER_TRAVEL

PROPRIO_NAMES = LAYOUTS["ee_yaw_gripper"].names
PROPRIO_DIM = len(PROPRIO_NAMES)
# Bounds of every entry (the arm's reach, unit sin/cos, opening fraction) for observation spaces.
PROPRIO_LOW = (-1.0, -1.0, -0.1, -1.0, -1.0, 0.0)
PROPRIO_HIGH = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)

__all__ = ["PROPRIO_DIM", "PROPRIO_HIGH", "PROPRIO_LOW", "PROPRIO_NAMES", "proprio_from_pose", "proprio_vector",
           "yaw_from_quaternion"]


def proprio_vector(ee_pos: np.ndarray, ee_yaw: float, opening: float) -> np.ndarray:
    return ee_yaw_gripper(ee_pos, ee_yaw, opening)


def proprio_from_pose(position_xyz: np.ndarray, quat_wxyz: np.ndarray, finger_positions: np.ndarray) -> np.ndarray:
    """From an end-effector pose message and the two finger joint positions (metres)."""
    opening = gripper_opening(finger_positions, FINGER_TRAVEL)
    return ee_yaw_gripper(position_xyz, yaw_from_quaternion(quat_wxyz), opening)
