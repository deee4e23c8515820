"""``qt collect``: record labelled episodes of the scripted expert through the real ROS stack.

    qt collect --episodes 30 --bags bags/ --tasks pick/,place/red/yellow
    qt collect --episodes 30 --bags bags/ --noise-std 0.5 --random-action-prob 0.2 --wrong-object-prob 0.2
    qt collect --episodes 300 --bags bags/ --dart-noise-std 0.3 --inprocess
    qt collect --episodes 100 --bags bags/ --inprocess --policy models/default --epsilon 0.1

Three node processes, as on a robot with a teleoperator: the sim driver (qt_sim.driver_node),
the scripted expert acting as the operator (qt_sim.expert_teleop, following the episodes this
command starts) and the recorder (qt_data_logger.recorder_node, one bag per episode into
``--bags``). This process is the episode controller: it asks the sim for each episode
(``/sim/start_episode`` with the next task and seed), waits for the sim's END event, then for
the recorder's ``EPISODE_WRITTEN`` line, and prints one progress line per episode. So the bags
are exactly the kind a human operator's session produces, and ``qt convert`` takes them as is.

``--inprocess`` records the same episodes without DDS or child processes (qt_eval.inprocess_collect:
the same driver, expert, recorder core and message code, called directly), many times faster;
the ROS path is the one that exercises the real node stack. ``--policy MODEL`` (in process only)
records a policy's own rollouts instead, with ``--epsilon`` exploration (qt_eval.policy_collect).

Why these choices:

* **faster than real time, same dynamics**: the driver ticks at ``--rate-hz`` wall but simulates
  ``--sim-period`` per tick (the robot's 10 Hz by default), with lockstep (docs/SIM.md), so
  every recorded action is the one executed on the next tick however busy the CPU is. The
  bags carry the simulated control rate (1 / sim period), which is what a policy trains for.
* **appending builds the mix**: every episode id is unique, and without ``--seed`` a run starts
  after the highest seed already in ``--bags``, so successive runs with other knobs add new
  layouts (successes from a clean expert, failures from a noisy one) to the same folder.
* **nothing lost at the start**: a discarded warm-up episode proves that the expert answers the
  sim's frames before the first recorded one (DDS lists a subscriber before all its readers
  have matched; the first frames of the first episode could otherwise go unanswered).
* **robust**: a child that dies stops the run with its exit code and last output lines; every
  wait has a timeout; Ctrl-C or SIGTERM discards the episode in progress (a partial episode is
  not training data) and stops the children, which also die with this process if it is killed
  (qt_eval.children).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from qt_sim.expert import ExpertKnobs
from qt_sim.tasks import select_tasks

from qt_eval.children import ChildDied, ChildGroup
from qt_eval.episode_client import OUTCOME_NAMES, EpisodeClient

EVAL_SEED_BASE = 100_000  # qt eval's default held-out seeds start here; collection stays below
STARTUP_TIMEOUT_S = 120.0
WRITE_TIMEOUT_S = 30.0


@dataclass
class EpisodeRecord:
    episode_id: str
    task_id: str
    seed: int
    outcome: str
    steps: int  # actions executed (ticks after the episode's first, which runs before any command)
    wall_s: float
    bag: str = ""
    lockstep_misses: int = 0  # ticks the sim ran without the expert's action for the last frame


@dataclass
class CollectSummary:
    bags_dir: str
    episodes: list[EpisodeRecord] = field(default_factory=list)
    knobs: dict[str, float] = field(default_factory=dict)
    tasks: list[str] = field(default_factory=list)
    seed: int = 0
    rate_hz: float = 0.0
    sim_period_s: float = 0.0
    wall_s: float = 0.0

    @property
    def successes(self) -> int:
        return sum(e.outcome == "success" for e in self.episodes)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        n = len(self.episodes)
        out.update(successes=self.successes, success_rate=self.successes / n if n else 0.0,
                   wall_s_per_episode=self.wall_s / n if n else 0.0)
        return out


def parse_size(text: str) -> tuple[int, int]:
    """'96' or 'HxW' -> (height, width), as qt convert --image-size."""
    try:
        parts = [int(p) for p in text.lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 8 or max(parts) > 4096:
        raise argparse.ArgumentTypeError(f"--image: expected N or HxW with 8..4096 pixels, got {text!r}")
    return parts[0], parts[1]


def existing_seeds(bags_dir: Path) -> dict[tuple[str, int], str]:
    """(task id, seed) -> episode id of the labelled bags already in ``bags_dir``."""
    import yaml

    found: dict[tuple[str, int], str] = {}
    if not bags_dir.is_dir():
        return found
    for meta in sorted(bags_dir.glob("*/metadata.yaml")):
        try:
            info = yaml.safe_load(meta.read_text())["rosbag2_bagfile_information"]
            custom = info.get("custom_data") or {}
            found[(str(custom["task_id"]), int(custom["seed"]))] = str(custom.get("episode_id", meta.parent.name))
        except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError):
            continue  # not ours to judge: qt bags check does that
    return found


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qt collect",
        description="Record N labelled scripted-expert episodes through sim driver + expert teleop + recorder.")
    parser.add_argument("--episodes", type=int, required=True, help="episodes to record")
    parser.add_argument("--bags", type=Path, required=True, help="folder of episode bags (appended to)")
    parser.add_argument("--tasks", default="", help="comma-separated task ids or prefixes (pick/, push/red/); "
                        "default all 15, cycled in order")
    parser.add_argument("--noise-std", type=float, default=0.0, help="expert: Gaussian noise on every action dim")
    parser.add_argument("--random-action-prob", type=float, default=0.0, help="expert: per step, a random action")
    parser.add_argument("--wrong-object-prob", type=float, default=0.0, help="expert: per episode, another cube")
    parser.add_argument("--dart-noise-std", type=float, default=0.0,
                        help="expert (DART): Gaussian noise on the executed motion only; the label stays clean")
    parser.add_argument("--dart-gripper-flip-prob", type=float, default=0.0,
                        help="expert (DART): per step, the executed gripper command inverted; the label stays clean")
    parser.add_argument("--seed", type=int, default=None,
                        help="layout seed of the first episode (then +1 each); default: after the highest seed "
                        "already in --bags, else 0")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="wall-clock tick rate of the sim (default 30)")
    parser.add_argument("--sim-period", type=float, default=0.1,
                        help="simulated seconds per tick (default 0.1: the 10 Hz robot)")
    parser.add_argument("--image", type=parse_size, default=(96, 96), help="camera size, N or HxW (default 96)")
    parser.add_argument("--horizon", type=int, default=100, help="ticks before an episode ends as failure")
    parser.add_argument("--no-lockstep", action="store_true",
                        help="free-running sim (commands may miss ticks under load); default lockstep")
    parser.add_argument("--inprocess", action="store_true",
                        help="no nodes or DDS: driver, expert and recorder in this process (same bags, much faster)")
    parser.add_argument("--operator", default="", help="written into every bag (default: the expert's knobs)")
    parser.add_argument("--policy", type=Path, default=None,
                        help="--inprocess: a policy's own rollouts instead of the expert (a models/<name> folder); "
                        "camera size and control period from its card, tasks default to the card's")
    parser.add_argument("--epsilon", type=float, default=0.0,
                        help="--policy: per step and action dimension, the probability of a uniformly random bin")
    parser.add_argument("--jobs", "-j", type=int, default=1,
                        help="--inprocess: worker processes, one simulator each (default 1)")
    parser.add_argument("--log-dir", type=Path, default=None, help="also write each node's output here")
    parser.add_argument("--summary", type=Path, default=None, help="write the run summary as JSON here")
    args = parser.parse_args(argv)
    if args.episodes < 1:
        parser.error(f"--episodes: expected >= 1, got {args.episodes}")
    if not args.rate_hz > 0 or not args.sim_period > 0:
        parser.error("--rate-hz and --sim-period: expected > 0")
    if args.horizon < 2:
        parser.error(f"--horizon: expected >= 2 ticks, got {args.horizon}")
    if args.seed is not None and args.seed < 0:
        parser.error(f"--seed: expected >= 0, got {args.seed}")
    if args.jobs < 1 or (args.jobs > 1 and not args.inprocess):
        parser.error(f"--jobs: expected >= 1, and more than 1 only with --inprocess; got {args.jobs}")
    if args.inprocess and args.no_lockstep:
        parser.error("--no-lockstep: the in-process path always executes every action on the next tick")
    if args.policy is not None:
        _policy_arguments(parser, args, argv)
    elif args.epsilon:
        parser.error("--epsilon: only with --policy")
    try:
        args.task_ids = select_tasks(args.tasks)
        args.knobs = ExpertKnobs(args.noise_std, args.random_action_prob, args.wrong_object_prob,
                                 args.dart_noise_std, args.dart_gripper_flip_prob)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def _policy_arguments(parser: argparse.ArgumentParser, args: argparse.Namespace, argv: list[str]) -> None:
    """--policy: only in process; the card fixes the camera size, the control period and the tasks."""
    from qt_policy_node.decoder import PolicyCardError, load_card

    from qt_eval.plan import card_tasks

    if not args.inprocess:
        parser.error("--policy: only with --inprocess (the policy node over ROS: qt eval --mode ros)")
    if not 0.0 <= args.epsilon <= 1.0:
        parser.error(f"--epsilon: expected a probability in [0, 1], got {args.epsilon}")
    if any((args.noise_std, args.random_action_prob, args.wrong_object_prob, args.dart_noise_std,
            args.dart_gripper_flip_prob)):
        parser.error("--policy: the expert's knobs do not apply (use --epsilon for exploration)")
    args.policy = args.policy.expanduser().resolve()
    try:
        card = load_card(args.policy)
    except PolicyCardError as exc:
        parser.error(f"--policy: {exc}")
    image = (int(card["image"]["height"]), int(card["image"]["width"]))
    if "--image" in argv and tuple(args.image) != image:
        parser.error(f"--image: the policy decodes {image[0]}x{image[1]} frames (its card), got "
                     f"{args.image[0]}x{args.image[1]}")
    args.image = image
    period = 1.0 / float(card["control_rate_hz"])
    if "--sim-period" in argv and abs(args.sim_period - period) > 1e-9:
        parser.error(f"--sim-period: the policy was trained at {period:g} s per step (its card), "
                     f"got {args.sim_period:g}")
    args.sim_period = period
    if not args.tasks:
        args.tasks = ",".join(card_tasks(card))
    args.card = card


def _ros_args(params: dict[str, Any]) -> list[str]:
    args = ["--ros-args"]
    for name, value in params.items():
        literal = ("true" if value else "false") if isinstance(value, bool) else str(value)
        args += ["-p", f"{name}:={literal}"]
    return args


def sim_driver_params(rate_hz: float, sim_period_s: float, image: tuple[int, int], horizon: int, tasks: tuple[str, ...],
                      lockstep: bool, **extra: Any) -> dict[str, Any]:
    return {"control_rate_hz": float(rate_hz), "sim_period_s": float(sim_period_s), "image_height": image[0],
            "image_width": image[1], "horizon": horizon, "tasks": ",".join(tasks), "lockstep": lockstep,
            "lockstep_timeout_s": 2.0, **extra}


def episode_timeout_s(horizon: int, rate_hz: float) -> float:
    """Generous bound on one episode's wall time: every tick a full period plus some slack."""
    return 30.0 + horizon * (3.0 / rate_hz + 0.05)


