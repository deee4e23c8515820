"""The driver core without DDS: command channels and timeout, rejection, episode lifecycle."""

from __future__ import annotations

import numpy as np
import pytest
from qt_common.action_spec import ActionSpec
from qt_sim.commands import CommandRejected
from qt_sim.driver import DriverConfig, SimDriver
from qt_sim.expert import ScriptedExpert, WorldView

NAMES = ActionSpec.default().names


@pytest.fixture(scope="module")
def driver():
    d = SimDriver(DriverConfig(width=32, height=32, horizon=8, command_timeout_s=0.3))
    yield d
    d.close()


@pytest.fixture
def running(driver):
    if driver.episode is not None:
        driver.end_episode("discard")
    reply = driver.start_episode("pick/red", seed=3)
    assert reply.accepted
    return driver


def test_commands_run_until_the_timeout_then_the_arm_holds_still(running):
    d = running
    d.arm_action(NAMES, [0.02, 0.0, 0.0, 0.0, 1.0], now=100.0)
    x0 = d.tick(100.0).state.ee_pos[0]
    x1 = d.tick(100.1).state.ee_pos[0]
    assert x1 - x0 > 0.01  # the command is repeated while fresh
    out = d.tick(100.5)  # 0.5 s after the last command: timed out
    np.testing.assert_array_equal(out.executed, np.zeros(5))
    settled = d.tick(100.6).state.ee_pos
    for t in (100.7, 100.8):
        assert np.abs(d.tick(t).state.ee_pos - settled).max() < 1e-3


def test_twist_and_gripper_channels(running):
    d = running
    period = d.config.period_s
    d.twist([0.05, -0.1, 0.0], 0.5, now=10.0)
    d.gripper(-1.0, now=10.0)
    np.testing.assert_allclose(d.current_command(10.05), [0.05 * period, -0.1 * period, 0, 0.5 * period, -1.0])
    d.twist([10.0, 0.0, 0.0], 0.0, now=10.1)  # too fast: clipped to the spec's limit
    assert d.current_command(10.1)[0] == ActionSpec.default().high[0]
    d.arm_action(NAMES, [0.0, 0.0, 0.01, 0.0, 0.5], now=10.2)  # newest source wins per channel
    np.testing.assert_allclose(d.current_command(10.2), [0, 0, 0.01, 0, 0.5])
    assert d.current_command(11.0).tolist() == [0.0] * 5


@pytest.mark.parametrize(
    ("names", "values", "frame", "field"),
    [
        (["dx", "dy", "dz", "dyaw", "grip"], [0, 0, 0, 0, 0], "", "dimension_names"),
        (NAMES[::-1], [0, 0, 0, 0, 0], "", "dimension_names"),
        (NAMES, [0, 0, 0, 0], "", "values"),
        (NAMES, [0, float("nan"), 0, 0, 0], "", "values"),
        (NAMES, [0, 0, float("inf"), 0, 0], "", "values"),
        (NAMES, [0, 0, 0, 0, 0], "camera_optical_frame", "frame_id"),
    ],
)
def test_bad_arm_actions_are_rejected_and_never_executed(running, names, values, frame, field):
    d = running
    d.arm_action(NAMES, [0.0] * 5, now=50.0)
    with pytest.raises(CommandRejected, match=field):
        d.arm_action(names, values, now=50.05, frame_id=frame)
    assert d.current_command(50.1).tolist() == [0.0] * 5


def test_bad_twist_and_gripper_are_rejected(running):
    with pytest.raises(CommandRejected, match="TwistStamped"):
        running.twist([float("nan"), 0, 0], 0.0, now=1.0)
    with pytest.raises(CommandRejected, match="frame_id"):
        running.twist([0.0, 0, 0], 0.0, now=1.0, frame_id="tool0")
    with pytest.raises(CommandRejected, match="gripper"):
        running.gripper(float("nan"), now=1.0)


def test_episode_lifecycle_and_outcomes(driver):
    if driver.episode is not None:
        driver.end_episode("discard")
    assert not driver.end_episode("failure").accepted  # nothing running
    assert not driver.start_episode("pick/orange", 1).accepted
    assert not driver.start_episode("pick/red", -5).accepted
    start = driver.start_episode("place/green/purple", 4, instruction="custom words")
    assert start.accepted and start.instruction == "custom words"
    assert start.event.event == "start" and start.event.task_id == "place/green/purple" and start.event.seed == 4
    refused = driver.start_episode("pick/red", 1)
    assert not refused.accepted and start.episode_id in refused.message
    assert not driver.end_episode("maybe").accepted
    end = driver.end_episode("discard")
    assert end.accepted and end.event.outcome == "discard" and end.event.episode_id == start.episode_id
    frozen = driver.tick(0.0)
    assert not frozen.stepped and frozen.events == []
    random_start = driver.start_episode("", -1)
    assert random_start.accepted and random_start.event.seed >= 0
    driver.end_episode("discard")


def test_horizon_ends_with_failure_and_success_ends_with_success(driver):
    if driver.episode is not None:
        driver.end_episode("discard")
    driver.start_episode("pick/red", 1)
    events = [e for i in range(8) for e in driver.tick(float(i)).events]
    assert [(e.event, e.outcome) for e in events] == [("end", "failure")]
    assert driver.episode is None

    long = SimDriver(DriverConfig(width=16, height=16, horizon=100))
    try:
        long.start_episode("pick/blue", 5)
        expert = ScriptedExpert()
        expert.reset("pick/blue", seed=5)
        events = []
        for i in range(100):
            t = float(i) * 0.1
            values = long.spec.normalized_to_values(expert.act(WorldView.from_scene(long.env.scene_state())))
            long.arm_action(NAMES, values.tolist(), now=t)
            events += long.tick(t).events
            if events:
                break
        assert [(e.event, e.outcome) for e in events] == [("end", "success")]
    finally:
        long.close()


def test_without_the_success_check_only_the_operator_or_the_horizon_ends_an_episode():
    """success_check False: the sim standing in for a robot (qt eval --robot judges by the operator)."""
    stand_in = SimDriver(DriverConfig(width=16, height=16, horizon=100, success_check=False))
    try:
        stand_in.start_episode("pick/blue", 5)
        expert = ScriptedExpert()
        expert.reset("pick/blue", seed=5)
        step, terminated = stand_in.env.step_values, []

        def watched(values):  # the env's own success check, which the driver now ignores
            out = step(values)
            terminated.append(bool(out[2]))
            return out

        stand_in.env.step_values = watched
        for i in range(60):
            t = float(i) * 0.1
            values = stand_in.spec.normalized_to_values(expert.act(WorldView.from_scene(stand_in.env.scene_state())))
            stand_in.arm_action(NAMES, values.tolist(), now=t)
            assert stand_in.tick(t).events == []
        assert any(terminated) and stand_in.episode is not None
        reply = stand_in.end_episode("success")
        assert reply.accepted and reply.event.outcome == "success"
    finally:
        stand_in.close()


def test_config_is_validated():
    with pytest.raises(ValueError, match="control_rate_hz"):
        DriverConfig(control_rate_hz=0)
    with pytest.raises(ValueError, match="command_timeout_s"):
        DriverConfig(command_timeout_s=-1)
    odd = SimDriver(DriverConfig(control_rate_hz=30.0, width=8, height=8))
    try:
        assert odd.env.scene.substeps == 17  # 34 ms of physics per 33.3 ms tick: nearest whole steps
    finally:
        odd.close()
