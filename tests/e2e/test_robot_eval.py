"""``qt eval --robot`` end to end, with the sim driver standing in for a real arm's driver.

Real processes over DDS in a namespace of this test: the sim driver (its own success check off,
its episode events and instruction moved aside, so it behaves like an arm's driver: frames,
joint states, commands executed), the policy node (``autostart:=false``, run.yaml), the
recorder (run.yaml), and ``qt eval --robot`` on a pseudo-terminal, whose operator keys this test
types. The test also plays the person at the robot: it resets the scene (a new sim episode)
before each trial. Checked: discard repeats a trial and writes no bag; success and the time
limit (failure) give bags with the outcome and only POLICY commands, the last one the stop
command; the session pauses with ``q`` and resumes with ``--resume`` (a service call starts the
resumed trial); the report has the Wilson interval and latency; ``qt convert`` takes the bags.

The second test is the demonstration side on the same stand-in arm: the joy teleop fed real
``sensor_msgs/Joy`` messages labels two episodes (success, failure) that the recorder writes and
``qt convert`` turns into a dataset with source ``teleop``.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers.bag_reading import bag_messages
from helpers.joy_device import JoyDevice
from helpers.processes import python_child
from helpers.pty_child import python_pty_child
from helpers.qt_command import run_qt
from helpers.ros_peer import RosPeer
from helpers.tiny_policy import export_tiny_policy
from qt_common.dataset import Dataset
from qt_policy_node.run import default_params_file

from qt_msgs.msg import ArmAction
from qt_msgs.srv import EndEpisode, StartEpisode

pytest.importorskip("qt_sim.driver_node")

NS = f"/qt_robot_eval_{os.getpid()}"
INSTRUCTION = "pick up the red cube"
STARTUP_S = 120


def bag_actions(bag: Path) -> list[tuple[int, list[float]]]:
    """(source, values) of every qt/action message in a bag, in order."""
    return [(int(m.source), list(m.values)) for m in bag_messages(bag, "/qt/action")]


def start_stand_in(children: list, bags: Path) -> None:
    """The robot's side: the sim as its driver (own success check off, its episode events and
    instruction moved aside: the evaluator or the teleop labels episodes) and the recorder."""
    ns = ["-r", f"__ns:={NS}"]
    driver = python_child("qt_sim.driver_node", "--ros-args", *ns, "-p", "image_width:=64", "-p", "image_height:=48",
                          "-p", "horizon:=100000", "-p", "success_check:=false", "-p", "tasks:=pick/red",
                          "-p", "events_topic:=sim/episode_events", "-p", "instruction_topic:=sim/instruction")
    recorder = python_child("qt_data_logger.recorder_node", "--ros-args", *ns, "--params-file",
                            str(default_params_file()), "-p", f"output_dir:={bags}", "-p", "control_rate_hz:=10.0",
                            "-p", "robot:=stand_in_arm", "-p", "end_grace_s:=0.3", "-p", "fsync:=false")
    children += [driver, recorder]
    driver.wait_for_line("sim_driver ready", timeout=STARTUP_S)
    recorder.wait_for_line("RECORDER_READY", timeout=STARTUP_S)


def reset_scene(peer: RosPeer, seed: int) -> None:
    """The person at the robot puts the cubes back: a new sim episode (the sim's own, unrecorded)."""
    peer.call(EndEpisode, f"{NS}/sim/end_episode", EndEpisode.Request(outcome=EndEpisode.Request.OUTCOME_DISCARD))
    reply = peer.call(StartEpisode, f"{NS}/sim/start_episode", StartEpisode.Request(task_id="pick/red", seed=seed))
    assert reply.accepted, reply.message


def convert(bags: Path, out: Path):
    names = {"camera": "camera/image_raw", "compressed-camera": "camera/image_raw/compressed",
             "action": "qt/action", "events": "episode/events", "instruction": "instruction", "ee-pose": "ee_pose",
             "joint-states": "joint_states", "label": "qt/action_label", "object-poses": "sim/object_poses"}
    topics = [a for name, topic in names.items() for a in (f"--{name}-topic", f"{NS}/{topic}")]  # this test's namespace
    return run_qt("convert", bags, "-o", out, "--image-size", "48x64", *topics)


def test_robot_evaluation_with_the_sim_standing_in_for_the_arm(tmp_path, children, peer):
    model = export_tiny_policy(tmp_path / "tiny", image_size=(48, 64), seed=3, instructions=(INSTRUCTION,))
    bags, out = tmp_path / "bags", tmp_path / "session"
    start_stand_in(children, bags)
    policy = python_child("qt_policy_node.node", "--ros-args", "-r", f"__ns:={NS}", "--params-file",
                          str(default_params_file()), "-p", f"model_path:={model}", "-p", "autostart:=false")
    children.append(policy)
    policy.wait_for_line("policy_node: ready", timeout=STARTUP_S)
    actions = peer.subscribe(ArmAction, f"{NS}/qt/action", depth=1000)

    def policy_acts(count: int = 5) -> None:
        mark = len(actions)
        peer.spin_until(lambda: sum(m.source == ArmAction.SOURCE_POLICY for m in actions[mark:]) >= count, 30,
                        "the policy's commands")

    args = ["eval", "--robot", "--model", str(model), "--task", f"pick/red={INSTRUCTION}", "--trials-per-task", "2",
            "--out", str(out), "--bags", str(bags), "--namespace", NS]
    session = python_pty_child("qt_common.cli", *args, "--time-limit", "60")
    children.append(session)
    session.wait_for(r"trial 1/2: task pick/red: 'pick up the red cube'", timeout=STARTUP_S)
    reset_scene(peer, 1)
    session.write("n")
    session.wait_for(r"TRIAL_STARTED robot-pick-red-t0-", timeout=30)
    policy_acts()
    mark = len(session.output())
    session.write("x")  # discard: the trial is repeated, no bag
    session.wait_for(r"TRIAL_ENDED \S+ discard .*will be repeated", timeout=30, start=mark)
    session.wait_for(r"trial 1/2", timeout=30, start=mark)
    reset_scene(peer, 2)
    session.write("n")
    policy_acts()
    mark = len(session.output())
    session.write("y")
    ended = session.wait_for(r"TRIAL_ENDED (\S+) success \(operator\).*; bag (\S+);", timeout=60, start=mark)
    success_bag = Path(ended[2])
    session.wait_for(r"trial 2/2", timeout=30, start=mark)
    session.write("q")  # pause the session
    session.wait_for(r"SESSION_PAUSED after 1/2", timeout=30, start=mark)
    assert session.wait(timeout=60) == 0, session.output()

    # Resume: trial 2 started by a service call (a remote button), ended by the time limit.
    from std_srvs.srv import Trigger

    resumed = python_pty_child("qt_common.cli", *args, "--time-limit", "4", "--resume")
    children.append(resumed)
    resumed.wait_for(r"trial 2/2: task pick/red", timeout=STARTUP_S)
    reset_scene(peer, 3)
    assert peer.call(Trigger, f"{NS}/robot_eval/start", Trigger.Request()).success
    ended = resumed.wait_for(r"TRIAL_ENDED (\S+) failure \(time limit\).*; bag (\S+);", timeout=60)
    failure_bag = Path(ended[2])
    resumed.wait_for("SESSION_COMPLETE", timeout=30)
    assert resumed.wait(timeout=60) == 0, resumed.output()
    assert "Traceback" not in session.output() + resumed.output()

    lines = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert lines[0]["session"]["tasks"] == [["pick/red", INSTRUCTION]]
    assert [(r["trial"], r["outcome"], r["end"]) for r in lines[1:]] == [
        (0, "discard", "operator"), (0, "success", "operator"), (1, "failure", "time limit")]
    report = json.loads((out / "eval.json").read_text())
    overall = report["overall"]
    assert (report["mode"], overall["episodes"], overall["successes"]) == ("robot", 2, 1)
    assert overall["ci95"][0] < 0.5 < overall["ci95"][1]
    assert overall["decode_ms"]["n"] > 5 and overall["command_latency_ms"]["p50"] > 0
    assert (out / "summary.png").stat().st_size > 1000 and "95 % CI" in (out / "eval.md").read_text()

    # Bags: only the two counted trials, outcomes as judged, every command the policy's, ending on the stop.
    written = sorted(p.name for p in bags.iterdir() if (p / "metadata.yaml").is_file())
    assert written == sorted([success_bag.name, failure_bag.name])
    for bag in (success_bag, failure_bag):
        sent = bag_actions(bag)
        assert len(sent) > 5 and {s for s, _ in sent} == {ArmAction.SOURCE_POLICY}
        np.testing.assert_array_equal(sent[-1][1][:4], [0.0] * 4)

    # The rollouts are training data: qt convert takes them like demonstrations.
    converted = convert(bags, tmp_path / "ds")
    assert converted.returncode == 0, converted.stderr
    ds = Dataset(tmp_path / "ds")
    assert sorted(e["outcome"] for e in ds.episodes) == ["failure", "success"]
    assert {e.get("source") for e in ds.episodes} == {"policy"}


def test_gamepad_demonstrations_on_the_stand_in_arm_become_training_data(tmp_path, children, peer):
    """collect_teleop.launch.py teleop:=joy, as processes: joy teleop (events mode) + recorder + arm."""
    bags = tmp_path / "bags"
    start_stand_in(children, bags)
    teleop = python_child("qt_teleop.joy_teleop", "--ros-args", "-r", f"__ns:={NS}", "-p", "mapping:=gamepad",
                          "-p", "episode_mode:=events", "-p", f"instruction:={INSTRUCTION}", "-p", "task:=pick/red")
    children.append(teleop)
    teleop.wait_for_line("JOY_READY", timeout=STARTUP_S)
    pad = JoyDevice(peer, f"{NS}/joy")
    peer.spin_until(lambda: pad.pub.get_subscription_count() >= 1, 30, "joy_teleop subscribed")
    peer.spin_for(1.0)  # the recorder needs the teleop's first actions before an episode is recorded
    for seed, verdict, outcome in ((1, 3, "success"), (2, 2, "failure")):  # Y success, X failure
        reset_scene(peer, seed)
        pad.press(7)  # Start
        pad.send(1.5, button_4=1, axis_1=1.0)  # deadman held, left stick forward
        pad.send(0.3, button_4=0, axis_1=0.0)
        pad.press(verdict)
        teleop.wait_for_line(rf"EPISODE {outcome.upper()} joy-", timeout=30)
    peer.spin_until(lambda: len(list(bags.glob("*/metadata.yaml"))) >= 2, 60, "two bags")
    converted = convert(bags, tmp_path / "ds")
    assert converted.returncode == 0, converted.stderr
    ds = Dataset(tmp_path / "ds")
    assert sorted(e["outcome"] for e in ds.episodes) == ["failure", "success"]
    assert {e["source"] for e in ds.episodes} == {"teleop"} and ds.instructions == [INSTRUCTION]
    assert (ds.bins[:, 0] > 128).sum() >= 10, "the forward stick should be in the demonstrations"


def test_a_trial_without_the_recorder_never_moves_the_arm(tmp_path, children, peer):
    """--bags promises a bag per trial: with no recorder listening, the trial stops before the policy
    node is activated (the START must be acknowledged first), with an error naming the recorder."""
    from lifecycle_msgs.srv import GetState
    from std_srvs.srv import Trigger

    model = export_tiny_policy(tmp_path / "tiny", image_size=(48, 64), seed=3, instructions=(INSTRUCTION,))
    policy = python_child("qt_policy_node.node", "--ros-args", "-r", f"__ns:={NS}", "--params-file",
                          str(default_params_file()), "-p", f"model_path:={model}", "-p", "autostart:=false")
    children.append(policy)
    policy.wait_for_line("policy_node: ready", timeout=STARTUP_S)
    actions = peer.subscribe(ArmAction, f"{NS}/qt/action", depth=100)
    session = python_pty_child("qt_common.cli", "eval", "--robot", "--model", str(model), "--task",
                               f"pick/red={INSTRUCTION}", "--trials-per-task", "1", "--out", str(tmp_path / "session"),
                               "--bags", str(tmp_path / "bags"), "--namespace", NS, "--startup-timeout", "5")
    children.append(session)
    session.wait_for(r"trial 1/1: task pick/red", timeout=STARTUP_S)
    assert peer.call(Trigger, f"{NS}/robot_eval/start", Trigger.Request()).success
    session.wait_for(r"node .recorder. subscribing to \S+/episode/events .*: not within 5 s", timeout=60)
    assert session.wait(timeout=60) != 0
    state = peer.call(GetState, f"{NS}/policy_node/get_state", GetState.Request()).current_state.label
    assert state == "inactive" and not [m for m in actions if m.source == ArmAction.SOURCE_POLICY]