def run(args: argparse.Namespace) -> CollectSummary:
    bags = args.bags.expanduser().resolve()
    bags.mkdir(parents=True, exist_ok=True)
    already = existing_seeds(bags)
    seed = args.seed if args.seed is not None else (max((s for _, s in already), default=-1) + 1)
    plan = [(args.task_ids[i % len(args.task_ids)], seed + i) for i in range(args.episodes)]
    repeats = [p for p in plan if p in already]
    if repeats:
        print(f"qt collect: note: {len(repeats)} of these (task, seed) pairs are already in {bags} (same layouts; "
              "use --seed to choose others)", flush=True)
    if plan[-1][1] >= EVAL_SEED_BASE:
        print(f"qt collect: note: seeds reach {plan[-1][1]}, into qt eval's held-out range (>= {EVAL_SEED_BASE})",
              flush=True)
    knobs = args.knobs
    operator = args.operator or f"scripted expert {knobs.describe()}"
    if args.policy is not None:
        operator = args.operator or f"policy {args.card.get('model_id')} epsilon {args.epsilon:g}"
    summary = CollectSummary(str(bags), knobs=asdict(knobs), tasks=list(args.task_ids), seed=seed,
                             rate_hz=args.rate_hz, sim_period_s=args.sim_period)
    started = time.monotonic()
    how = "in process" if args.inprocess else f"{args.rate_hz:g} Hz wall"
    print(f"qt collect: {args.episodes} episode(s) into {bags}; tasks {', '.join(args.task_ids)}; seeds "
          f"{seed}..{seed + args.episodes - 1}; {operator}; {how}, {args.sim_period:g} s simulated per tick",
          flush=True)
    (_collect_inprocess if args.inprocess else _collect_ros)(args, bags, plan, operator, summary)
    summary.wall_s = time.monotonic() - started
    return summary


