"""ROS evaluation: the real policy node and the sim driver as processes, episodes over DDS.

What runs is what a robot runs: ``python -m qt_policy_node.node`` with the given parameter file
(config/run.yaml by default) and ``python -m qt_sim.driver_node``, each in a process of its own
(qt_eval.children: stopped together, never left behind). This process is the operator: for each
planned episode it starts the episode through ``sim/start_episode`` (task, held-out seed and the
wording), waits for the episode's first frame, **activates** the policy node (lifecycle
``change_state``), waits for the sim's END event (the outcome), then **deactivates** it (the
node publishes its stop command). Activating per episode gives every trial the same start
(no frame from before, the slew ramp from stop), as an operator enabling the policy does.

The sim runs ``rate_hz`` wall ticks of ``sim_period_s`` simulated time (the card's control
period) with lockstep (docs/SIM.md), and the node decides at ``rate_hz``: so an evaluation runs
faster than real time with the dynamics of the robot the data came from, and the sim executes
exactly one policy decision per frame. Two timing figures show where that did not hold: the
sim's lockstep misses (ticks run without the decision on the last frame) and the node's ticks
that found no new frame (decision reused, safety ramp advanced once more).

Measured per episode: outcome (END event), steps (ticks after the first), control rate (tick
stamps), decode latency (``PolicyStatus.inference_latency_ms``), command latency (arrival of
each frame's first ``ArmAction`` here minus the frame stamp it carries).

The node's TwistStamped and gripper outputs go to ``qt_eval/servo_twist`` and
``qt_eval/gripper_command`` (nobody listens): the sim executes the ArmAction alone, whose values
the in-process mode reproduces bit for bit; the twist carries the same command divided by the
control period (the driver multiplying it back can differ in the last bit), and the gripper
command is not rounded to float32 as the ArmAction is, so either could race the ArmAction for
the driver's channel and change the executed value by a rounding error.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from qt_policy_node.decoder import load_card
from qt_policy_node.safety import HOLD_RULES

from qt_eval.plan import EpisodeSpec
from qt_eval.report import EpisodeResult

STARTUP_TIMEOUT_S = 120.0
HOLD_LIMIT_S = 5.0  # a policy holding this long in an episode is a setup error, not a result
TWIST_SINK = "qt_eval/servo_twist"
GRIPPER_SINK = "qt_eval/gripper_command"


@dataclass
class RosEvalConfig:
    model_dir: Path
    params_file: Path
    rate_hz: float = 30.0
    sim_period_s: float = 0.1
    horizon: int = 100
    lockstep: bool = True
    log_dir: Path | None = None


def _ros_args(params: dict[str, Any]) -> list[str]:
    out = []
    for name, value in params.items():
        literal = ("true" if value else "false") if isinstance(value, bool) else str(value)
        out += ["-p", f"{name}:={literal}"]
    return out


class _Probe:
    """The evaluator's rclpy side: episode client + policy outputs + lifecycle calls."""

    def __init__(self, group: Any):
        from lifecycle_msgs.srv import ChangeState
        from qt_common.ros_common import reliable
        from sensor_msgs.msg import Image

        from qt_eval.episode_client import EpisodeClient
        from qt_msgs.msg import ArmAction, PolicyStatus

        self.client = EpisodeClient(group, "qt_eval")
        node = self.client.node
        self.ChangeState = ChangeState
        self.actions: list[tuple[int, int, np.ndarray]] = []  # (frame stamp, arrival ns, values)
        self.statuses: list[tuple[int, float]] = []  # (stamp, inference latency ms) of decoding ticks
        self.frames: dict[int, np.ndarray] = {}
        self.capture = False
        self.hold_since: float | None = None
        self.hold_rules: list[str] = []
        node.create_subscription(ArmAction, "qt/action", self._on_action, reliable(100))
        node.create_subscription(PolicyStatus, "qt/policy_status", self._on_status, reliable(100))
        node.create_subscription(Image, "camera/image_raw", self._on_image, reliable(10))
        self.lifecycle = node.create_client(ChangeState, "policy_node/change_state")

    def _on_action(self, msg: Any) -> None:
        if msg.source == msg.SOURCE_POLICY:
            self.actions.append((self.client.stamp_ns(msg.header.stamp), time.time_ns(),
                                 np.asarray(msg.values, dtype=np.float64)))

    def _on_status(self, msg: Any) -> None:
        holds = [r for r in msg.interventions if r in HOLD_RULES]
        if holds:
            self.hold_since = self.hold_since or time.monotonic()
            self.hold_rules = holds
        else:
            self.hold_since = None
        if msg.inference_latency_ms > 0:
            self.statuses.append((self.client.stamp_ns(msg.header.stamp), float(msg.inference_latency_ms)))

    def _on_image(self, msg: Any) -> None:
        if self.capture:
            frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
            self.frames[self.client.stamp_ns(msg.header.stamp)] = frame

    def transition(self, name: str) -> None:
        from lifecycle_msgs.msg import Transition

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE}
        self.client.spin_until(self.lifecycle.service_is_ready, 30.0, "service policy_node/change_state")
        reply = self.client.call(self.lifecycle, self.ChangeState.Request(transition=Transition(id=ids[name])),
                                 timeout=60.0)
        if not reply.success:
            raise RuntimeError(f"policy node refused {name} (see its log below)")

    def check_hold(self) -> None:
        if self.hold_since is not None and time.monotonic() - self.hold_since > HOLD_LIMIT_S:
            raise RuntimeError(f"the policy node has held the arm still for {HOLD_LIMIT_S:g} s: {self.hold_rules}")


