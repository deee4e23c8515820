"""The gymnasium env: spaces, reset options, action scaling through the action spec, reward,
termination and truncation, camera sizes, and import hygiene."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from qt_common.action_spec import ActionSpec
from qt_sim.env import TabletopEnv
from qt_sim.proprio import PROPRIO_DIM, proprio_from_pose
from qt_sim.tasks import instructions


@pytest.fixture(scope="module")
def env():
    environment = TabletopEnv()
    yield environment
    environment.close()


def test_spaces_and_observation_layout(env):
    obs, info = env.reset(seed=1, options={"task_id": "pick/green"})
    assert env.action_space.shape == (5,) and env.action_space.low.min() == -1 and env.action_space.high.max() == 1
    assert obs["image"].shape == (96, 96, 3) and obs["image"].dtype == np.uint8
    assert obs["proprio"].shape == (PROPRIO_DIM,) and obs["proprio"].dtype == np.float32
    assert env.observation_space.contains(obs)
    assert info["task_id"] == "pick/green" and info["instruction"] in instructions("pick/green", "train")
    assert info["success"] is False and info["seed"] == 1 and info["step"] == 0
    state = env.scene_state()
    np.testing.assert_allclose(obs["proprio"][:3], state.ee_pos, atol=1e-6)
    np.testing.assert_allclose(
        obs["proprio"], proprio_from_pose(state.ee_pos, state.ee_quat, state.joint_positions[5:]), atol=1e-6
    )
    assert obs["image"].std() > 10, "the camera frame is blank"


def test_gymnasium_env_checker_passes():
    environment = TabletopEnv(width=32, height=32, horizon=5)
    try:
        check_env(environment, skip_render_check=True)
    finally:
        environment.close()


def test_actions_are_scaled_by_the_shared_action_spec(env):
    env.reset(seed=2)
    spec = ActionSpec.default()
    before = env.scene.target.copy()
    env.step(np.array([1.0, -0.5, 0.0, 1.0, 0.0]))
    expected = spec.normalized_to_values(np.array([1.0, -0.5, 0.0, 1.0, 0.0]))
    np.testing.assert_allclose(env.scene.target - before, expected[:4], atol=1e-12)
    before = env.scene.target.copy()
    env.step(np.zeros(5))  # exact "no motion"
    np.testing.assert_array_equal(env.scene.target, before)
    with pytest.raises(ValueError, match="action"):
        env.step(np.array([np.nan, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="action"):
        env.step(np.zeros(4))


def test_held_still_arm_does_not_drift(env):
    env.reset(seed=4)
    for _ in range(3):
        env.step(np.zeros(5))
    start = env.scene_state().ee_pos
    for _ in range(20):
        env.step(np.zeros(5))
    assert np.abs(env.scene_state().ee_pos - start).max() < 1e-3


def test_sparse_reward_truncates_at_the_horizon():
    environment = TabletopEnv(horizon=6, render_images=False)
    environment.reset(seed=0, options={"task_id": "pick/red"})
    rewards, ends = [], []
    for _ in range(6):
        _, reward, terminated, truncated, info = environment.step(np.zeros(5))
        rewards.append(reward)
        ends.append((terminated, truncated))
    assert rewards == [0.0] * 6
    assert ends[:-1] == [(False, False)] * 5 and ends[-1] == (False, True)
    assert info["success"] is False


def test_success_terminates_with_reward_one():
    from qt_sim.expert import ScriptedExpert, WorldView

    environment = TabletopEnv(render_images=False)
    environment.reset(seed=5, options={"task_id": "pick/blue"})
    expert = ScriptedExpert()
    expert.reset("pick/blue", seed=5)
    rewards = []
    while True:
        action = expert.act(WorldView.from_scene(environment.scene_state()))
        _, reward, terminated, truncated, info = environment.step(action)
        rewards.append(reward)
        if terminated or truncated:
            break
    assert terminated and not truncated and info["success"] is True
    assert rewards[-1] == 1.0 and sum(rewards) == 1.0


def test_reset_options_choose_wording_split_and_custom_instruction(env):
    _, info = env.reset(seed=7, options={"task_id": "push/blue/purple", "instruction_split": "heldout"})
    assert info["instruction"] in instructions("push/blue/purple", "heldout")
    assert info["instruction_split"] == "heldout"
    _, info = env.reset(seed=7, options={"task_id": "push/blue/purple", "instruction": "shove blue to purple"})
    assert info["instruction"] == "shove blue to purple" and info["instruction_split"] == "custom"
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=1, options={"task": "pick/red"})
    with pytest.raises(ValueError, match="task_id"):
        env.reset(seed=1, options={"task_id": "pick/purple"})
    seen = {env.reset(seed=s)[1]["task_id"] for s in range(40)}
    assert len(seen) >= 10, "tasks drawn by the seed should cover the family"


def test_full_size_camera_works():
    environment = TabletopEnv(width=640, height=480)
    try:
        obs, _ = environment.reset(seed=0)
        assert obs["image"].shape == (480, 640, 3)
        obs, *_ = environment.step(np.zeros(5))
        assert obs["image"].shape == (480, 640, 3) and obs["image"].std() > 10
    finally:
        environment.close()


def test_package_import_loads_neither_rclpy_nor_mujoco():
    code = (
        "import sys, qt_sim, qt_sim.tasks, qt_sim.expert, qt_sim.proprio, qt_sim.world, qt_teleop.keyboard, "
        "qt_sim.teleop_common, qt_sim.commands; "
        "print(sorted(m for m in ('rclpy', 'mujoco') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    code = "import sys, qt_sim.env, qt_sim.driver, qt_sim.rollout; print('rclpy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_rendering_falls_back_to_osmesa_when_egl_is_unavailable():
    code = (
        "import qt_sim.gl as gl; gl._egl_works = lambda: False\n"
        "from qt_sim.env import TabletopEnv\n"
        "env = TabletopEnv(width=48, height=40); obs, _ = env.reset(seed=1)\n"
        "print(gl.select_gl_backend(), obs['image'].shape, int(obs['image'].std() > 10))\n"
    )
    env = dict(os.environ, MUJOCO_GL="egl", PYOPENGL_PLATFORM="egl")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[0] == "osmesa (40, 48, 3) 1"
    assert "EGL unavailable" in result.stderr and "Traceback" not in result.stderr
