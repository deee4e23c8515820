"""``qt eval --robot``: success rate of an exported policy on a real arm, judged by an operator.

    ros2 launch launch/robot.launch.py model:=models/mine autostart:=false     # driver topics, policy, recorder
    qt eval --robot --model models/mine --task pick/red="pick up the red cube" --trials-per-task 10
    qt eval --robot --model models/mine --resume                               # continue a session

No simulator: the arm's own driver, the policy node (started with ``autostart:=false``) and the
recorder run as on any robot day; this process is the evaluation's bookkeeper. Per trial it
shows the operator the task and the instruction and waits for the scene to be reset and the
trial started (``n`` in this terminal, or ``/robot_eval/start``, a ``std_srvs/Trigger`` a remote
button can call); it then publishes the instruction (latched ``/instruction``) and the episode's
START (``/episode/events``), **activates** the policy node over its lifecycle, and waits for the
operator's verdict: ``y`` success, ``u`` failure, ``x`` discard (the trial is repeated), or the
time limit (failure). It **deactivates** the node (its stop command goes out) before publishing
END with the outcome, on which the recorder writes the rollout as an episode bag: outcome in
``custom_data``, the policy's commands as ``qt_msgs/ArmAction`` with ``source`` POLICY, so
``qt convert`` turns evaluation bags into training data like demonstrations (docs/E2E.md).

Resumable: each finished trial is appended as one JSON line to ``<out>/trials.jsonl`` the moment
it ends (first line: the session's model and plan); ``--resume`` continues after the last counted
trial, and ``q`` (or Ctrl-C) ends a session at any time, discarding a trial in progress. The
report is the sim evaluation's (qt_eval.report): table with 95 % Wilson intervals, decode and
frame-to-command latency, ``eval.json`` / ``eval.md`` / ``summary.png`` in ``<out>``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shlex
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qt_policy_node.decoder import PolicyCardError, load_card
from qt_policy_node.safety import HOLD_RULES

from qt_eval.operator import HELP, Operator, stdin_is_terminal
from qt_eval.plan import EpisodeSpec, missing_embeddings
from qt_eval.report import EpisodeResult, build_report, merge_into_card, terminal_table, write_outputs

SPLIT = "robot"  # the card's evaluation entry and the report's split name
COUNTED = ("success", "failure")
SHEET_TRIALS = 6
SHEET_FRAME_PERIOD_S = 0.5  # frames kept for the contact sheet: one per half second ...
SHEET_FRAME_WIDTH = 128  # ... downscaled to this width (a 640x480 camera over minutes is gigabytes)
BAG_TIMEOUT_S = 30.0


class SessionEnded(Exception):
    """The operator ended the session (q, Ctrl-C, /robot_eval/quit); it resumes with --resume."""


@dataclass
class RobotEvalConfig:
    model_dir: Path
    tasks: list[tuple[str, str]]  # (task id, instruction)
    trials_per_task: int = 10
    time_limit_s: float = 60.0
    out: Path = Path("runs/eval/robot")
    policy_node: str = "policy_node"
    bags: Path | None = None  # the recorder's output folder: each trial's bag is checked there
    recorder_node: str = "recorder"  # with bags: a trial starts once this node has its START
    use_keys: bool = True
    startup_timeout_s: float = 60.0
    command: str = ""
    namespace: str = ""  # of the robot's nodes and topics (as run.launch.py namespace:=...)

    @property
    def results_path(self) -> Path:
        return self.out / "trials.jsonl"


def robot_plan(tasks: list[tuple[str, str]], trials_per_task: int) -> list[EpisodeSpec]:
    """Tasks round robin (an interrupted session has tried every task), ``trials_per_task`` rounds."""
    if not tasks:
        raise ValueError("tasks: expected at least one (task, instruction)")
    if trials_per_task < 1:
        raise ValueError(f"--trials-per-task: expected >= 1, got {trials_per_task}")
    return [EpisodeSpec(task, index, instruction, SPLIT)
            for index, (task, instruction) in enumerate(tasks * trials_per_task)]


def parse_task(text: str) -> tuple[str, str]:
    """'pick/red=pick up the red cube' -> (task id, instruction); a bare instruction is its own id."""
    task, sep, instruction = text.partition("=")
    task, instruction = task.strip(), instruction.strip()
    if not sep:
        task, instruction = text.strip(), text.strip()
    if not task or not instruction:
        raise argparse.ArgumentTypeError(f"--task: expected TASK=INSTRUCTION or an instruction, got {text!r}")
    return task, instruction


# ---- the results file ------------------------------------------------------------------------


def session_header(config: RobotEvalConfig, card: dict[str, Any]) -> dict[str, Any]:
    return {"session": {"model_id": card.get("model_id"), "model_dir": str(config.model_dir),
                        "tasks": [list(t) for t in config.tasks], "trials_per_task": config.trials_per_task,
                        "time_limit_s": config.time_limit_s}}


def read_results(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """(session header, trial records) of a results file; a torn last line (a crash mid-write) is ignored."""
    header, records = None, []
    lines = path.read_text().splitlines() if path.is_file() else []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise ValueError(f"{path}:{number}: not a JSON line; fix or move the file") from None
        if "session" in item:
            header = item["session"]
        else:
            records.append(item)
    return header, records


def check_resumable(header: dict[str, Any] | None, config: RobotEvalConfig, card: dict[str, Any]) -> None:
    """The file must describe this session (same model and plan), else resuming would mix two."""
    if header is None:
        raise ValueError(f"{config.results_path}: no session header line; it was not written by qt eval --robot")
    expected = session_header(config, card)["session"]
    for key in ("model_id", "tasks", "trials_per_task"):
        if header.get(key) != expected[key]:
            raise ValueError(f"{config.results_path}: --resume of another session: {key} is {header.get(key)!r} "
                             f"there, {expected[key]!r} now (use the same --model/--task/--trials-per-task, or a new "
                             "--out)")


def result_from_record(record: dict[str, Any]) -> EpisodeResult:
    raw = record.get("raw") or {}
    return EpisodeResult(
        record["task_id"], int(record["seed"]), record["instruction"], record.get("split", SPLIT), record["outcome"],
        int(record["steps"]), float(record["wall_s"]), float(record["control_rate_hz"]),
        decode_ms=list(raw.get("decode_ms", [])), command_latency_ms=list(raw.get("command_latency_ms", [])),
        episode_id=record.get("episode_id", ""))


def append_record(path: Path, item: dict[str, Any]) -> None:
    """One JSON line, flushed and fsynced: a trial is never lost once its verdict is given."""
    import os

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(item) + "\n")
        f.flush()
        os.fsync(f.fileno())


# ---- the ROS side ------------------------------------------------------------------------------


@dataclass
class _Trial:
    """What arrives during one trial."""

    actions: list[tuple[int, int]] = field(default_factory=list)  # (frame stamp ns, arrival ns), POLICY source
    decode_ms: list[float] = field(default_factory=list)
    frames: list[np.ndarray] = field(default_factory=list)
    keep_frames: bool = False
    last_frame_s: float = float("-inf")
    hold_rules: list[str] = field(default_factory=list)


class RobotSession:
    """The evaluator's rclpy node on a private context: operator input, lifecycle calls, probes."""

    def __init__(self, config: RobotEvalConfig):
        import rclpy
        from lifecycle_msgs.srv import ChangeState, GetState
        from qt_common.ros_common import reliable, stamp_ns
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image
        from std_msgs.msg import String

        from qt_msgs.msg import ArmAction, EpisodeEvent, PolicyStatus

        self.config = config
        self._rclpy, self.stamp_ns = rclpy, stamp_ns
        self.ArmAction, self.EpisodeEvent, self.String = ArmAction, EpisodeEvent, String
        self.ChangeState = ChangeState
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        namespace = "/" + config.namespace.strip("/") if config.namespace.strip("/") else ""
        self.node = rclpy.create_node("robot_eval", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.operator = Operator(self.node, config.use_keys)
        self.trial: _Trial | None = None
        self.active = False
        self.open_episode: tuple[str, EpisodeSpec] | None = None
        node = self.node
        self.instruction_pub = node.create_publisher(String, "instruction", reliable(1, latched=True))
        self.events_pub = node.create_publisher(EpisodeEvent, "episode/events", reliable(10, latched=True))
        node.create_subscription(ArmAction, "qt/action", self._on_action, reliable(100))
        node.create_subscription(PolicyStatus, "qt/policy_status", self._on_status, reliable(100))
        node.create_subscription(Image, "camera/image_raw", self._on_image, qos_profile_sensor_data)
        name = config.policy_node.strip("/")
        self.change_state = node.create_client(ChangeState, f"{name}/change_state")
        self.get_state = node.create_client(GetState, f"{name}/get_state")

    # ---- callbacks

    def _on_action(self, msg: Any) -> None:
        if self.trial is not None and self.active and msg.source == msg.SOURCE_POLICY:
            self.trial.actions.append((self.stamp_ns(msg.header.stamp), time.time_ns()))

    def _on_status(self, msg: Any) -> None:
        if self.trial is not None and self.active:
            if msg.inference_latency_ms > 0:
                self.trial.decode_ms.append(float(msg.inference_latency_ms))
            self.trial.hold_rules = [r for r in msg.interventions if r in HOLD_RULES]

    def _on_image(self, msg: Any) -> None:
        trial = self.trial
        now = time.monotonic()
        if trial is None or not self.active or not trial.keep_frames or now - trial.last_frame_s < SHEET_FRAME_PERIOD_S:
            return
        if msg.encoding not in ("rgb8", "bgr8"):
            return
        frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.step)[:, : msg.width * 3]
        frame = frame.reshape(msg.height, msg.width, 3)
        if msg.encoding == "bgr8":
            frame = frame[:, :, ::-1]
        step = max(1, msg.width // SHEET_FRAME_WIDTH)
        trial.frames.append(np.ascontiguousarray(frame[::step, ::step]))
        trial.last_frame_s = now

    # ---- plumbing

    def spin(self, seconds: float = 0.05) -> None:
        self.executor.spin_once(timeout_sec=seconds)

    def spin_until(self, predicate: Any, timeout: float, what: str) -> None:
        from qt_common.ros_common import spin_until

        spin_until(self.spin, predicate, timeout, what)

    def call(self, client: Any, request: Any, timeout: float = 30.0) -> Any:
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"answer from {client.srv_name}")
        return future.result()

    def lifecycle_state(self) -> str:
        from lifecycle_msgs.srv import GetState

        self.spin_until(self.get_state.service_is_ready, self.config.startup_timeout_s,
                        f"the policy node's lifecycle services ({self.config.policy_node}/get_state; is it running, "
                        "started with autostart:=false?)")
        return str(self.call(self.get_state, GetState.Request()).current_state.label)

    def transition(self, name: str) -> None:
        from lifecycle_msgs.msg import Transition

        ids = {"configure": Transition.TRANSITION_CONFIGURE, "activate": Transition.TRANSITION_ACTIVATE,
               "deactivate": Transition.TRANSITION_DEACTIVATE}
        self.spin_until(self.change_state.service_is_ready, self.config.startup_timeout_s,
                        f"service {self.config.policy_node}/change_state")
        reply = self.call(self.change_state, self.ChangeState.Request(transition=Transition(id=ids[name])), 60.0)
        if not reply.success:
            raise RuntimeError(f"the policy node refused {name} (its log says why)")
        self.active = name == "activate"

    def prepare_policy(self) -> None:
        """Bring the policy node to inactive (configured, not driving the arm)."""
        state = self.lifecycle_state()
        if state == "unconfigured":
            self.transition("configure")
        elif state == "active":
            self.operator.say("the policy node was active; deactivating it (trials start it themselves)")
            self.transition("deactivate")
        elif state != "inactive":
            raise RuntimeError(f"the policy node is {state!r}; expected unconfigured, inactive or active")

    def publish_event(self, event: str, episode_id: str, spec: EpisodeSpec, outcome: str = "none") -> None:
        msg = self.EpisodeEvent()
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.event = msg.EVENT_START if event == "start" else msg.EVENT_END
        msg.outcome = {"none": msg.OUTCOME_NONE, "success": msg.OUTCOME_SUCCESS, "failure": msg.OUTCOME_FAILURE,
                       "discard": msg.OUTCOME_DISCARD}[outcome]
        msg.episode_id, msg.instruction, msg.task_id, msg.seed = episode_id, spec.instruction, spec.task_id, -1
        self.events_pub.publish(msg)

    def wait_recorder_has_start(self) -> None:
        """Until the recorder acknowledged the START just published: the arm moves only then.

        The publisher's subscription count is its own side of the match; the recorder may discover
        this process later (a resumed session's first trial, a loaded machine) and then gets the
        START after the policy's first commands. A START handled later than the recorder's
        pre-roll (1 s) leaves the trial's first frames out of the bag and ``qt convert`` refuses
        it (seen once in CI). A reader acknowledges only a writer it has matched, so the
        acknowledgement proves both sides did.
        """
        from rclpy.duration import Duration

        timeout, name = self.config.startup_timeout_s, self.config.recorder_node
        topic = self.events_pub.topic_name

        def recorder_subscribed() -> bool:  # the policy node subscribes to the events too (its success topic)
            return any(info.node_name == name for info in self.node.get_subscriptions_info_by_topic(topic))

        self.spin_until(recorder_subscribed, timeout, f"node {name!r} subscribing to {topic} (--bags is given: is the "
                        "recorder running in this namespace? --recorder-node names it)")
        if not self.events_pub.wait_for_all_acked(Duration(seconds=timeout)):
            raise TimeoutError(f"the recorder did not acknowledge the trial's START within {timeout:g} s")

    def close(self) -> None:
        """Leave the arm stopped and no episode open, whatever happened."""
        try:
            if self.active:
                self.transition("deactivate")
        except (TimeoutError, RuntimeError) as exc:
            self.operator.say(f"warning: could not deactivate the policy node ({exc}); stop the arm by hand")
        if self.open_episode is not None:
            self.publish_event("end", self.open_episode[0], self.open_episode[1], "discard")
            self.open_episode = None
            self.spin(0.2)
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        self._rclpy.try_shutdown(context=self.context)

    # ---- one trial

    def wait_for_start(self, index: int, total: int, spec: EpisodeSpec) -> None:
        say = self.operator.say
        say(f"\ntrial {index + 1}/{total}: task {spec.task_id}: {spec.instruction!r}\n"
            "reset the scene, then press n to start (or call /robot_eval/start); q ends the session")
        while True:
            for request in self.operator.poll():
                if request == "start":
                    return
                if request == "quit":
                    raise SessionEnded
                say(f"{request}: no trial is running (n starts one)")
            self.spin()

    def run_trial(self, index: int, total: int, spec: EpisodeSpec) -> tuple[EpisodeResult, str, str]:
        """(result, how it ended, episode id); the outcome may be discard (not counted, repeated)."""
        config, say = self.config, self.operator.say
        self.wait_for_start(index, total, spec)
        episode_id = f"robot-{spec.task_id.replace('/', '-')}-t{index}-{uuid.uuid4().hex[:8]}"
        self.trial = trial = _Trial(keep_frames=index < SHEET_TRIALS)
        self.instruction_pub.publish(self.String(data=spec.instruction))
        self.publish_event("start", episode_id, spec)
        self.open_episode = (episode_id, spec)
        if config.bags is not None:
            self.wait_recorder_has_start()
        began = time.monotonic()
        self.transition("activate")
        say(f"TRIAL_STARTED {episode_id}: the policy drives the arm; y success, u failure, x discard "
            f"(time limit {config.time_limit_s:g} s)")
        outcome, reason, warned = "", "", False
        try:
            while not outcome:
                for request in self.operator.poll():
                    if request in ("success", "failure", "discard"):
                        outcome, reason = request, "operator"
                        break
                    if request == "quit":
                        outcome, reason = "discard", "quit"
                        break
                    say("start: a trial is running (y/u/x end it)")
                if not outcome and time.monotonic() - began > config.time_limit_s:
                    outcome, reason = "failure", "time limit"
                if not warned and trial.hold_rules and time.monotonic() - began > 5.0:
                    say(f"note: the policy node is holding the arm still: {trial.hold_rules}")
                    warned = True
                self.spin()
        except KeyboardInterrupt:
            outcome, reason = "discard", "quit"
        ended = time.monotonic()
        self.transition("deactivate")  # the stop command goes out before the episode ends
        self.publish_event("end", episode_id, spec, outcome)
        self.open_episode = None
        self.trial = None
        return self._result(spec, trial, outcome, began, ended, episode_id), reason, episode_id

    def _result(self, spec: EpisodeSpec, trial: _Trial, outcome: str, began: float, ended: float,
                episode_id: str) -> EpisodeResult:
        first: dict[int, int] = {}
        for stamp, arrival in trial.actions:
            first.setdefault(stamp, arrival)
        stamps = sorted(first)
        span_s = (stamps[-1] - stamps[0]) / 1e9 if len(stamps) > 1 else 0.0
        return EpisodeResult(
            spec.task_id, spec.seed, spec.instruction, spec.split, outcome, steps=len(stamps), wall_s=ended - began,
            control_rate_hz=(len(stamps) - 1) / span_s if span_s > 0 else 0.0, decode_ms=trial.decode_ms,
            command_latency_ms=[(first[s] - s) / 1e6 for s in stamps], episode_id=episode_id, frames=trial.frames)