def _collect_inprocess(args: argparse.Namespace, bags: Path, plan: list[tuple[str, int]], operator: str,
                       summary: CollectSummary) -> None:
    """One simulator per worker process (``--jobs``); the episodes are independent, so the bags are
    the same whatever the number of workers. Progress lines come in completion order."""
    from qt_sim.driver import DriverConfig

    config = DriverConfig(width=args.image[1], height=args.image[0], horizon=args.horizon,
                          control_rate_hz=args.rate_hz, sim_period_s=args.sim_period, tasks=tuple(args.task_ids))
    jobs = max(1, min(args.jobs, len(plan)))
    policy = (args.policy, args.epsilon) if args.policy is not None else None
    if jobs == 1:
        for record in _inprocess_worker(bags, args.knobs, config, operator, plan, policy):
            summary.episodes.append(record)
            _progress(len(summary.episodes), len(plan), summary)
        return
    import multiprocessing
    from queue import Empty

    context = multiprocessing.get_context("spawn")  # a fresh GL context per worker, nothing inherited
    queue = context.Queue()
    workers = [context.Process(target=_inprocess_worker_main, args=(bags, args.knobs, config, operator,
                                                                    plan[i::jobs], queue, policy), daemon=True)
               for i in range(jobs)]
    for worker in workers:
        worker.start()
    try:
        finished = 0
        while finished < jobs:
            try:
                item = queue.get(timeout=1.0)
            except Empty:
                dead = [w for w in workers if w.exitcode not in (None, 0)]
                if dead:
                    raise RuntimeError(f"in-process collection worker died (exit code {dead[0].exitcode})") from None
                continue
            if isinstance(item, EpisodeRecord):
                summary.episodes.append(item)
                _progress(len(summary.episodes), len(plan), summary)
            elif item is None:
                finished += 1
            else:
                raise RuntimeError(f"in-process collection worker failed: {item}")
    finally:
        for worker in workers:
            if worker.is_alive():
                worker.terminate()  # SIGTERM: the worker discards its partial episode
            worker.join(timeout=30)
    summary.episodes.sort(key=lambda e: plan.index((e.task_id, e.seed)))


