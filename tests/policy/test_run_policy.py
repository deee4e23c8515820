"""The RunPolicy action over DDS with the simulator (issue 17).

Three real processes' worth of parts: qt_sim's driver node and the policy node as child
processes (in their own namespace), and an rclpy ActionClient in the test process. The policy
runs with ``goal_required: true`` and the sim's ``episode/events`` as its success topic, so:

* no goal: the arm is held (no motion commands);
* a time limit ends the goal (TIME_LIMIT), the stop command goes out and then silence;
* cancel ends it (CANCELED), the stop command goes out and the arm stays still;
* a new goal preempts the running one (PREEMPTED) and runs with its own instruction;
* the sim's episode END (success, through its end service) ends the goal with SUCCESS;
* bad goals end at once as ABORTED with the goal field named.

Plus the goal bookkeeping without ROS (goal_run.GoalTracker) and its outcome numbers against
the generated action type.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from helpers.policy_models import SIM_TASK, TINY_IMAGE_SIZE
from helpers.policy_probe import PolicyProbe, _qos, start_policy_node, unique_namespace
from helpers.processes import ChildProcess, python_child
from qt_common.action_spec import ActionSpec

from qt_policy_node import goal_run as G

SPEC = ActionSpec.default()
HEIGHT, WIDTH = TINY_IMAGE_SIZE
STARTUP_S = 90.0


def is_stop(msg: Any) -> bool:
    return list(msg.values) == list(SPEC.neutral_values())


# ---- bookkeeping without ROS ------------------------------------------------------------------


def test_outcome_numbers_match_the_action_type() -> None:
    from qt_msgs.action import RunPolicy

    for number, name in G.OUTCOME_NAMES.items():
        assert getattr(RunPolicy.Result, f"OUTCOME_{name.upper()}") == number


def test_tracker_time_limit_preemption_and_goal_mode() -> None:
    tracker = G.GoalTracker(goal_required=False)
    assert not tracker.holding  # today's behaviour until the first goal
    first, previous = tracker.start("a", "pick", 1.0, now_s=10.0)
    assert previous is None and not tracker.holding
    assert tracker.after_tick(10.1, np.ones(5), []) is None and first.steps == 1
    assert tracker.after_tick(10.2, np.zeros(5), ["stale_image"]) is None and first.steps == 1  # a hold: no step
    second, previous = tracker.start("b", "push", 0.0, now_s=10.5)
    assert previous is first and first.end == G.GoalEnd(G.OUTCOME_PREEMPTED, "preempted by goal b")
    assert tracker.after_tick(99.0, np.ones(5), []) is None  # no limit
    ended = tracker.episode_ended(True, "episode END event: success")
    assert ended is second and second.end.outcome == G.OUTCOME_SUCCESS
    assert tracker.holding  # after a goal: only goals move the arm
    tracker.restart()
    assert not tracker.holding
    third, _ = tracker.start("c", "pick", 0.5, now_s=0.0)
    ended = tracker.after_tick(0.6, None, [])
    assert ended is third and third.end.outcome == G.OUTCOME_TIME_LIMIT and "0.5 s" in third.end.reason
    assert G.GoalTracker(goal_required=True).holding


@pytest.mark.parametrize(("instruction", "limit", "field"), [
    ("pick", -1.0, "time_limit_s"), ("pick", float("nan"), "time_limit_s"), ("  ", 0.0, "instruction"),
    ("x" * 2000, 0.0, "instruction"),
])
def test_bad_goals_name_the_field(instruction: str, limit: float, field: str) -> None:
    assert f"goal field {field}" in G.check_goal(instruction, limit, 1000)


# ---- over DDS with the sim ---------------------------------------------------------------------


class Client:
    """An rclpy ActionClient for RunPolicy on the probe's node, plus the sim's episode services."""

    def __init__(self, probe: PolicyProbe) -> None:
        from rclpy.action import ActionClient

        from qt_msgs.action import RunPolicy
        from qt_msgs.srv import EndEpisode, StartEpisode

        self.probe = probe
        self.RunPolicy = RunPolicy
        self.action = ActionClient(probe.node, RunPolicy, "qt/run_policy")
        self.start_client = probe.node.create_client(StartEpisode, "sim/start_episode")
        self.end_client = probe.node.create_client(EndEpisode, "sim/end_episode")
        self.StartEpisode, self.EndEpisode = StartEpisode, EndEpisode
        self.feedback: dict[str, list[Any]] = {}

    def start_episode(self, instruction: str) -> Any:
        reply = self.probe.call(self.start_client, self.StartEpisode.Request(task_id=SIM_TASK, seed=7,
                                                                             instruction=instruction))
        assert reply.accepted, reply.message
        return reply

    def end_episode(self, outcome: int) -> Any:
        reply = self.probe.call(self.end_client, self.EndEpisode.Request(outcome=outcome))
        assert reply.accepted, reply.message
        return reply

    def send(self, instruction: str, time_limit_s: float = 0.0) -> Any:
        probe = self.probe
        probe.wait_until(lambda: self.action.server_is_ready(), 30.0, "RunPolicy server")
        goal = self.RunPolicy.Goal(instruction=instruction, time_limit_s=time_limit_s)
        key: list[str] = []
        future = self.action.send_goal_async(
            goal, feedback_callback=lambda fb: self.feedback.setdefault(key[0] if key else "?", []).append(
                fb.feedback))
        probe.wait_until(future.done, 15.0, "goal response")
        handle = future.result()
        assert handle.accepted
        key.append(bytes(handle.goal_id.uuid).hex())
        return handle

    def result(self, handle: Any, timeout: float = 30.0) -> tuple[int, Any]:
        future = handle.get_result_async()
        self.probe.wait_until(future.done, timeout, "goal result")
        response = future.result()
        return response.status, response.result

    def feedback_of(self, handle: Any) -> list[Any]:
        return self.feedback.get(bytes(handle.goal_id.uuid).hex(), [])


@pytest.fixture(scope="module")
def sim_and_policy(sim_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """qt_sim's driver and the policy node (goal_required, success topic = the sim's END events)."""
    namespace = unique_namespace()
    params = tmp_path_factory.mktemp("run_policy") / "sim.yaml"
    params.write_text(yaml.safe_dump({"/**/sim_driver": {"ros__parameters": {
        "auto_start": False, "image_height": HEIGHT, "image_width": WIDTH, "tasks": SIM_TASK, "horizon": 100000,
    }}}))
    sim = python_child("qt_sim.driver_node", "--ros-args", "-r", f"__ns:=/{namespace}", "--params-file", str(params))
    started: list[ChildProcess] = [sim]
    try:
        policy = start_policy_node(sim_model, namespace, autostart=True, use_text_encoder=False, image_height=HEIGHT,
                                   image_width=WIDTH, goal_required=True, success_topic="episode/events")
        started.append(policy)
        sim.wait_for_line(r"sim_driver ready", STARTUP_S)
        policy.wait_for_line(r"policy_node: ready", STARTUP_S)
        yield namespace
        assert "Traceback" not in policy.output(), policy.output()
    finally:
        for child in started:
            child.stop()


@pytest.fixture
def client(sim_and_policy: str) -> Iterator[Client]:
    with PolicyProbe(sim_and_policy, TINY_IMAGE_SIZE) as probe:
        yield Client(probe)


def _wait_motion(probe: PolicyProbe, since: float, count: int = 3) -> None:
    probe.wait_until(lambda: sum(not is_stop(m) for m in probe.actions.since(since)) >= count, 30.0, "policy motion")


def _assert_stopped_and_silent(probe: PolicyProbe, since: float) -> None:
    """After the goal's last motion command exactly one command went out, the stop, and then
    nothing for a second (a holding node is silent)."""
    probe.wait_until(lambda: probe.actions.since(since) and is_stop(probe.actions.since(since)[-1]), 10.0,
                     "stop command")
    probe.spin(1.0)
    sent = probe.actions.since(since)
    last_motion = max(i for i, m in enumerate(sent) if not is_stop(m))
    tail = sent[last_motion + 1:]
    assert len(tail) == 1 and is_stop(tail[0]), [list(m.values) for m in tail]


def test_run_policy_goals_over_dds(client: Client) -> None:
    from action_msgs.msg import GoalStatus

    probe = client.probe
    wordings = __import__("qt_sim.tasks", fromlist=["instructions"]).instructions(SIM_TASK, "train")
    poses: list[tuple[float, np.ndarray]] = []
    probe.node.create_subscription(PoseStamped, "ee_pose", lambda m: poses.append(
        (time.monotonic(), np.array([m.pose.position.x, m.pose.position.y, m.pose.position.z]))), _qos(50))
    episode = client.start_episode(wordings[0])

    # No goal yet (goal_required): the node holds, nothing but (at most) the one stop command.
    probe.wait_until(lambda: len(probe.statuses) >= 5, 30.0, "policy status")
    assert all(is_stop(m) for m in probe.actions.messages)
    assert "no_goal" in probe.statuses.messages[-1].interventions

    # Time limit: ends the goal, the stop command goes out once, then silence.
    sent = time.monotonic()
    handle = client.send(episode.instruction, time_limit_s=1.5)
    status, result = client.result(handle)
    assert result.outcome == G.OUTCOME_TIME_LIMIT and "time limit of 1.5 s" in result.reason
    assert status == GoalStatus.STATUS_ABORTED  # a success topic is configured: the limit means "not done"
    assert result.steps > 0 and sum(not is_stop(m) for m in probe.actions.since(sent)) >= result.steps - 1
    feedback = client.feedback_of(handle)
    assert feedback and [f.step for f in feedback] == sorted(f.step for f in feedback)
    assert len(feedback[-1].last_command) == SPEC.num_dims
    _assert_stopped_and_silent(probe, sent)

    # Cancel: CANCELED, one stop command, and the arm stays still.
    sent = time.monotonic()
    handle = client.send(episode.instruction)
    _wait_motion(probe, sent)
    cancel = handle.cancel_goal_async()
    probe.wait_until(cancel.done, 15.0, "cancel response")
    assert len(cancel.result().goals_canceling) == 1
    status, result = client.result(handle)
    stopped = time.monotonic()
    assert status == GoalStatus.STATUS_CANCELED and result.outcome == G.OUTCOME_CANCELED and result.steps > 0
    _assert_stopped_and_silent(probe, sent)
    still = np.array([p for t, p in poses if t >= stopped + 0.5])
    assert len(still) >= 5 and np.ptp(still, axis=0).max() < 1e-3, "the arm must hold still after a cancel"

    # Preemption: the newer goal replaces the running one, which ends PREEMPTED; the new one runs.
    first = client.send(wordings[0])
    _wait_motion(probe, time.monotonic())
    sent = time.monotonic()
    switched = time.monotonic()
    second = client.send(wordings[1])
    status, result = client.result(first)
    assert status == GoalStatus.STATUS_ABORTED and result.outcome == G.OUTCOME_PREEMPTED
    assert "preempted by goal" in result.reason
    _wait_motion(probe, switched + 0.5)  # the arm keeps moving under the new goal
    probe.wait_until(lambda: len(client.feedback_of(second)) >= 3, 15.0, "feedback of the new goal")

    # Success from the sim's episode END event (its end service, as a success detector would).
    client.end_episode(client.EndEpisode.Request.OUTCOME_SUCCESS)
    status, result = client.result(second)
    assert status == GoalStatus.STATUS_SUCCEEDED and result.outcome == G.OUTCOME_SUCCESS, result.reason
    assert f"episode END event: success (episode {episode.episode_id})" == result.reason
    _assert_stopped_and_silent(probe, sent)


def test_goals_that_cannot_run_end_aborted_with_the_field(client: Client) -> None:
    from action_msgs.msg import GoalStatus

    cases = [(("pick up the red cube", -1.0), "goal field time_limit_s"),
             (("fly to the moon", 0.0), "goal field instruction 'fly to the moon'")]
    for (instruction, limit), words in cases:
        status, result = client.result(client.send(instruction, limit))
        assert status == GoalStatus.STATUS_ABORTED and result.outcome == G.OUTCOME_ABORTED
        assert result.reason.startswith(words), result.reason
