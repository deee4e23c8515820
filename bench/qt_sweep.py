"""The Q-Transformer sweep on the R4 rung's data: which settings make offline Q-learning work here.

    python bench/learning_ladder.py --rungs R4 --learners bc     # makes runs/ladder/R4/dataset
    python bench/qt_sweep.py                                      # every variant below, resumable
    python bench/qt_sweep.py --variants base,n3,alpha10 --steps 3000

Each variant is ``qt train`` of the Q-Transformer on the same dataset with the same number of
gradient steps (1 torch thread), changing one setting from ``base`` (qt train's defaults
before the sweep: 1-step targets, alpha 1, the dataset's gamma 0.98, Polyak tau 0.005,
lr 1e-3). Success is measured on validation layouts (seeds from 200000, never the test layouts
that the ladder reports), and ``qt q-diagnostics`` explains each result: Q of the data bin on
successful and failed episodes against their Monte Carlo returns, how often greedy leaves the
data. The table goes to ``<work>/sweep.md`` and ``sweep.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from qt_common.stats import rate_with_interval

ROOT = Path(__file__).resolve().parent.parent
VARIANTS: dict[str, tuple[str, ...]] = {
    "base": ("--n-step", "1", "--alpha", "1", "--gamma", "0.98", "--target-update", "polyak", "--tau", "0.005"),
    "n3": ("--n-step", "3"),
    "n10": ("--n-step", "10"),
    "alpha0.1": ("--alpha", "0.1"),
    "alpha10": ("--alpha", "10"),
    "gamma0.9": ("--gamma", "0.9"),
    "tau0.05": ("--tau", "0.05"),
    "copy200": ("--target-update", "copy", "--target-copy-every", "200"),
    "lr3e-4": ("--lr", "3e-4"),
}


def _flags(variant: str) -> list[str]:
    """base's flags, then the variant's (later flags win in argparse)."""
    items = []
    for part in variant.split("+"):
        if part not in VARIANTS:
            raise SystemExit(f"--variants: unknown {part!r}; known {sorted(VARIANTS)} (join with +)")
        items += VARIANTS[part]
    return [*VARIANTS["base"], *items]


def run_variant(variant: str, data: Path, work: Path, steps: int, episodes_per_task: int) -> dict[str, Any]:
    run = work / variant
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if not (run / "eval_log.jsonl").is_file() or not (run / "checkpoint.pt").is_file():
        cmd = ["qt", "train", str(data), "--out", str(run), "--algorithm", "q_transformer", "--obs-mode", "state",
               "--steps", str(steps), "--threads", "1", "--batch-size", "64", "--lr", "1e-3", *_flags(variant),
               "--eval-every", str(steps // 2), "--eval-episodes-per-task", str(episodes_per_task),
               "--eval-seed-base", "200000", "--no-progress"]
        print(f"  $ {' '.join(cmd)}", flush=True)
        with open(work / f"{variant}.log", "w") as log:
            subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT, check=True)
    history = [json.loads(line) for line in (run / "eval_log.jsonl").read_text().splitlines() if line.strip()]
    final = history[-1]
    diag = work / f"{variant}-diagnostics"
    if not (diag / "q_diagnostics.json").is_file():
        subprocess.run(["qt", "q-diagnostics", str(run), str(data), "--out", str(diag), "--checkpoint-choice", "last",
                        "--episodes", "6"], stdout=subprocess.DEVNULL, env=env, cwd=ROOT, check=True)
    summary = json.loads((diag / "q_diagnostics.json").read_text())["summary"]
    result = {"variant": variant, "flags": _flags(variant), "steps": final["step"],
              "minutes": final["train_wall_s"] / 60, "successes": final["successes"], "episodes": final["episodes"],
              "curve": [(h["step"], h["successes"], h["episodes"]) for h in history], "diagnostics": summary}
    rate = rate_with_interval(final["successes"], final["episodes"])
    print(f"  {variant}: {rate} at step {final['step']}", flush=True)
    return result


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| variant | steps | train min | validation success, 95 % CI | Q(data) - MC, successes | "
             "Q(data), failures (MC 0) | greedy = data bin (succ./fail.) |", "|---|---|---|---|---|---|---|"]
    for r in results:
        s, f = r["diagnostics"].get("success", {}), r["diagnostics"].get("failure", {})
        nan = float("nan")
        rate = rate_with_interval(r["successes"], r["episodes"])
        lines.append(f"| {r['variant']} | {r['steps']} | {r['minutes']:.1f} | {rate} | "
                     f"{s.get('q_data_minus_mc_mean', nan):+.2f} | {f.get('q_data_mean', nan):.2f} | "
                     f"{s.get('greedy_equals_data', nan):.0%} / {f.get('greedy_equals_data', nan):.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "runs" / "ladder" / "R4" / "dataset")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "sweep")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="comma-separated; combine with +, e.g. n3+alpha10")
    parser.add_argument("--steps", type=int, default=3000, help="gradient steps of every variant")
    parser.add_argument("--episodes-per-task", type=int, default=10, help="validation episodes per pick task")
    args = parser.parse_args(argv)
    if not (args.data / "meta.json").is_file():
        parser.error(f"--data: {args.data} is not a dataset (run the R4 rung first, see the docstring)")
    args.work.mkdir(parents=True, exist_ok=True)
    results = [run_variant(v.strip(), args.data, args.work, args.steps, args.episodes_per_task)
               for v in args.variants.split(",") if v.strip()]
    text = table(results)
    print("\n" + text)
    (args.work / "sweep.md").write_text(text + "\n")
    (args.work / "sweep.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
