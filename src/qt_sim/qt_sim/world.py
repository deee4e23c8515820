"""Names, sizes and the ground-truth state record of the tabletop world (numpy only).

Shared by the MuJoCo scene, the success checks, the scripted expert and the ROS nodes; importing
it never loads MuJoCo, so teleop and expert processes stay light.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from qt_sim import arm

CUBE_COLOURS = ("red", "green", "blue")
TARGET_COLOURS = ("yellow", "purple")
# Order of the poses in the driver's /sim/object_poses (geometry_msgs/PoseArray).
OBJECT_ORDER = tuple(f"cube_{c}" for c in CUBE_COLOURS) + tuple(f"target_{t}" for t in TARGET_COLOURS)
CUBE_HALF = 0.02  # m, half edge of every cube


@dataclass
class SceneState:
    """Everything the scripted expert and the success checks may read (ground truth)."""

    ee_pos: np.ndarray  # (3,) metres, base_link
    ee_quat: np.ndarray  # (4,) w x y z of the end-effector frame (z axis points down)
    ee_yaw: float  # radians, rotation of the gripper about the vertical axis
    gripper_opening: float  # measured finger opening, 0 closed .. 1 fully open
    gripper_command: float  # commanded opening, 0 .. 1
    target_pose: np.ndarray  # (4,) commanded x y z yaw
    cube_pos: dict[str, np.ndarray]  # colour -> (3,) centre, metres
    cube_quat: dict[str, np.ndarray]  # colour -> (4,) w x y z
    cube_yaw: dict[str, float]  # colour -> yaw of the cube about z, radians
    target_pos: dict[str, np.ndarray]  # colour -> (3,) centre of the disc, metres
    finger_contacts: dict[str, int]  # colour -> how many fingers touch that cube (0, 1, 2)
    joint_names: tuple[str, ...] = field(default=arm.ARM_JOINTS + arm.FINGER_JOINTS)
    joint_positions: np.ndarray = field(default_factory=lambda: np.zeros(7))
    joint_velocities: np.ndarray = field(default_factory=lambda: np.zeros(7))


def object_poses(state: SceneState) -> np.ndarray:
    """[len(OBJECT_ORDER), 7] poses (x y z, quaternion w x y z) in OBJECT_ORDER: what the driver
    publishes on /sim/object_poses (targets are flat discs: identity orientation)."""
    cubes = [np.concatenate([state.cube_pos[c], state.cube_quat[c]]) for c in CUBE_COLOURS]
    targets = [np.concatenate([state.target_pos[t], (1.0, 0.0, 0.0, 0.0)]) for t in TARGET_COLOURS]
    return np.asarray(cubes + targets, dtype=np.float64)