def wait_for_bag(bags: Path, episode_id: str, outcome: str, timeout: float, session: RobotSession) -> str:
    """The recorder's bag of the episode (custom_data names it), checked for the operator's outcome."""
    import yaml

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for meta in bags.glob("*/metadata.yaml"):
            try:
                custom = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"].get("custom_data") or {}
            except (OSError, KeyError, TypeError, yaml.YAMLError):
                continue
            if custom.get("episode_id") == episode_id:
                if custom.get("outcome") != outcome:
                    raise RuntimeError(f"{meta.parent}: the recorder wrote outcome {custom.get('outcome')!r}, "
                                       f"the operator said {outcome!r}")
                return str(meta.parent)
        session.spin(0.2)
    raise TimeoutError(f"no bag of episode {episode_id} appeared in {bags} within {timeout:g} s (is the recorder "
                       "running, writing there, and receiving camera, joint states and the policy's actions?)")


# ---- the session -------------------------------------------------------------------------------


def run_session(config: RobotEvalConfig, resume: bool) -> tuple[dict[str, Any], list[EpisodeResult]]:
    """Run (or continue) the session; the report over every counted trial of the results file."""
    card = load_card(config.model_dir)
    plan = robot_plan(config.tasks, config.trials_per_task)
    path = config.results_path
    header, records = read_results(path)
    if records or header:
        if not resume:
            raise ValueError(f"{path} holds a session already: --resume continues it, --out starts another")
        check_resumable(header, config, card)
    else:
        append_record(path, session_header(config, card))
    results = [result_from_record(r) for r in records if r["outcome"] in COUNTED]
    done = {int(r["trial"]) for r in records if r["outcome"] in COUNTED}
    unknown = missing_embeddings(plan, card)
    session = RobotSession(config)
    say = session.operator.say
    try:
        with session.operator.keys():
            say(f"qt eval --robot: {card.get('model_id')} ({card.get('algorithm')}), {len(plan)} trial(s), "
                f"{len(done)} done; results append to {path}")
            if unknown:
                say(f"note: the card caches no embedding for {unknown}; the policy node needs its text encoder")
            say(HELP)
            session.prepare_policy()
            index = next((i for i in range(len(plan)) if i not in done), None)
            while index is not None:
                spec = plan[index]
                result, reason, episode_id = session.run_trial(index, len(plan), spec)
                record = {"trial": index, **result.to_dict(), "end": reason, "bag": "",
                          "raw": {"decode_ms": result.decode_ms, "command_latency_ms": result.command_latency_ms}}
                try:
                    if config.bags is not None and result.outcome in COUNTED:
                        record["bag"] = wait_for_bag(config.bags, episode_id, result.outcome, BAG_TIMEOUT_S, session)
                except (TimeoutError, RuntimeError) as exc:
                    record["bag_error"] = str(exc)
                    raise
                finally:
                    append_record(path, record)  # the verdict is kept even when the bag is missing
                bag = record["bag"]
                counted = result.outcome in COUNTED
                if counted:
                    results.append(result)
                    done.add(index)
                say(f"TRIAL_ENDED {episode_id} {result.outcome} ({reason}) after {result.wall_s:.1f} s, "
                    f"{result.steps} policy steps" + (f"; bag {bag}" if bag else "")
                    + ("" if counted else "; the trial will be repeated") + f"; successes "
                    f"{sum(r.success for r in results)}/{len(results)}")
                if reason == "quit":
                    raise SessionEnded
                index = next((i for i in range(len(plan)) if i not in done), None)
            say("SESSION_COMPLETE")
    except (SessionEnded, KeyboardInterrupt):
        say(f"SESSION_PAUSED after {len(done)}/{len(plan)} trial(s); continue with the same command plus --resume")
    finally:
        session.close()
    meta = {"model_dir": str(config.model_dir), "model_id": card.get("model_id"), "algorithm": card.get("algorithm"),
            "data_digest": card.get("training", {}).get("data_digest"), "mode": "robot", "split": SPLIT,
            "seed_base": "operator-reset scenes", "trials_per_task": config.trials_per_task,
            "tasks_evaluated": [t for t, _ in config.tasks],
            "time_limit_s": config.time_limit_s, "trials_planned": len(plan),
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": config.command}
    return build_report(results, meta), results


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qt eval --robot", description="Evaluate an exported policy on a real arm "
                                     "with operator-labelled trials (no simulator).")
    parser.add_argument("--model", type=Path, required=True, help="policy directory (policy.onnx + policy.json), "
                        "the one the running policy node loaded")
    parser.add_argument("--task", type=parse_task, action="append", default=[], dest="tasks",
                        help="TASK=INSTRUCTION (repeatable), e.g. pick/red=\"pick up the red cube\"; default: every "
                        "wording the model card caches, each its own task")
    parser.add_argument("--trials-per-task", type=int, default=10, help="trials per task (default 10)")
    parser.add_argument("--time-limit", type=float, default=60.0, help="seconds before a trial fails (default 60)")
    parser.add_argument("--out", type=Path, default=None,
                        help="session folder: trials.jsonl, eval.json, eval.md, summary.png (default "
                        "runs/eval/<model>/robot)")
    parser.add_argument("--resume", action="store_true", help="continue the session in --out")
    parser.add_argument("--policy-node", default="policy_node", help="the policy node's name (default policy_node)")
    parser.add_argument("--namespace", default="", help="namespace of the robot's nodes and topics (run.launch.py "
                        "namespace:=...); the operator services become /NS/robot_eval/*")
    parser.add_argument("--bags", type=Path, default=None,
                        help="the recorder's bags folder: wait for each trial's bag and check its outcome")
    parser.add_argument("--recorder-node", default="recorder", help="with --bags: the recorder's node name; a trial "
                        "moves the arm only once this node has acknowledged its START (default recorder)")
    parser.add_argument("--no-keys", action="store_true", help="operator input only through the /robot_eval/* "
                        "Trigger services (default: keys too when stdin is a terminal)")
    parser.add_argument("--startup-timeout", type=float, default=60.0, help="seconds to wait for the policy node "
                        "(and, with --bags, for the recorder)")
    parser.add_argument("--write-card", action="store_true", help="store the table in policy.json evaluation.robot")
    args = parser.parse_args(argv)
    if not args.time_limit > 0:
        parser.error(f"--time-limit: expected > 0 seconds, got {args.time_limit}")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    model = args.model.expanduser().resolve()
    try:
        card = load_card(model)
    except PolicyCardError as exc:
        print(f"qt eval --robot: {exc}", file=sys.stderr)
        return 1
    tasks = args.tasks or [(t, t) for t in card.get("text_encoder", {}).get("embeddings", {})]
    if not tasks:
        print("qt eval --robot: the model card caches no instruction; name the tasks with --task TASK=INSTRUCTION",
              file=sys.stderr)
        return 2
    config = RobotEvalConfig(
        model, tasks, trials_per_task=args.trials_per_task, time_limit_s=args.time_limit,
        out=(args.out or Path("runs") / "eval" / model.name / "robot").expanduser().resolve(),
        policy_node=args.policy_node, bags=args.bags.expanduser().resolve() if args.bags else None,
        recorder_node=args.recorder_node, use_keys=not args.no_keys and stdin_is_terminal(),
        startup_timeout_s=args.startup_timeout, command="qt eval --robot " + shlex.join(argv), namespace=args.namespace)
    try:
        report, results = run_session(config, args.resume)
    except (ValueError, RuntimeError, TimeoutError) as exc:
        print(f"qt eval --robot: {exc}", file=sys.stderr)
        return 1
    if not results:
        print("qt eval --robot: no counted trial yet; nothing to report")
        return 0
    paths = write_outputs(report, results, config.out)
    print()
    print(terminal_table(report))
    print(f"\n{report['overall']['episodes']} counted trial(s); wrote {paths['json']}, {paths['markdown']}, "
          f"{paths['png']}")
    if args.write_card:
        print(f"evaluation ({SPLIT}) written into {merge_into_card(model, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
