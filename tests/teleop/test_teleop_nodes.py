"""Keyboard and joy teleop nodes in real processes: keys through a pseudo-terminal, Joy messages from
a real publisher, against a real subscriber and (keyboard) the sim driver's episode services."""

from __future__ import annotations

import pytest
from geometry_msgs.msg import PoseStamped, TwistStamped
from helpers.joy_device import JoyDevice
from helpers.processes import python_child, ros_args
from helpers.pty_child import python_pty_child
from qt_common.action_spec import ActionSpec
from sensor_msgs.msg import Joy
from std_msgs.msg import Float64, String

from qt_msgs.msg import ArmAction, EpisodeEvent

STARTUP_S = 60


def test_keyboard_teleop_in_a_terminal_publishes_actions_and_episode_events(children, peer):
    actions = peer.subscribe(ArmAction, "/qt/action", depth=500)
    events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
    instructions = peer.subscribe(String, "/instruction", latched=True)
    keyboard = python_pty_child("qt_teleop.keyboard_teleop", *ros_args(
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
    keyboard = python_pty_child("qt_teleop.keyboard_teleop", *ros_args(task="pick/green", seed=5, key_hold_s=0.5))
    children.append(keyboard)
    keyboard.wait_for("KEYBOARD_READY", timeout=STARTUP_S)
    peer.spin_until(lambda: len(poses) >= 2, 30, "driver state")
    keyboard.wait_for("EPISODES VIA SIM", timeout=30)  # episode_mode auto found the sim's services

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


def test_joy_teleop_maps_a_gamepad_to_actions_and_episode_events(children, peer):
    actions = peer.subscribe(ArmAction, "/qt/action", depth=500)
    events = peer.subscribe(EpisodeEvent, "/episode/events", latched=True)
    instructions = peer.subscribe(String, "/instruction", latched=True)
    twists = peer.subscribe(TwistStamped, "/servo_node/delta_twist_cmds", depth=500)
    grippers = peer.subscribe(Float64, "/gripper/command", depth=500)
    joy = python_child("qt_teleop.joy_teleop", *ros_args(
        mapping="gamepad", episode_mode="events", instruction="pick up the blue cube", task="pick/blue",
        control_rate_hz=20.0, joy_timeout_s=1.0))
    children.append(joy)
    joy.wait_for_line("JOY_READY", timeout=STARTUP_S)
    peer.spin_until(lambda: len(actions) >= 2, 30, "idle actions")
    idle = actions[-1]
    assert idle.source == ArmAction.SOURCE_TELEOP and list(idle.bins[:4]) == [128] * 4 and idle.values[4] == 1.0
    pad = JoyDevice(peer)
    peer.spin_until(lambda: pad.pub.get_subscription_count() >= 1, 30, "joy_teleop subscribed to /joy")
    spec = ActionSpec.default()

    def newest_after(count: int, check, what: str) -> ArmAction:
        peer.spin_until(lambda: any(check(m) for m in actions[count:]), 10, what)
        return [m for m in actions[count:] if check(m)][-1]

    # Left stick fully up without the deadman (LB, button 4): no motion.
    count = len(actions)
    pad.send(0.5, axis_1=1.0)
    assert all(m.values[0] == 0.0 for m in actions[count + 2:])
    # With the deadman: half the maximum (speed 0.5); RB (turbo) held: the maximum.
    pad.send(0.4, button_4=1)
    forward = newest_after(len(actions) - 2, lambda m: m.values[0] > 0, "+x with the deadman held")
    assert forward.values[0] == pytest.approx(0.5 * spec.high[0], rel=1e-5)
    pad.send(0.4, button_5=1)
    turbo = newest_after(len(actions) - 2, lambda m: m.values[0] > 0.9 * spec.high[0], "+x at turbo speed")
    assert turbo.values[0] == pytest.approx(spec.high[0], rel=1e-5)
    # The same command for a real arm: MoveIt Servo's twist (per-step delta / control period).
    peer.spin_until(lambda: any(t.twist.linear.x > 0.9 * spec.high[0] / 0.05 for t in twists), 10, "servo twist")
    fast = [t for t in twists if t.twist.linear.x > 0.9 * spec.high[0] / 0.05][-1]
    assert fast.twist.linear.x == pytest.approx(spec.high[0] / 0.05, rel=1e-5) and fast.header.frame_id == "base_link"
    pad.send(0.2, button_5=0)
    # Releasing the deadman stops the arm at once.
    pad.send(0.4, button_4=0)
    count = len(actions)
    pad.send(0.3)
    assert actions[-1].values[0] == 0.0 and list(actions[-1].bins[:4]) == [128] * 4
    # A toggles the gripper once per press (held across many messages).
    pad.press(0)
    newest_after(count, lambda m: m.values[4] == -1.0, "gripper closed after A")
    peer.spin_until(lambda: any(g.data == -1.0 for g in grippers), 10, "gripper command closed")
    count = len(actions)
    pad.press(0)
    newest_after(count, lambda m: m.values[4] == 1.0, "gripper open after the second A")

    mine: list[EpisodeEvent] = []

    def ours() -> list[EpisodeEvent]:  # only this node's episodes (a parallel session may share the domain)
        mine[:] = [e for e in events if e.episode_id.startswith("joy-")]
        return mine

    pad.press(7)  # Start
    peer.spin_until(lambda: len(ours()) >= 1, 10, "START")
    pad.press(2)  # X: failure
    peer.spin_until(lambda: len(ours()) >= 2, 10, "END failure")
    start, end = mine[0], mine[1]
    assert start.event == EpisodeEvent.EVENT_START and start.instruction == "pick up the blue cube"
    assert start.task_id == "pick/blue" and instructions[-1].data == "pick up the blue cube"
    assert end.event == EpisodeEvent.EVENT_END and end.outcome == EpisodeEvent.OUTCOME_FAILURE
    assert end.episode_id == start.episode_id
    pad.press(7)
    pad.press(3)  # Y: success
    pad.press(7)
    pad.press(1)  # B: discard
    peer.spin_until(lambda: len(ours()) >= 6, 10, "two more episodes")
    assert [e.outcome for e in mine[2:]] == [EpisodeEvent.OUTCOME_NONE, EpisodeEvent.OUTCOME_SUCCESS,
                                             EpisodeEvent.OUTCOME_NONE, EpisodeEvent.OUTCOME_DISCARD]

    # The device goes silent with the stick up and the deadman held: motion stops after joy_timeout_s.
    pad.send(0.3, button_4=1, axis_1=1.0)
    newest_after(len(actions) - 2, lambda m: m.values[0] > 0, "+x before the device goes quiet")
    count = len(actions)
    peer.spin_until(lambda: any(m.values[0] == 0.0 for m in actions[count:]), 10, "zero motion after the timeout")
    joy.stop()
    assert "Traceback" not in joy.output()


@pytest.mark.parametrize(
    ("params", "joy", "message"),
    [
        ({"mapping": "/nonexistent/pad.yaml"}, None, "mapping /nonexistent/pad.yaml: cannot read it"),
        ({"mapping": "gamepad"}, ([0.0] * 2, [0] * 11), "uses axis 4 but the Joy message has 2 axes"),
        ({"joy_timeout_s": 0.0}, None, "joy_timeout_s: expected > 0"),
    ],
)
def test_joy_teleop_refuses_a_mapping_that_does_not_fit(children, peer, params, joy, message):
    node = python_child("qt_teleop.joy_teleop", *ros_args(**params))
    children.append(node)
    if joy is not None:
        node.wait_for_line("JOY_READY", timeout=STARTUP_S)
        pub = peer.publisher(Joy, "/joy")
        peer.spin_until(lambda: pub.get_subscription_count() >= 1, 30, "joy_teleop subscribed")
        peer.spin_until(lambda: pub.publish(Joy(axes=joy[0], buttons=joy[1])) or node.popen.poll() is not None,
                        20, "joy_teleop exiting")
    assert node.wait(timeout=30) == 2
    assert message in node.output() and "Traceback" not in node.output()