def _inprocess_worker(bags: Path, knobs: ExpertKnobs, config: Any, operator: str, plan: list[tuple[str, int]],
                      policy: tuple[Path, float] | None = None):
    """Record ``plan`` in this process; yields one EpisodeRecord per episode. ``policy``: (model
    folder, epsilon) of a policy acting instead of the expert (qt_eval.policy_collect)."""
    from qt_eval.inprocess_collect import InprocessCollector

    actor = None
    if policy is not None:
        from qt_eval.policy_collect import policy_actor_factory

        actor = policy_actor_factory(*policy)
    with InprocessCollector(bags, knobs, config, operator, actor=actor) as collector:
        for task_id, episode_seed in plan:
            began = time.monotonic()
            result = collector.episode(task_id, episode_seed)
            yield EpisodeRecord(result.episode_id, task_id, episode_seed, result.outcome, result.steps,
                                time.monotonic() - began, result.bag)


def _inprocess_worker_main(bags: Path, knobs: ExpertKnobs, config: Any, operator: str,
                           plan: list[tuple[str, int]], queue: Any, policy: tuple[Path, float] | None = None) -> None:
    """Worker process entry: records, reports each episode, then None (or the error text)."""
    import signal

    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # unwind: the collector discards a partial episode
    try:
        for record in _inprocess_worker(bags, knobs, config, operator, plan, policy):
            queue.put(record)
    except Exception as exc:  # reported by the parent, which stops the run
        queue.put(f"{type(exc).__name__}: {exc}")
        return
    queue.put(None)