def run_ros(config: RosEvalConfig, plan: list[EpisodeSpec], *,
            keep_frames: Callable[[int, EpisodeSpec], bool] = lambda i, s: False, keep_executed: bool = False,
            progress: Callable[[int, EpisodeResult], None] = lambda i, r: None) -> list[EpisodeResult]:
    from qt_eval.children import ChildGroup
    from qt_eval.collect import episode_timeout_s, sim_driver_params

    card = load_card(config.model_dir)
    image = (int(card["image"]["height"]), int(card["image"]["width"]))
    tasks = tuple(sorted({s.task_id for s in plan}))
    results: list[EpisodeResult] = []
    with ChildGroup(config.log_dir) as group:
        sim_params = sim_driver_params(config.rate_hz, config.sim_period_s, image, config.horizon, tasks,
                                       config.lockstep)
        sim = group.start("sim_driver", "qt_sim.driver_node", "--ros-args", *_ros_args(sim_params))
        policy = group.start("policy_node", "qt_policy_node.node", "--ros-args", "--params-file",
                             str(config.params_file), *_ros_args({
                                 "model_path": str(config.model_dir), "autostart": False,
                                 "control_rate_hz": float(config.rate_hz), "image_height": image[0],
                                 "image_width": image[1], "twist_topic": TWIST_SINK,
                                 "gripper_topic": GRIPPER_SINK}))
        sim.wait_for(r"sim_driver ready", STARTUP_TIMEOUT_S, "sim_driver ready")
        policy.wait_for(r"policy_node: ready", STARTUP_TIMEOUT_S, "policy_node ready")
        probe = _Probe(group)
        try:
            probe.client.wait_for_graph(publishers={"camera/image_raw": 1}, subscribers={"qt/action": 1},
                                        timeout=STARTUP_TIMEOUT_S)
            try:
                probe.transition("configure")
            except RuntimeError as exc:
                raise RuntimeError(f"{exc}\n{policy.tail()}") from None
            # The node's subscriptions and publishers exist from configure on (counts include this
            # process's own subscriptions to the camera and ee_pose).
            probe.client.wait_for_graph(
                publishers={"qt/policy_status": 1, "qt/action": 1},
                subscribers={"camera/image_raw": 2, "instruction": 1, "ee_pose": 2 if card["proprio_dim"] else 1},
                timeout=STARTUP_TIMEOUT_S)
            first = plan[0]
            probe.client.warm_up(first.task_id, first.seed, 30.0, instruction=first.instruction,
                                 engage=lambda: probe.transition("activate"),
                                 disengage=lambda: probe.transition("deactivate"))
            timeout = episode_timeout_s(config.horizon, config.rate_hz)
            for index, spec in enumerate(plan):
                result = _episode(probe, sim, spec, timeout, keep_frames(index, spec), keep_executed)
                results.append(result)
                progress(index, result)
        except BaseException:
            probe.client.discard()
            raise
        finally:
            probe.client.close()
    return results


