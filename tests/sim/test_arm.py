"""The closed-form IK agrees with MuJoCo's own forward kinematics of the MJCF arm."""

from __future__ import annotations

import itertools

import mujoco
import numpy as np
import pytest
from qt_sim.scene import TabletopScene

from qt_sim import arm


@pytest.fixture(scope="module")
def scene():
    return TabletopScene()


def _forward(scene: TabletopScene, joints: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    m, d = scene.model, scene.data
    for name, q in zip(arm.ARM_JOINTS, joints, strict=True):
        d.qpos[m.joint(name).qposadr[0]] = q
    mujoco.mj_kinematics(m, d)
    site = m.site("ee").id
    xmat = d.site_xmat[site].reshape(3, 3)
    return d.site_xpos[site].copy(), float(np.arctan2(xmat[1, 0], xmat[0, 0])), xmat[:, 2].copy()


def test_ik_matches_mujoco_forward_kinematics(scene):
    rng = np.random.default_rng(0)
    for _ in range(50):
        pose = arm.Workspace().clip(np.array([rng.uniform(0.1, 0.65), rng.uniform(-0.4, 0.4),
                                              rng.uniform(0.0, 0.35), rng.uniform(-1.6, 1.6)]))
        position, yaw, z_axis = _forward(scene, arm.inverse_kinematics(pose))
        np.testing.assert_allclose(position, pose[:3], atol=1e-9)
        assert abs(arm.wrap_angle(yaw - pose[3])) < 1e-9
        np.testing.assert_allclose(z_axis, [0, 0, -1], atol=1e-9)  # gripper points straight down


def test_every_workspace_corner_is_reachable_within_joint_limits(scene):
    ws = arm.Workspace()
    for x, y, z, yaw in itertools.product(ws.x, ws.y, ws.z, ws.yaw):
        joints = arm.inverse_kinematics(ws.clip(np.array([x, y, z, yaw])))
        for name, q in zip(arm.ARM_JOINTS, joints, strict=True):
            low, high = scene.model.joint(name).range
            assert low <= q <= high, f"{name}={q:.3f} outside [{low}, {high}] at corner {(x, y, z, yaw)}"


def test_unreachable_pose_is_a_clear_error():
    with pytest.raises(ValueError, match="out of reach"):
        arm.inverse_kinematics(np.array([2.0, 0.0, 0.1, 0.0]))
