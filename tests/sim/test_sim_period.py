"""sim_period_s (simulated time per tick, decoupled from the wall rate) and lockstep ticking.

The claim these pin: the same seed and the same command per tick give the same trajectory
whatever the wall-clock control rate, once the simulated period is fixed. In-process through
SimDriver, and across processes through the real driver node at two wall rates, where lockstep
makes the driver execute exactly one command per frame however the scheduler behaves.
"""

from __future__ import annotations

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from helpers.processes import python_child
from helpers.ros_peer import RosPeer
from qt_common.action_spec import ActionSpec
from qt_sim.driver import DriverConfig, LockstepGate, SimDriver

from qt_msgs.msg import ArmAction, EpisodeEvent
from qt_msgs.srv import StartEpisode

NAMES = ActionSpec.default().names
# A short fixed command sequence: move, descend, turn, close the gripper, lift.
COMMANDS = [[0.02, 0.0, 0.0, 0.0, 1.0]] * 4 + [[0.0, 0.01, -0.02, 0.1, 0.0]] * 4 + [[0.0, 0.0, 0.0, 0.0, -1.0]] * 2 \
    + [[-0.01, 0.0, 0.02, -0.1, 0.0]] * 4
SEED, TASK = 11, "pick/green"


def run_driver(config: DriverConfig) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(ee_pos, green cube position, image) after every tick of COMMANDS, commands always fresh."""
    driver = SimDriver(config)
    try:
        assert driver.start_episode(TASK, SEED).accepted
        now, states = 0.0, []
        for values in COMMANDS:
            driver.arm_action(NAMES, values, now)
            out = driver.tick(now)
            states.append((out.state.ee_pos.copy(), out.state.cube_pos["green"].copy(), out.image.copy()))
            now += config.period_s
        return states
    finally:
        driver.close()


def test_same_simulated_period_gives_the_same_trajectory_at_any_wall_rate():
    slow = run_driver(DriverConfig(width=32, height=32, control_rate_hz=10.0, sim_period_s=0.1))
    fast = run_driver(DriverConfig(width=32, height=32, control_rate_hz=30.0, sim_period_s=0.1))
    real_time_30 = run_driver(DriverConfig(width=32, height=32, control_rate_hz=30.0))
    for a, b in zip(slow, fast, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)
    # Without sim_period_s, 30 Hz simulates 34 ms per tick: the arm ends elsewhere.
    assert np.abs(slow[-1][0] - real_time_30[-1][0]).max() > 1e-3
    # 0 keeps the old meaning: one wall period per tick.
    assert DriverConfig(control_rate_hz=10.0).simulated_period_s == pytest.approx(0.1)
    assert DriverConfig(control_rate_hz=30.0, sim_period_s=0.1).period_s == pytest.approx(1 / 30)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_bad_sim_period_is_refused_by_name(bad):
    with pytest.raises(ValueError, match="sim_period_s"):
        DriverConfig(sim_period_s=bad)


def test_lockstep_gate_waits_for_the_command_of_the_last_frame():
    ms = 1_000_000  # frames are tens of milliseconds apart
    gate = LockstepGate(True, timeout_s=0.5)
    gate.episode_started(1000 * ms)
    assert gate.wait_s(0.0) == 0.0 and not gate.tick_starts()  # first tick of an episode never waits
    gate.frame_published(1100 * ms, now=10.0, episode_running=True)
    assert gate.wait_s(10.1) == pytest.approx(0.4)
    assert not gate.accept(999 * ms) and gate.refused == 1  # decided on the previous episode's scene
    assert gate.accept(1000 * ms - 300)  # the start stamp echoed through float seconds
    gate.received(1050 * ms)  # an older frame's command does not release the tick
    assert gate.wait_s(10.1) > 0
    gate.received(1100 * ms - 250)  # the frame's stamp, echoed through float seconds
    assert gate.wait_s(10.1) == 0.0 and not gate.tick_starts() and gate.misses == 0
    gate.frame_published(1200 * ms, now=11.0, episode_running=True)
    assert gate.wait_s(11.6) == 0.0  # timed out: the tick may run, and it counts as a miss
    assert gate.tick_starts() and gate.misses == 1
    gate.frame_published(1300 * ms, now=12.0, episode_running=False)  # the episode ended on that tick
    assert gate.wait_s(12.0) == 0.0
    off = LockstepGate(False)
    off.episode_started(1000 * ms)
    off.frame_published(1100 * ms, now=0.0, episode_running=True)
    assert off.accept(1) and off.wait_s(0.0) == 0.0 and not off.tick_starts()
    with pytest.raises(ValueError, match="lockstep_timeout_s"):
        LockstepGate(True, timeout_s=0.0)


def _stamp_ns(header) -> int:
    return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec


def drive_over_ros(children, rate_hz: float) -> list[tuple[float, ...]]:
    """The driver node at ``rate_hz`` wall, 0.1 s simulated per tick, lockstep; this process is
    the commander, answering each frame with the next command stamped with that frame's stamp.
    Returns the end-effector positions of the frames the commands were decided on."""
    node = python_child("qt_sim.driver_node", "--ros-args", "-p", "image_width:=32", "-p", "image_height:=32",
                        "-p", f"control_rate_hz:={rate_hz}", "-p", "sim_period_s:=0.1", "-p", "lockstep:=true",
                        "-p", "lockstep_timeout_s:=5.0", "-p", "horizon:=100")
    children.append(node)
    peer = RosPeer("qt_test_lockstep")
    try:
        poses: list[PoseStamped] = []
        events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
        publisher = peer.publisher(ArmAction, "/qt/action")
        peer.node.create_subscription(PoseStamped, "/ee_pose", poses.append, 50)
        node.wait_for_line("sim_driver ready", timeout=60)
        peer.spin_until(lambda: publisher.get_subscription_count() > 0 and poses, 30, "driver matched")
        reply = peer.call(StartEpisode, "/sim/start_episode", StartEpisode.Request(task_id=TASK, seed=SEED))
        assert reply.accepted, reply.message
        peer.spin_until(lambda: any(e.episode_id == reply.episode_id for e in events), 10, "START event")
        start_ns = _stamp_ns(next(e for e in events if e.episode_id == reply.episode_id).header)
        trajectory: list[tuple[float, ...]] = []
        answered: set[int] = set()
        while len(trajectory) < len(COMMANDS):
            peer.spin_until(lambda: any(_stamp_ns(p.header) > start_ns and _stamp_ns(p.header) not in answered
                                        for p in poses), 10, "next frame")
            frame = next(p for p in poses if _stamp_ns(p.header) > start_ns and _stamp_ns(p.header) not in answered)
            answered.add(_stamp_ns(frame.header))
            trajectory.append((frame.pose.position.x, frame.pose.position.y, frame.pose.position.z))
            msg = ArmAction(dimension_names=NAMES, values=COMMANDS[len(trajectory) - 1], num_bins=256,
                            source=ArmAction.SOURCE_POLICY)
            msg.header.stamp, msg.header.frame_id = frame.header.stamp, "base_link"
            publisher.publish(msg)
        return trajectory
    finally:
        peer.close()
        node.stop()
        assert "lockstep: no command" not in node.output()


def test_driver_node_trajectory_is_identical_at_two_wall_rates_with_lockstep(children):
    slow = drive_over_ros(children, 10.0)
    fast = drive_over_ros(children, 40.0)
    assert slow == fast
    assert abs(slow[-1][0] - slow[0][0]) > 0.02  # the arm really moved