def _episode(probe: _Probe, sim: Any, spec: EpisodeSpec, timeout: float, keep_frames: bool,
             keep_executed: bool) -> EpisodeResult:
    client = probe.client
    began = time.monotonic()
    probe.actions.clear()
    probe.statuses.clear()
    probe.frames.clear()
    probe.capture = keep_frames
    episode_id, instruction = client.start(spec.task_id, spec.seed, spec.instruction)
    if instruction != spec.instruction:
        raise RuntimeError(f"episode {episode_id}: the sim uses {instruction!r}, expected {spec.instruction!r}")

    start_ns, _ = client.first_frame(episode_id)
    probe.hold_since = None
    probe.transition("activate")
    try:
        deadline = time.monotonic() + timeout

        def ended() -> bool:
            probe.check_hold()
            return any(e.episode_id == episode_id and e.event == e.EVENT_END for e in client.events)

        client.spin_until(ended, max(1.0, deadline - time.monotonic()), f"END event of {episode_id}")
    except BaseException:
        client.discard()
        raise
    finally:
        probe.transition("deactivate")
    end = next(e for e in client.events if e.episode_id == episode_id and e.event == e.EVENT_END)
    end_ns = client.stamp_ns(end.header.stamp)
    client.spin_until(lambda: client.tick_stamps[-1] >= end_ns, 5.0, f"last frame of {episode_id}")
    misses = sim.wait_for(rf"episode {episode_id} ended: \w+(?: \(lockstep misses: (\d+)\))?", 10.0,
                          "the sim's end-of-episode line")
    wall_s = time.monotonic() - began
    probe.capture = False
    ticks = [s for s in client.tick_stamps if start_ns < s <= end_ns]
    return _result(probe, spec, episode_id, end.outcome, ticks, int(misses.group(1) or 0), wall_s, keep_executed)


def _result(probe: _Probe, spec: EpisodeSpec, episode_id: str, outcome_code: int, ticks: list[int],
            lockstep_misses: int, wall_s: float, keep_executed: bool) -> EpisodeResult:
    from qt_eval.episode_client import OUTCOME_NAMES

    window = set(ticks[:-1])  # frames whose decision was executed (the last frame is the outcome)
    first: dict[int, tuple[int, np.ndarray]] = {}
    repeated = 0
    for stamp, arrival, values in probe.actions:
        if stamp not in window:
            continue
        if stamp in first:
            repeated += 1
        else:
            first[stamp] = (arrival, values)
    span_s = (ticks[-1] - ticks[0]) / 1e9 if len(ticks) > 1 else 0.0
    result = EpisodeResult(
        spec.task_id, spec.seed, spec.instruction, spec.split, OUTCOME_NAMES.get(outcome_code, "failure"),
        steps=len(ticks) - 1, wall_s=wall_s, control_rate_hz=(len(ticks) - 1) / span_s if span_s > 0 else 0.0,
        decode_ms=[ms for stamp, ms in probe.statuses if ticks[0] <= stamp <= ticks[-1]],
        command_latency_ms=[(arrival - stamp) / 1e6 for stamp, (arrival, _) in sorted(first.items())],
        lockstep_misses=lockstep_misses, repeated_commands=repeated, episode_id=episode_id)
    if keep_executed:
        result.executed = [first[s][1] for s in ticks[:-1] if s in first]
    if probe.frames:
        result.frames = [probe.frames[s] for s in ticks if s in probe.frames]
    return result
