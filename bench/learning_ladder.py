"""The learning ladder: the acceptance test of the learning stack, end to end, on 1 CPU thread.

    python bench/learning_ladder.py                         # R1, R2, R3 into runs/ladder/
    python bench/learning_ladder.py --rungs R1 --work /tmp/ladder
    python bench/learning_ladder.py --rungs R2 --budget-min R2=20

Every rung goes the way a robot's data goes: ``qt collect --inprocess`` (scripted expert with
DART noise injection, clean labels, written as episode bags by the recorder's own code) ->
``qt convert`` -> ``qt train`` (1 torch thread, a wall-clock budget, success checks on
validation layouts every few thousand steps keeping best.pt) -> for image models ``qt export``
+ ``qt eval --mode inprocess`` (the policy node's own decision path, safety layer included);
state-mode models are evaluated in process by the trainer's evaluator (they do not run in the
node). Final success is measured on held-out test layouts (seeds from 100000), never on the
validation layouts (from 200000) that chose the checkpoint.

Each stage is skipped when its output exists (rerun to resume; delete a rung's folder to redo
it). The table at the end: rung, data (episodes, success rate of the data), training minutes,
steps, success k/n with the 95 % interval, target. It is also written as JSON and markdown.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Rung:
    name: str
    title: str
    tasks: str  # qt collect / qt eval task selection
    episodes: int
    image: int
    obs_mode: str
    algorithm: str
    budget_min: float
    target: float
    eval_every: int
    eval_episodes_per_task: int  # final, on test layouts
    batch_size: int = 32
    lr: float = 6e-4
    horizon: int = 100

    @property
    def task_list(self) -> str:
        return self.tasks or "all"


RUNGS: dict[str, Rung] = {
    "R1": Rung("R1", "low-dim BC, pick", "pick/", 1200, 32, "state", "bc", 5.0, 0.90, 2000, 20, batch_size=64, lr=1e-3),
    "R2": Rung("R2", "vision BC, pick, 64 px", "pick/", 1000, 64, "image", "bc", 30.0, 0.80, 4000, 20),
    "R3": Rung("R3", "vision BC, all 15 tasks, 64 px", "", 1500, 64, "image", "bc", 60.0, 0.60, 10000, 10),
}
DART = ["--dart-noise-std", "0.3", "--dart-gripper-flip-prob", "0.1"]
VALIDATION_SEED_BASE = 200_000  # qt train's success checks (checkpoint choice)
TEST_SEED_BASE = 100_000  # the reported figure


def _run(cmd: list[str], log: Path) -> None:
    """Run one ``qt`` stage, its output into ``log`` (and the last lines on failure)."""
    print(f"  $ {' '.join(cmd)}", flush=True)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as out:
        code = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=ROOT).returncode
    if code:
        tail = log.read_text().splitlines()[-15:]
        raise RuntimeError(f"{cmd[0]} {cmd[1]} failed ({code}); {log}:\n" + "\n".join(tail))


def _rate(k: int, n: int) -> str:
    from qt_common.stats import wilson_interval

    low, high = wilson_interval(k, n)
    return f"{k}/{n} = {k / max(n, 1):.0%} [{low:.0%}, {high:.0%}]"


def run_rung(rung: Rung, work: Path) -> dict[str, Any]:
    folder = work / rung.name
    folder.mkdir(parents=True, exist_ok=True)
    bags, dataset, run, model = folder / "bags", folder / "dataset", folder / "run", folder / "model"
    result: dict[str, Any] = {"rung": asdict(rung)}
    print(f"== {rung.name}: {rung.title}", flush=True)

    summary_file = folder / "collect.json"
    if not summary_file.is_file():
        started = time.perf_counter()
        _run(["qt", "collect", "--inprocess", "--episodes", str(rung.episodes), "--bags", str(bags), "--tasks",
              rung.tasks, "--image", str(rung.image), "--horizon", str(rung.horizon), "--seed", "0", *DART,
              "--summary", str(summary_file)], folder / "collect.log")
        print(f"  collected in {time.perf_counter() - started:.0f} s", flush=True)

    if not (dataset / "meta.json").is_file():
        started = time.perf_counter()
        _run(["qt", "convert", str(bags), "-o", str(dataset), "--image-size", str(rung.image), "-j", "2",
              "--no-progress"], folder / "convert.log")
        print(f"  converted in {time.perf_counter() - started:.0f} s", flush=True)

    meta = json.loads((dataset / "meta.json").read_text())
    outcomes = [e["outcome"] for e in meta["episodes"]]
    result["data"] = {"episodes": len(outcomes), "successes": outcomes.count("success"), "frames": meta["num_frames"],
                      "collect_wall_s": json.loads(summary_file.read_text())["wall_s"]}

    if not (run / "checkpoint.pt").is_file():
        _run(["qt", "train", str(dataset), "--out", str(run), "--algorithm", rung.algorithm, "--obs-mode",
              rung.obs_mode, "--steps", "1000000", "--time-budget-min", f"{rung.budget_min:g}", "--threads", "1",
              "--batch-size", str(rung.batch_size), "--lr", f"{rung.lr:g}", "--eval-every", str(rung.eval_every),
              "--eval-episodes-per-task", "5", "--eval-seed-base", str(VALIDATION_SEED_BASE), "--no-progress"],
             folder / "train.log")
    history = [json.loads(line) for line in (run / "eval_log.jsonl").read_text().splitlines() if line.strip()]
    result["curve"] = [{"step": h["step"], "train_min": h["train_wall_s"] / 60, "successes": h["successes"],
                        "episodes": h["episodes"]} for h in history]
    best = max(history, key=lambda h: (h["success_rate"], h["step"]))
    last = history[-1]
    result["training"] = {"minutes": last["train_wall_s"] / 60, "steps": last["step"], "best_step": best["step"]}

    report_file = folder / "eval.json"
    if not report_file.is_file():
        if rung.obs_mode == "image":
            _run(["qt", "export", str(run), "--name", rung.name, "--models-dir", str(folder), "--checkpoint", "best"],
                 folder / "export.log")
            os.replace(folder / rung.name, model) if not model.exists() else None
            _run(["qt", "eval", "--model", str(model), "--mode", "inprocess", "--tasks", rung.tasks,
                  "--episodes-per-task", str(rung.eval_episodes_per_task), "--split", "train", "--seed-base",
                  str(TEST_SEED_BASE), "--horizon", str(rung.horizon), "--out", str(folder / "eval")],
                 folder / "eval.log")
            report = json.loads((folder / "eval" / "eval.json").read_text())
            per_task = {row["task"]: [row["successes"], row["episodes"]] for row in report["tasks"]}
        else:
            per_task = _evaluate_state_model(run / "best.pt", rung)
        report_file.write_text(json.dumps(per_task, indent=1))
    per_task = json.loads(report_file.read_text())
    k, n = sum(v[0] for v in per_task.values()), sum(v[1] for v in per_task.values())
    result["success"] = {"successes": k, "episodes": n, "per_task": per_task}
    result["met_target"] = k / max(n, 1) >= rung.target
    (folder / "result.json").write_text(json.dumps(result, indent=1))
    print(f"  {rung.name}: {_rate(k, n)} (target {rung.target:.0%})", flush=True)
    return result


def _evaluate_state_model(checkpoint: Path, rung: Rung) -> dict[str, list[int]]:
    """State-mode models: the trainer's in-process evaluator on the test layouts."""
    import numpy as np
    from qt_sim.tasks import select_tasks
    from qt_trainer.checkpoint import load_checkpoint
    from qt_trainer.export import model_from_checkpoint
    from qt_trainer.rollouts import RolloutEvaluator, task_wordings

    state = load_checkpoint(checkpoint)
    model, spec = model_from_checkpoint(state)
    embeddings = {t: np.asarray(e, np.float32) for t, e in zip(state["instructions"], state["embeddings"], strict=True)}
    tasks = select_tasks(rung.tasks)
    evaluator = RolloutEvaluator(
        tasks=tasks, wordings=task_wordings(tasks, state["instructions"]), embeddings=embeddings,
        image_hw=(rung.image, rung.image), proprio_layout=state["proprio_layout"], obs_mode="state", spec=spec,
        control_period_s=1.0 / float(state.get("control_rate_hz") or 10.0),
        episodes_per_task=rung.eval_episodes_per_task, horizon=rung.horizon, seed_base=TEST_SEED_BASE)
    try:
        report = evaluator.evaluate(model)
    finally:
        evaluator.close()
    return {t: list(v) for t, v in report.per_task.items()}


