"""Teleop nodes in real processes: the expert operator against the sim driver, and the keyboard
teleop driven through a pseudo-terminal against a real subscriber."""

from __future__ import annotations

import re

import numpy as np
import pytest
from geometry_msgs.msg import PoseStamped
from helpers.processes import python_child
from helpers.pty_child import python_pty_child
from helpers.ros_peer import RosPeer
from qt_common.action_spec import ActionSpec
from std_msgs.msg import String

from qt_msgs.msg import ArmAction, EpisodeEvent

STARTUP_S = 60


@pytest.fixture
def peer():
    p = RosPeer()
    yield p
    p.close()


def ros_args(**params: object) -> list[str]:
    args = ["--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args


def test_expert_operator_runs_labelled_episodes_against_the_driver(children, peer):
    events = peer.subscribe(EpisodeEvent, "/episode/events", depth=50, latched=True)
    actions = peer.subscribe(ArmAction, "/qt/action", depth=500)
    driver = python_child("qt_sim.driver_node", *ros_args(image_width=32, image_height=32))
    children.append(driver)
    driver.wait_for_line("sim_driver ready", timeout=STARTUP_S)
    expert = python_child("qt_sim.expert_teleop", *ros_args(
        num_episodes=3, tasks="pick/red,push/green/yellow,place/blue/purple", seed=7, start_delay_s=0.2))
    children.append(expert)
    peer.spin_until(lambda: "EXPERT_DONE" in expert.output() or expert.popen.poll() is not None, 90, "3 episodes")
    done = expert.wait_for_line(r"EXPERT_DONE episodes=(\d+) successes=(\d+)", timeout=5)
    assert done[1] == "3" and done[2] == "3", expert.output()
    assert expert.wait(timeout=20) == 0
    peer.spin_until(lambda: sum(e.event == EpisodeEvent.EVENT_END for e in events) >= 3, 10, "3 END events")
    assert expert.output().count("ended: SUCCESS") == 3

    # The event stream alone labels each episode: START (task, seed, instruction) ... END SUCCESS.
    # (Only this test's episodes count: a parallel test session may share the random domain.)
    ours = [e for e in events if re.match(r"(pick-red|push-green-yellow|place-blue-purple)-s[789]-", e.episode_id)]
    starts = [e for e in ours if e.event == EpisodeEvent.EVENT_START]
    ends = [e for e in ours if e.event == EpisodeEvent.EVENT_END]
    assert [(s.task_id, s.seed) for s in starts] == [("pick/red", 7), ("push/green/yellow", 8),
                                                       ("place/blue/purple", 9)]
    assert [e.episode_id for e in ends] == [s.episode_id for s in starts]
    assert all(e.outcome == EpisodeEvent.OUTCOME_SUCCESS for e in ends)

    # Commands look like any teleop device's: spec names, values and matching bins, source EXPERT.
    spec = ActionSpec.default()
    expert_actions = [m for m in actions if m.source == ArmAction.SOURCE_EXPERT]
    assert len(expert_actions) > 30
    for msg in expert_actions:
        assert list(msg.dimension_names) == spec.names
        assert msg.num_bins == 256 and msg.header.frame_id == "base_link"
        np.testing.assert_array_equal(spec.values_to_bins(np.array(msg.values, dtype=np.float64)), msg.bins)


def test_keyboard_teleop_in_a_terminal_publishes_actions_and_episode_events(children, peer):
    actions = peer.subscribe(ArmAction, "/qt/action", depth=500)
    events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
    instructions = peer.subscribe(String, "/instruction", latched=True)
    keyboard = python_pty_child("qt_sim.keyboard_teleop", *ros_args(
        episode_mode="events", instruction="pick up the red cube", task="pick/red", key_hold_s=0.5))
    children.append(keyboard)
    keyboard.wait_for("KEYBOARD_READY", timeout=STARTUP_S)
    peer.spin_until(lambda: len(actions) >= 2, 30, "idle actions")
    idle = actions[-1]
    assert idle.source == ArmAction.SOURCE_TELEOP and list(idle.values[:4]) == [0.0] * 4 and idle.values[4] == 1.0
    assert list(idle.bins[:4]) == [128] * 4  # exact "no motion"

    def after_key(key: str, check, what: str) -> ArmAction:
        count = len(actions)
        keyboard.write(key)
        peer.spin_until(lambda: any(check(m) for m in actions[count:]), 10, what)
        return next(m for m in actions[count:] if check(m))

    spec = ActionSpec.default()
    forward = after_key("w", lambda m: m.values[0] > 0, "+x after 'w'")
    assert forward.values[0] == pytest.approx(0.5 * spec.high[0])
    after_key("f", lambda m: m.values[2] < 0, "-z after 'f'")
    after_key("q", lambda m: m.values[3] > 0, "+yaw after 'q'")
    after_key(" ", lambda m: m.values[4] == -1.0, "gripper closed after space")
    after_key(" ", lambda m: m.values[4] == 1.0, "gripper open after second space")

    mark = len(keyboard.output())
    keyboard.write("y")  # ending before starting is refused
    keyboard.wait_for("success refused: no episode", timeout=10, start=mark)
    mine = peer.received.setdefault("mine", [])

    def collect() -> bool:  # only this node's episodes (a parallel session may share the domain)
        mine[:] = [e for e in events if e.episode_id.startswith("teleop-")]
        return True

    keyboard.write("n")
    peer.spin_until(lambda: collect() and any(e.event == EpisodeEvent.EVENT_START for e in mine), 10, "START")
    keyboard.write("u")
    peer.spin_until(lambda: collect() and any(e.event == EpisodeEvent.EVENT_END for e in mine), 10, "END")
    start, end = mine[0], mine[1]
    assert start.instruction == "pick up the red cube" and start.task_id == "pick/red"
    assert instructions[-1].data == "pick up the red cube"
    assert end.outcome == EpisodeEvent.OUTCOME_FAILURE and end.episode_id == start.episode_id
    keyboard.write("n")
    keyboard.write("x")
    peer.spin_until(lambda: collect() and len(mine) >= 4, 10, "second episode discarded")
    assert mine[3].outcome == EpisodeEvent.OUTCOME_DISCARD and mine[3].episode_id != start.episode_id

    keyboard.write("\x03")  # Ctrl-C is a key in raw mode: quit cleanly
    assert keyboard.wait(timeout=20) == 0
    assert "Traceback" not in keyboard.output()


def test_keyboard_teleop_drives_the_sim_through_its_services(children, peer):
    events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
    poses = peer.subscribe(PoseStamped, "/ee_pose")
    driver = python_child("qt_sim.driver_node", *ros_args(image_width=32, image_height=32))
    children.append(driver)
    driver.wait_for_line("sim_driver ready", timeout=STARTUP_S)
    keyboard = python_pty_child("qt_sim.keyboard_teleop", *ros_args(task="pick/green", seed=5, key_hold_s=0.5))
    children.append(keyboard)
    keyboard.wait_for("KEYBOARD_READY", timeout=STARTUP_S)
    peer.spin_until(lambda: len(poses) >= 2, 30, "driver state")
    peer.spin_for(1.0)  # let the teleop discover the sim's services (episode_mode auto)

    keyboard.write("n")
    keyboard.wait_for(r"EPISODE START \S+ '.*green.*'", timeout=15)
    episode_id = keyboard.wait_for(r"EPISODE START (\S+)", timeout=5)[1]
    peer.spin_until(lambda: any(e.episode_id == episode_id for e in events), 10, "sim START")
    start = next(e for e in events if e.episode_id == episode_id)
    assert (start.task_id, start.seed) == ("pick/green", 5)
    peer.spin_for(0.5)
    x0 = poses[-1].pose.position.x
    for _ in range(8):  # hold 'w' like terminal auto-repeat does
        keyboard.write("w")
        peer.spin_for(0.1)
    peer.spin_for(0.5)
    assert poses[-1].pose.position.x - x0 > 0.03
    keyboard.write("y")
    ended = lambda: [e for e in events if e.episode_id == episode_id and e.event == EpisodeEvent.EVENT_END]  # noqa: E731
    peer.spin_until(lambda: bool(ended()), 10, "sim END")
    end = ended()[0]
    assert end.outcome == EpisodeEvent.OUTCOME_SUCCESS and end.episode_id == start.episode_id
    keyboard.write("\x03")
    assert keyboard.wait(timeout=20) == 0