def _collect_ros(args: argparse.Namespace, bags: Path, plan: list[tuple[str, int]], operator: str,
                 summary: CollectSummary) -> None:
    knobs = args.knobs
    with ChildGroup(args.log_dir) as group:
        sim = group.start("sim_driver", "qt_sim.driver_node", *_ros_args(sim_driver_params(
            args.rate_hz, args.sim_period, args.image, args.horizon, args.task_ids, not args.no_lockstep)))
        sim.wait_for(r"sim_driver ready", STARTUP_TIMEOUT_S, "sim_driver ready")
        recorder = group.start("recorder", "qt_data_logger.recorder_node", *_ros_args({
            "output_dir": str(bags), "control_rate_hz": 1.0 / args.sim_period, "robot": "qt_sim_arm",
            "operator": operator}))
        recorder.wait_for(r"RECORDER_READY", STARTUP_TIMEOUT_S, "RECORDER_READY")
        expert = group.start("expert_teleop", "qt_sim.expert_teleop", *_ros_args({
            "control_episodes": False, "noise_std": knobs.noise_std, "random_action_prob": knobs.random_action_prob,
            "wrong_object_prob": knobs.wrong_object_prob, "dart_noise_std": knobs.dart_noise_std,
            "dart_gripper_flip_prob": knobs.dart_gripper_flip_prob}))
        expert.wait_for(r"expert_teleop: ", STARTUP_TIMEOUT_S, "expert ready")
        print("nodes: " + ", ".join(f"{c.name} (pid {c.pid})" for c in group.children), flush=True)
        controller = EpisodeClient(group, "qt_collect")
        try:
            # The expert must hear START, the recorder must hear everything, before episode 1.
            controller.wait_for_graph(
                publishers={"qt/action": 1, "qt/action_label": 1, "camera/image_raw": 1},
                subscribers={"qt/action": 3, "qt/action_label": 1, "episode/events": 3, "ee_pose": 3,
                             "joint_states": 2, "sim/object_poses": 2, "camera/image_raw": 1},
                timeout=STARTUP_TIMEOUT_S)
            for topic in ("qt/action", "qt/action_label", "sim/object_poses"):
                recorder.wait_for(rf"PUBLISHERS \S*/{topic} matched=1", STARTUP_TIMEOUT_S,
                                  f"recorder matched the publisher of {topic}")
            controller.warm_up(*plan[0], timeout=30.0)
            # Discarded, or never started because the expert's first action reached the recorder after
            # the warm-up's END (the recorder records only once every required topic delivered).
            recorder.wait_for(r"EPISODE_(DISCARDED|NOT_RECORDED)", WRITE_TIMEOUT_S,
                              "the recorder dropping the warm-up episode")
            for index, (task_id, episode_seed) in enumerate(plan):
                summary.episodes.append(_one_episode(controller, sim, recorder, task_id, episode_seed, args))
                _progress(index + 1, len(plan), summary)
        except BaseException:
            controller.discard()
            raise
        finally:
            controller.close()


