"""The proprioception vector shared by the env observation and ROS consumers (numpy only).

Layout (float32, length 6), all in base_link:

    0 ee_x      end-effector position, metres
    1 ee_y
    2 ee_z
    3 sin_yaw   gripper yaw about the vertical axis, as sin/cos so it never wraps
    4 cos_yaw
    5 gripper   measured finger opening, 0 closed .. 1 fully open

A ROS node rebuilds the same vector from ``/ee_pose`` (geometry_msgs/PoseStamped) and the finger
joints of ``/joint_states`` with :func:`proprio_from_pose`, so a policy sees identical inputs in
the gymnasium env and behind the driver node.
"""

from __future__ import annotations

import math

import numpy as np
import transforms3d

from qt_sim.arm import FINGER_TRAVEL

PROPRIO_NAMES = ("ee_x", "ee_y", "ee_z", "sin_yaw", "cos_yaw", "gripper")
PROPRIO_DIM = len(PROPRIO_NAMES)
# Bounds of every entry (the arm's reach, unit sin/cos, opening fraction) for observation spaces.
PROPRIO_LOW = (-1.0, -1.0, -0.1, -1.0, -1.0, 0.0)
PROPRIO_HIGH = (1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def yaw_from_quaternion(quat_wxyz: np.ndarray) -> float:
    """Yaw of a frame whose z axis points down (the gripper frame): angle of its x axis in xy."""
    matrix = transforms3d.quaternions.quat2mat(np.asarray(quat_wxyz, dtype=np.float64))
    return math.atan2(matrix[1, 0], matrix[0, 0])


def proprio_vector(ee_pos: np.ndarray, ee_yaw: float, gripper_opening: float) -> np.ndarray:
    x, y, z = (float(v) for v in ee_pos)
    return np.array([x, y, z, math.sin(ee_yaw), math.cos(ee_yaw), gripper_opening], dtype=np.float32)


def proprio_from_pose(position_xyz: np.ndarray, quat_wxyz: np.ndarray, finger_positions: np.ndarray) -> np.ndarray:
    """From an end-effector pose message and the two finger joint positions (metres)."""
    opening = float(np.clip(np.mean(finger_positions) / FINGER_TRAVEL, 0.0, 1.0))
    return proprio_vector(np.asarray(position_xyz), yaw_from_quaternion(quat_wxyz), opening)