def table(results: list[dict[str, Any]]) -> str:
    lines = ["| rung | data: episodes (success) | training min | steps (best) | success on held-out layouts, "
             "95 % CI | target |", "|---|---|---|---|---|---|"]
    for r in results:
        rung, data, training, success = r["rung"], r["data"], r["training"], r["success"]
        lines.append(
            f"| {rung['name']} {rung['title']} | {data['episodes']} ({data['successes'] / data['episodes']:.0%}) | "
            f"{training['minutes']:.1f} | {training['steps']} ({training['best_step']}) | "
            f"{_rate(success['successes'], success['episodes'])} | >= {rung['target']:.0%} "
            f"{'met' if r['met_target'] else 'MISSED'} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rungs", default="R1,R2,R3", help="comma-separated rungs (default R1,R2,R3)")
    parser.add_argument("--work", type=Path, default=ROOT / "runs" / "ladder", help="working folder")
    parser.add_argument("--budget-min", action="append", default=[], metavar="RUNG=MIN",
                        help="override a rung's training budget, e.g. R3=45")
    parser.add_argument("--episodes", action="append", default=[], metavar="RUNG=N",
                        help="override a rung's number of collected episodes")
    args = parser.parse_args(argv)
    from dataclasses import replace

    rungs = []
    for name in [r.strip() for r in args.rungs.split(",") if r.strip()]:
        if name not in RUNGS:
            parser.error(f"--rungs: unknown rung {name!r}; known {sorted(RUNGS)}")
        rungs.append(RUNGS[name])
    for option, field in ((args.budget_min, "budget_min"), (args.episodes, "episodes")):
        for item in option:
            name, _, value = item.partition("=")
            rungs = [replace(r, **{field: type(getattr(r, field))(value)}) if r.name == name else r for r in rungs]
    results = []
    for rung in rungs:
        try:
            results.append(run_rung(rung, args.work))
        except RuntimeError as exc:
            print(f"{rung.name} failed: {exc}", file=sys.stderr)
            return 1
    text = table(results)
    print("\n" + text)
    (args.work / "ladder.md").write_text(text + "\n")
    (args.work / "ladder.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