def _one_episode(controller: EpisodeClient, sim: Any, recorder: Any, task_id: str, seed: int,
                 args: argparse.Namespace) -> EpisodeRecord:
    began = time.monotonic()
    episode_id, _ = controller.start(task_id, seed)
    start, end = controller.wait_end(episode_id, episode_timeout_s(args.horizon, args.rate_hz))
    start_ns, end_ns = (controller.stamp_ns(e.header.stamp) for e in (start, end))
    controller.spin_until(lambda: controller.tick_stamps and controller.tick_stamps[-1] >= end_ns, 5.0,
                          f"last tick of {episode_id}")
    written = recorder.wait_for(rf"EPISODE_WRITTEN id={episode_id} outcome=(\w+).* path=(\S+)", WRITE_TIMEOUT_S,
                                f"bag of episode {episode_id}")
    outcome = OUTCOME_NAMES.get(end.outcome, f"code {end.outcome}")
    if written.group(1) != outcome:
        raise RuntimeError(f"episode {episode_id}: the sim says {outcome}, the recorder wrote {written.group(1)}")
    ended = sim.wait_for(rf"episode {episode_id} ended: \w+(?: \(lockstep misses: (\d+)\))?", 10.0,
                         "the sim's end-of-episode line")
    steps = controller.ticks_between(start_ns, end_ns) - 1
    return EpisodeRecord(episode_id, task_id, seed, outcome, steps, time.monotonic() - began, written.group(2),
                         int(ended.group(1) or 0))


def _progress(done: int, total: int, summary: CollectSummary) -> None:
    e = summary.episodes[-1]
    print(f"[{done:>{len(str(total))}}/{total}] {e.task_id:<18} seed {e.seed:<6} {e.outcome:<8} {e.steps:>3} steps "
          f"{e.wall_s:5.1f} s   successes {summary.successes}/{done}"
          + (f"   ({e.lockstep_misses} tick(s) without the expert's action)" if e.lockstep_misses else ""), flush=True)


def print_summary(summary: CollectSummary) -> None:
    n = len(summary.episodes)
    by_task: dict[str, Counter[str]] = {}
    for e in summary.episodes:
        by_task.setdefault(e.task_id, Counter())[e.outcome] += 1
    print(f"\nrecorded {n} episode(s) in {summary.wall_s:.1f} s ({summary.wall_s / max(n, 1):.2f} s per episode); "
          f"success rate {summary.successes}/{n} = {100.0 * summary.successes / max(n, 1):.1f} %")
    for task_id, counts in by_task.items():
        print(f"  {task_id:<18} {counts['success']}/{sum(counts.values())} success")
    total = len(list(Path(summary.bags_dir).glob("*/metadata.yaml")))
    print(f"{summary.bags_dir}: {total} labelled bag(s) in total; next: qt convert {summary.bags_dir} -o DATASET",
          flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    try:
        summary = run(args)
    except KeyboardInterrupt:
        print("\nqt collect: interrupted; the episode in progress was discarded, the nodes are stopped",
              file=sys.stderr)
        return 130
    except (ChildDied, TimeoutError, RuntimeError) as exc:
        print(f"qt collect: failed: {exc}", file=sys.stderr)
        return 1
    print_summary(summary)
    if args.summary:
        args.summary.parent.mkdir(parents=True, exist_ok=True)
        args.summary.write_text(json.dumps(summary.to_dict(), indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
