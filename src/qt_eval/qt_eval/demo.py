"""``qt demo``: the README's main job. The shipped model drives the simulated arm through the real
policy node, a short evaluation runs, and the success rate and latency are printed next to the
figures on the model card.

    qt demo                       # 10 episodes over the card's tasks, models/default
    qt demo --episodes 30 --model models/mine
    qt demo --compare models/bc   # the same episodes with a second model, success rates side by side

It is ``qt eval --mode ros`` with a small episode count (tasks cycled) and the train wordings
(the card caches their embeddings, so a fresh clone needs no text encoder), on held-out seeds,
plus a comparison with the card's ``evaluation`` of the same split: the card's success rate
should fall inside this run's 95 % interval.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from qt_policy_node.decoder import PolicyCardError, load_card
from qt_policy_node.params import default_model_path

from qt_eval.evaluate import add_arguments, evaluate_or_exit_code
from qt_eval.report import terminal_table, write_outputs


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="qt demo", description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=None, help=f"policy directory (default {default_model_path()})")
    parser.add_argument("--compare", type=Path, default=None, metavar="MODEL",
                        help="also run this model on the same episodes and print both success rates side by side")
    parser.set_defaults(mode="ros")
    add_arguments(parser)
    parser.set_defaults(split="train")
    args = parser.parse_args(argv)
    if args.episodes is None and args.episodes_per_task is None:
        args.episodes = 10
    return args


def compare_with_card(card: dict[str, Any], report: dict[str, Any]) -> str:
    """Is this (short) run consistent with the card? The card's rate must lie inside this run's 95 %
    interval: a 10-episode run's point estimate alone says little (9/10 against a card's 97 % is
    no evidence of a difference)."""
    entry = (card.get("evaluation") or {}).get(report["split"])
    if not isinstance(entry, dict) or "overall" not in entry:
        return f"the model card has no '{report['split']}' evaluation to compare with (qt eval --write-card adds one)"
    card_row, row = entry["overall"], report["overall"]
    low, high = card_row["ci95"]
    run_low, run_high = row["ci95"]
    consistent = run_low <= card_row["success_rate"] <= run_high
    return (f"model card ({entry.get('mode', '?')}, {card_row['episodes']} episodes): "
            f"{100 * card_row['success_rate']:.0f} % (95 % CI {100 * low:.0f}-{100 * high:.0f} %); this run: "
            f"{100 * row['success_rate']:.0f} % over {row['episodes']} episodes (95 % CI {100 * run_low:.0f}-"
            f"{100 * run_high:.0f} %): " + ("consistent with the card" if consistent else
                                            "NOT consistent with the card (its rate is outside this run's interval)"))


def side_by_side(reports: list[tuple[str, dict[str, Any]]]) -> str:
    """Success rate with its 95 % Wilson interval per model, and whether the intervals overlap
    (overlapping intervals: this run does not show the models to differ)."""
    width = max(len(name) for name, _ in reports)
    lines = [f"{'model':<{width}}  {'success':>9}  {'rate':>5}  {'95 % CI':>10}  {'decode p50':>10}"]
    for name, report in reports:
        row = report["overall"]
        low, high = row["ci95"]
        decode = (row["decode_ms"] or {}).get("p50", float("nan"))
        lines.append(f"{name:<{width}}  {row['successes']:>4}/{row['episodes']:<4}  "
                     f"{100 * row['success_rate']:>4.0f}%  "
                     f"{100 * low:>4.0f}-{100 * high:<3.0f}%  {decode:>7.2f} ms")
    if len(reports) == 2:
        (_, a), (_, b) = reports
        (la, ha), (lb, hb) = a["overall"]["ci95"], b["overall"]["ci95"]
        overlap = la <= hb and lb <= ha
        lines.append("the 95 % intervals overlap: this run does not show a difference" if overlap else
                     "the 95 % intervals do not overlap: the difference is beyond this run's noise")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    args.model = (args.model or default_model_path()).expanduser()
    try:
        card = load_card(args.model)
        if not (args.model / "policy.onnx").is_file():
            raise PolicyCardError(f"{args.model}: policy.json present but policy.onnx missing")
    except PolicyCardError as exc:
        print(f"qt demo: no usable model at {args.model} ({exc}).\n"
              "The shipped model lives in models/default (policy.onnx + policy.json). Train and export one "
              "(docs/E2E.md: qt collect -> qt convert -> qt train -> qt export --name default), or pass --model DIR.",
              file=sys.stderr)
        return 1
    print(f"qt demo: {card.get('model_id')} ({card.get('algorithm')}) from {args.model} drives the simulated arm "
          "through the policy node; a short evaluation follows", flush=True)
    outcome = evaluate_or_exit_code(args, "demo", argv)
    if isinstance(outcome, int):
        return outcome
    report, results = outcome
    out = args.out or Path(tempfile.mkdtemp(prefix="qt-demo-"))
    paths = write_outputs(report, results, out)
    row = report["overall"]
    low, high = row["ci95"]
    decode, latency = row["decode_ms"] or {}, row["command_latency_ms"] or {}
    print()
    print(terminal_table(report))
    print(f"\nsuccess rate {row['successes']}/{row['episodes']} = {100 * row['success_rate']:.0f} % "
          f"(95 % CI {100 * low:.0f}-{100 * high:.0f} %), mean {row['mean_steps']:.1f} steps")
    print(f"latency: decode p50 {decode.get('p50', float('nan')):.2f} ms, p95 {decode.get('p95', float('nan')):.2f} ms"
          f"; frame -> command p50 {latency.get('p50', float('nan')):.1f} ms (includes the wait for the next "
          f"control tick); control rate {row['control_rate_hz']:.1f} Hz")
    print(compare_with_card(card, report))
    print(f"report: {paths['markdown']}, picture: {paths['png']}")
    if args.compare is None:
        return 0
    return _compare(args, argv, report, out)


def _compare(args: argparse.Namespace, argv: list[str], report: dict[str, Any], out: Path) -> int:
    """The comparison model on the same plan (same tasks, seeds and wordings), then both side by side."""
    other = args.compare.expanduser()
    try:
        load_card(other)
    except PolicyCardError as exc:
        print(f"qt demo: --compare {other}: {exc}", file=sys.stderr)
        return 1
    print(f"\nqt demo: the same {report['overall']['episodes']} episodes with {other}", flush=True)
    args.model, args.tasks = other, ",".join(report["tasks_evaluated"])
    outcome = evaluate_or_exit_code(args, "demo", argv)
    if isinstance(outcome, int):
        return outcome
    second, results = outcome
    paths = write_outputs(second, results, out / f"compare-{other.resolve().name}")
    print()
    print(terminal_table(second))
    print()
    print(side_by_side([(f"{report.get('model_id')} ({Path(report['model_dir']).name})", report),
                        (f"{second.get('model_id')} ({other.resolve().name})", second)]))
    print(f"report: {paths['markdown']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
