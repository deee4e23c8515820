"""``qt eval``: success rate of an exported policy on the simulated arm, per task, with intervals.

    qt eval --model models/default --episodes-per-task 20 --split heldout     # the real node over ROS
    qt eval --model models/mine --mode inprocess --episodes-per-task 20        # fast, no ROS
    qt eval --model models/default --episodes-per-task 20 --write-card         # into policy.json

Both modes run the same plan (eval_plan.make_plan): tasks round robin (default: the tasks whose
wordings the card caches), layouts from held-out seeds (``--seed-base``, far above the seeds
``qt collect`` uses), and the wordings of ``--split`` (``heldout``: the two per task that
training data never uses). ``--mode ros`` runs the policy node and the sim driver as processes
(eval_ros); ``--mode inprocess`` runs the same decision path on the env directly
(eval_inprocess). Output (``--out``, default ``runs/eval/<model>/<mode>-<split>/``): ``eval.json``
(every episode and the table), ``eval.md`` (the table), ``summary.png`` (bar chart with 95 %
Wilson intervals above a contact sheet of a few episodes); the table is also printed.
``--write-card`` stores the table in the card's ``evaluation`` field under the split's name.

``qt eval --robot`` evaluates on a real arm instead, with operator-labelled trials and no
simulator (qt_eval.robot; ``qt eval --robot --help``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from qt_policy_node.decoder import PolicyCardError, load_card

from qt_eval.plan import DEFAULT_SEED_BASE, EpisodeSpec, card_tasks, make_plan, missing_embeddings
from qt_eval.report import (
    EpisodeResult,
    build_report,
    merge_into_card,
    terminal_table,
    write_outputs,
)

MODES = ("ros", "inprocess")
SHEET_EPISODES = 6


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tasks", default="", help="task ids or prefixes (pick/, push/red/); default: the tasks "
                        "the model card's instructions belong to")
    count = parser.add_mutually_exclusive_group()
    count.add_argument("--episodes-per-task", type=int, default=None, help="episodes per task (default 10)")
    count.add_argument("--episodes", type=int, default=None, help="episodes in total, tasks cycled")
    parser.add_argument("--split", choices=("train", "heldout"), default="heldout",
                        help="instruction wordings (default heldout: never in training data)")
    parser.add_argument("--seed-base", type=int, default=DEFAULT_SEED_BASE, help="first layout seed")
    parser.add_argument("--rate-hz", type=float, default=30.0, help="ros: wall-clock control rate (default 30)")
    parser.add_argument("--sim-period", type=float, default=None,
                        help="ros: simulated seconds per tick (default: the card's control period)")
    parser.add_argument("--horizon", type=int, default=100, help="ticks before an episode fails (default 100)")
    parser.add_argument("--no-lockstep", action="store_true", help="ros: free-running sim (see docs/E2E.md)")
    parser.add_argument("--params-file", type=Path, default=None,
                        help="policy node parameters (default: qt_policy_node's config/run.yaml)")
    parser.add_argument("--out", type=Path, default=None,
                        help="output folder (default runs/eval/<model>/<mode>-<split>)")
    parser.add_argument("--log-dir", type=Path, default=None, help="ros: also write each node's output here")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qt eval", description="Evaluate an exported policy on the simulated arm "
                                     "(qt eval --robot --help: on a real arm, operator-labelled).")
    parser.add_argument("--model", type=Path, required=True, help="policy directory (policy.onnx + policy.json)")
    parser.add_argument("--mode", choices=MODES, default="ros", help="ros (policy node + sim over DDS, default) or "
                        "inprocess (same decisions, no ROS)")
    add_arguments(parser)
    parser.add_argument("--write-card", action="store_true", help="store the table in policy.json 'evaluation'")
    return parser.parse_args(argv)


def evaluate(args: argparse.Namespace, command: str) -> tuple[dict[str, Any], list[EpisodeResult]]:
    """Run the evaluation ``args`` describe (a parsed qt eval command line); (report, results)."""
    from qt_policy_node.run import default_params_file
    from qt_policy_node.text_encoder import default_encoder_dir
    from qt_sim.tasks import select_tasks

    from qt_eval.plan import node_parameters

    model = args.model.expanduser().resolve()
    card = load_card(model)
    tasks = select_tasks(args.tasks) if args.tasks else card_tasks(card)
    episodes = args.episodes or len(tasks) * (args.episodes_per_task or 10)
    if args.horizon < 2:
        raise ValueError(f"--horizon: expected >= 2 ticks, got {args.horizon}")
    plan = make_plan(tasks, args.split, args.seed_base, episodes)
    params_file = (args.params_file or default_params_file()).expanduser().resolve()
    params = node_parameters(params_file)
    unknown = missing_embeddings(plan, card)
    if unknown:
        encoder_dir = Path(str(params["text_encoder_path"])) if params["text_encoder_path"] else default_encoder_dir()
        if not (params["use_text_encoder"] and (encoder_dir / "text_encoder.json").is_file()):
            raise ValueError(
                f"{len(unknown)} wording(s) of the {args.split} split are not cached in {model}/policy.json and no "
                f"text encoder is available to embed them (e.g. {unknown[0]!r}). Export the encoder (qt export "
                "without --no-text-encoder), cache them (qt export --instruction ...), or use --split train.")
    card_period = 1.0 / float(card["control_rate_hz"])
    sim_period = args.sim_period or card_period
    if abs(sim_period - card_period) > 1e-9:
        print(f"qt eval: note: --sim-period {sim_period:g} s differs from the card's control period "
              f"{card_period:g} s (the policy's actions are per-step deltas)", flush=True)
    meta = {
        "model_dir": str(model), "model_id": card.get("model_id"), "algorithm": card.get("algorithm"),
        "data_digest": card.get("training", {}).get("data_digest"), "mode": args.mode, "split": args.split,
        "seed_base": args.seed_base, "episodes_per_task": args.episodes_per_task, "tasks_evaluated": list(tasks),
        "horizon": args.horizon, "sim_period_s": sim_period, "params_file": str(params_file),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), "command": command,
    }
    if args.mode == "ros":
        meta.update(rate_hz=args.rate_hz, lockstep=not args.no_lockstep)
    sheet_tasks: dict[str, int] = {}

    def keep_frames(index: int, spec: EpisodeSpec) -> bool:
        if spec.task_id in sheet_tasks or len(sheet_tasks) >= SHEET_EPISODES:
            return False
        sheet_tasks[spec.task_id] = index
        return True

    tally = {"done": 0, "successes": 0}

    def progress(index: int, r: EpisodeResult) -> None:
        tally["done"] += 1
        tally["successes"] += r.success
        decode = f"decode p50 {sorted(r.decode_ms)[len(r.decode_ms) // 2]:.2f} ms" if r.decode_ms else ""
        print(f"[{index + 1:>{len(str(len(plan)))}}/{len(plan)}] {r.task_id:<18} seed {r.seed:<7} {r.outcome:<8} "
              f"{r.steps:>3} steps {r.wall_s:5.1f} s  {decode}  successes {tally['successes']}/{tally['done']}",
              flush=True)

    print(f"qt eval: {len(plan)} episode(s) of {model.name} ({card.get('algorithm')}), mode {args.mode}, "
          f"{args.split} wordings, seeds {args.seed_base}..{args.seed_base + len(plan) - 1}, tasks {', '.join(tasks)}",
          flush=True)
    started = time.monotonic()
    if args.mode == "ros":
        from qt_eval.ros_sim import RosEvalConfig, run_ros

        config = RosEvalConfig(model, params_file, args.rate_hz, sim_period, args.horizon, not args.no_lockstep,
                               args.log_dir)
        results = run_ros(config, plan, keep_frames=keep_frames, progress=progress)
    else:
        from qt_eval.inprocess import run_inprocess

        results = run_inprocess(model, params, plan, horizon=args.horizon, keep_frames=keep_frames,
                                progress=progress)
    meta["wall_s"] = round(time.monotonic() - started, 2)
    return build_report(results, meta), results


def evaluate_or_exit_code(args: argparse.Namespace, verb: str, argv: list[str]
                          ) -> tuple[dict[str, Any], list[Any]] | int:
    """:func:`evaluate` for a ``qt`` verb: an interruption or a clear failure is printed and
    becomes the verb's exit code (130 or 1) instead of a traceback."""
    try:
        return evaluate(args, f"qt {verb} " + shlex.join(argv))
    except KeyboardInterrupt:
        print(f"\nqt {verb}: interrupted; the nodes are stopped", file=sys.stderr)
        return 130
    except (PolicyCardError, ValueError, RuntimeError, TimeoutError) as exc:
        print(f"qt {verb}: {exc}", file=sys.stderr)
        return 1


def default_out(model: Path, mode: str, split: str) -> Path:
    return Path("runs") / "eval" / model.expanduser().resolve().name / f"{mode}-{split}"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if "--robot" in argv:  # a real arm, operator-labelled trials: its own options (qt_eval.robot)
        from qt_eval.robot import main as robot_main

        return robot_main([a for a in argv if a != "--robot"])
    args = parse_args(argv)
    outcome = evaluate_or_exit_code(args, "eval", argv)
    if isinstance(outcome, int):
        return outcome
    report, results = outcome
    out = args.out or default_out(args.model, args.mode, args.split)
    paths = write_outputs(report, results, out)
    print()
    print(terminal_table(report))
    print(f"\n{report['overall']['episodes']} episodes in {report['wall_s']:.1f} s "
          f"({report['wall_s'] / max(1, report['overall']['episodes']):.2f} s per episode); wrote "
          f"{paths['json']}, {paths['markdown']}, {paths['png']}")
    if args.write_card:
        print(f"evaluation ({args.split}) written into {merge_into_card(args.model, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
