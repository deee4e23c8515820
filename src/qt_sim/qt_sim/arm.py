"""Geometry and analytic inverse kinematics of the simulated arm (numpy only, no MuJoCo).

The arm (assets/tabletop.xml) is a 5-joint chain with a top-down two-finger gripper:

    shoulder_yaw (about z) -> shoulder_pitch, elbow, wrist_pitch (about the horizontal y axis)
    -> wrist_roll (about the gripper's vertical axis) -> two slide fingers

Pitch angles are measured from vertical; the wrist pitch always completes the chain to pi so the
gripper points straight down, which leaves exactly four task-space freedoms (x, y, z, yaw): the
four motion dimensions of the action spec. The IK below is closed-form, so the controller
never iterates and never fails inside the workspace box (the box is chosen inside the reach).

Coordinates are ``base_link``: origin at the arm's base on the table top, x forward, z up.
The numbers here must match assets/tabletop.xml (tests/sim/test_arm.py checks IK against
MuJoCo's own forward kinematics).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SHOULDER_HEIGHT = 0.20  # m, shoulder pitch axis above the table
UPPER_ARM = 0.35  # m, shoulder pitch axis -> elbow axis
FOREARM = 0.35  # m, elbow axis -> wrist pitch axis
HAND = 0.12  # m, wrist pitch axis -> end-effector point (between the fingertip pads)
FINGER_TRAVEL = 0.04  # m, slide range of each finger: 0 closed .. 0.04 fully open
ARM_JOINTS = ("shoulder_yaw", "shoulder_pitch", "elbow", "wrist_pitch", "wrist_roll")
FINGER_JOINTS = ("finger_left", "finger_right")


@dataclass(frozen=True)
class Workspace:
    """Box (plus a radial band) the commanded end-effector target is clipped to, metres/radians."""

    x: tuple[float, float] = (0.12, 0.62)
    y: tuple[float, float] = (-0.35, 0.35)
    z: tuple[float, float] = (0.025, 0.30)
    radius: tuple[float, float] = (0.15, 0.62)
    yaw: tuple[float, float] = (-1.6, 1.6)

    def clip(self, pose: np.ndarray) -> np.ndarray:
        """Clip an (x, y, z, yaw) target into the reachable workspace."""
        x, y, z, yaw = (float(v) for v in pose)
        x = min(max(x, self.x[0]), self.x[1])
        y = min(max(y, self.y[0]), self.y[1])
        r = math.hypot(x, y)
        if r > self.radius[1] or r < self.radius[0]:
            scale = min(max(r, self.radius[0]), self.radius[1]) / max(r, 1e-9)
            x, y = x * scale, y * scale
        z = min(max(z, self.z[0]), self.z[1])
        yaw = min(max(yaw, self.yaw[0]), self.yaw[1])
        return np.array([x, y, z, yaw])


def inverse_kinematics(pose: np.ndarray) -> np.ndarray:
    """End-effector (x, y, z, yaw) in base_link -> the five arm joint angles (radians).

    Elbow-up solution. Raises ValueError when the wrist point is out of reach (the workspace
    box never produces such a pose).
    """
    x, y, z, yaw = (float(v) for v in pose)
    q_yaw = math.atan2(y, x)
    r = math.hypot(x, y)
    # Wrist pitch axis sits HAND above the end effector because the gripper points down.
    height = z + HAND - SHOULDER_HEIGHT
    d2 = r * r + height * height
    cos_elbow = (d2 - UPPER_ARM**2 - FOREARM**2) / (2.0 * UPPER_ARM * FOREARM)
    if not -1.0 <= cos_elbow <= 1.0:
        raise ValueError(f"pose {pose!r}: wrist point out of reach (distance {math.sqrt(d2):.3f} m)")
    q_elbow = math.acos(cos_elbow)
    alpha = math.atan2(r, height)  # direction of the wrist point, from vertical
    beta = math.atan2(FOREARM * math.sin(q_elbow), UPPER_ARM + FOREARM * math.cos(q_elbow))
    q_shoulder = alpha - beta
    q_wrist = math.pi - q_shoulder - q_elbow
    q_roll = q_yaw - yaw
    return np.array([q_yaw, q_shoulder, q_elbow, q_wrist, q_roll])


def wrap_angle(angle: float) -> float:
    """Angle wrapped to [-pi, pi)."""
    return (angle + math.pi) % (2.0 * math.pi) - math.pi
