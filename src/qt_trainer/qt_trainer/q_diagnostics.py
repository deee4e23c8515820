"""Q diagnostics: what a trained Q-Transformer believes along recorded episodes.

    qt q-diagnostics RUN_OR_CHECKPOINT DATASET --out DIR [--episodes 8] [--task push/]

For every frame of a few successful and a few failed episodes, and every action dimension
(teacher-forced on the data's bins for the earlier dimensions, as in training):

* ``q_data``: Q of the bin the data took;
* ``greedy_bin`` / ``q_greedy``: the argmax bin and its Q (what the policy would pick there);
* ``q_other_max``: the largest Q over every other bin of this state (how far the conservative
  term pushed the untaken bins down);
* ``q_never_seen_max``: the largest Q over bins that never occur for this dimension anywhere
  in the dataset (pure extrapolation: a greedy pick there is an out-of-distribution action);
* ``mc_return``: the Monte Carlo return of the frame (the bound and, for a good Q, the level
  the data bin should sit at in successful episodes).

Why: a rung that misses is explained by these numbers, not by a loss curve. Over-estimated
unseen bins (greedy Q above the data's MC return, greedy bin far from the data) point at the
conservative weight; Q flat at 0 on successes points at too little propagation (n-step,
gamma); equal Q on successes and failures means the observation does not separate them.

Writes ``q_diagnostics.json`` (per frame rows and a summary) and ``q_along_episodes.png``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qt_common.dataset import Dataset
from qt_common.proprio import object_features

from qt_trainer.checkpoint import load_checkpoint
from qt_trainer.export import model_from_checkpoint, resolve_checkpoint
from qt_trainer.model import QTransformer


def _observation(dataset: Dataset, model: QTransformer, frames: np.ndarray) -> torch.Tensor:
    """The model's observation input for dataset frames: images, or object features (state mode)."""
    if model.cfg.obs_mode == "state":
        poses = dataset.object_poses
        if poses is None:
            raise ValueError(f"dataset {dataset.path}: state-mode model but no object_poses")
        count = len(frames)
        return torch.from_numpy(object_features(np.asarray(poses[frames]).reshape(count, -1, 7)))
    return torch.from_numpy(np.ascontiguousarray(dataset.images[frames]))


def _embeddings(dataset: Dataset, state: dict[str, Any], frames: np.ndarray) -> torch.Tensor:
    table = {text: np.asarray(e, np.float32) for text, e in zip(state["instructions"], state["embeddings"],
                                                               strict=True)}
    texts = dataset.instructions
    missing = sorted({texts[i] for i in np.asarray(dataset.instruction_index)[frames]} - set(table))
    if missing:
        raise ValueError(f"dataset {dataset.path}: instruction(s) {missing} not in the checkpoint's embeddings")
    return torch.from_numpy(np.stack([table[texts[i]] for i in np.asarray(dataset.instruction_index)[frames]]))


@torch.no_grad()
def episode_rows(model: QTransformer, dataset: Dataset, state: dict[str, Any], episode: int,
                 gamma: float, never_seen: np.ndarray) -> list[dict[str, Any]]:
    """Per-frame, per-dimension Q figures of one dataset episode (see the module docstring)."""
    span = dataset.episode_frames(episode)
    frames = np.arange(span.start, span.stop)
    bins = torch.from_numpy(np.asarray(dataset.bins[frames], np.int64))
    proprio = torch.from_numpy(np.asarray(dataset.proprio[frames], np.float32)) if model.cfg.proprio_dim else None
    logits = model(_observation(dataset, model, frames), _embeddings(dataset, state, frames), bins, proprio)
    q = model.values(logits.float())  # [T, D, N]
    mc = np.asarray(dataset.returns_for_gamma(gamma), np.float32)[frames]
    rows = []
    for t in range(len(frames)):
        for d in range(q.shape[1]):
            row_q = q[t, d]
            data_bin = int(bins[t, d])
            other = row_q.clone()
            other[data_bin] = -1.0
            unseen = row_q[torch.from_numpy(never_seen[d])]
            rows.append({
                "t": t, "dim": d, "data_bin": data_bin, "q_data": float(row_q[data_bin]),
                "greedy_bin": int(row_q.argmax()), "q_greedy": float(row_q.max()),
                "q_other_max": float(other.max()),
                "q_never_seen_max": float(unseen.max()) if len(unseen) else float("nan"),
                "mc_return": float(mc[t]),
            })
    return rows


def _mean_or_nan(values: list[float]) -> float:
    """Mean over the finite values (NaN where every bin of a dimension occurs in the data)."""
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else float("nan")


# Bands of steps left to a successful episode's end: where a value is lost on the way back from
# the success (docs/E2E.md's tables by steps left are these).
STEPS_LEFT_BANDS = (("1-5", 1, 5), ("6-10", 6, 10), ("11-20", 11, 20), (">20", 21, None))


def by_steps_left(episodes: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Q(data), MC return and greedy = data bin of the successful episodes, per band of steps left."""
    bands: dict[str, list[dict[str, Any]]] = {name: [] for name, _, _ in STEPS_LEFT_BANDS}
    for episode in episodes:
        if episode["outcome"] != "success" or not episode["rows"]:
            continue
        length = max(r["t"] for r in episode["rows"]) + 1
        for row in episode["rows"]:
            left = length - row["t"]
            name = next(n for n, lo, hi in STEPS_LEFT_BANDS if lo <= left and (hi is None or left <= hi))
            bands[name].append(row)
    return {name: _core_means(rows) for name, rows in bands.items() if rows}


def _core_means(rows: list[dict[str, Any]]) -> dict[str, float]:
    """The figures read first, for any group of rows: Q of the data bin against its MC return, and
    how often greedy picks the data bin."""
    return {"frames_x_dims": len(rows), "q_data_mean": float(np.mean([r["q_data"] for r in rows])),
            "mc_return_mean": float(np.mean([r["mc_return"] for r in rows])),
            "greedy_equals_data": float(np.mean([r["greedy_bin"] == r["data_bin"] for r in rows]))}


def summarise(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Means over frames and dimensions, split by the episode's outcome; successes also by steps left."""
    out: dict[str, Any] = {}
    for outcome in ("success", "failure"):
        rows = [r for e in episodes if e["outcome"] == outcome for r in e["rows"]]
        if not rows:
            continue
        q_data = np.array([r["q_data"] for r in rows])
        q_greedy = np.array([r["q_greedy"] for r in rows])
        mc = np.array([r["mc_return"] for r in rows])
        out[outcome] = {
            **_core_means(rows),
            "q_data_minus_mc_mean": float((q_data - mc).mean()),
            "q_greedy_mean": float(q_greedy.mean()),
            "greedy_within_2_bins": float(np.mean([abs(r["greedy_bin"] - r["data_bin"]) <= 2 for r in rows])),
            "q_other_max_mean": float(np.mean([r["q_other_max"] for r in rows])),
            "q_never_seen_max_mean": _mean_or_nan([r["q_never_seen_max"] for r in rows]),
            "greedy_above_mc_by_0_1": float(np.mean(q_greedy > mc + 0.1)),
        }
    if "success" in out:
        out["success"]["by_steps_left"] = by_steps_left(episodes)
    return out


def plot(episodes: list[dict[str, Any]], num_dims: int, path: Path, size: tuple[int, int] = (520, 300)) -> None:
    """Two panels (successful, failed episodes): per episode, Q of the data bin (mean over
    dims, solid), Q of the greedy bin (thin) and the MC return (dotted), Q from 0 to 1 upwards.

    Drawn with Pillow (already a runtime dependency) rather than matplotlib."""
    from PIL import Image, ImageDraw

    width, height = size
    margin = 30
    image = Image.new("RGB", (2 * width, height), "white")
    draw = ImageDraw.Draw(image)
    colors = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
              (227, 119, 194), (127, 127, 127)]
    for panel, outcome in enumerate(("success", "failure")):
        left = panel * width + margin
        plot_w, plot_h = width - 2 * margin, height - 2 * margin
        draw.rectangle([left, margin, left + plot_w, margin + plot_h], outline="black")
        draw.text((left, 8), f"{'successful' if outcome == 'success' else 'failed'} episodes: Q(data) solid, "
                  "Q(greedy) thin, MC return dotted", fill="black")
        mine = [e for e in episodes if e["outcome"] == outcome]
        longest = max((len(e["rows"]) // num_dims for e in mine), default=1)

        def xy(step: int, value: float, left: int = left, plot_w: int = plot_w, plot_h: int = plot_h,
               longest: int = longest) -> tuple[float, float]:
            return left + plot_w * step / max(longest - 1, 1), margin + plot_h * (1.0 - min(max(value, 0.0), 1.0))

        for i, episode in enumerate(mine):
            rows = episode["rows"]
            steps = len(rows) // num_dims
            series = {name: np.array([r[name] for r in rows]).reshape(steps, num_dims) for name in
                      ("q_data", "q_greedy", "mc_return")}
            color = colors[i % len(colors)]
            draw.line([xy(t, v) for t, v in enumerate(series["q_data"].mean(1))], fill=color, width=2)
            draw.line([xy(t, v) for t, v in enumerate(series["q_greedy"].mean(1))], fill=color, width=1)
            for t, v in enumerate(series["mc_return"][:, 0]):
                x, y = xy(t, v)
                draw.point([(x, y), (x + 1, y)], fill=color)
        draw.text((left - 24, margin - 6), "1.0", fill="black")
        draw.text((left - 24, margin + plot_h - 6), "0.0", fill="black")
        draw.text((left + plot_w - 40, margin + plot_h + 6), f"{longest} steps", fill="black")
    image.save(path)


def diagnose(checkpoint: Path, dataset_path: Path, out_dir: Path, episodes_per_outcome: int = 4,
             which: str = "auto", task: str = "") -> dict[str, Any]:
    """The report of ``episodes_per_outcome`` successful and failed episodes, written to ``out_dir``.

    ``task`` keeps the episodes whose task id starts with it (``push/``): a multi-task rung's
    misses are read per task family, where the mean over all tasks would hide them."""
    state = load_checkpoint(resolve_checkpoint(checkpoint, which))
    model, _ = model_from_checkpoint(state)
    if model.cfg.algorithm != "q_transformer":
        raise ValueError(f"{checkpoint}: algorithm {model.cfg.algorithm!r}; Q diagnostics needs a Q-Transformer")
    dataset = Dataset(dataset_path)
    gamma = float(state["train_config"].get("gamma") or dataset.gamma)
    all_bins = np.asarray(dataset.bins)
    never_seen = np.ones((all_bins.shape[1], model.cfg.num_bins), bool)
    for d in range(all_bins.shape[1]):
        never_seen[d, np.unique(all_bins[:, d])] = False
    candidates = [i for i, e in enumerate(dataset.episodes) if str(e.get("task_id", "")).startswith(task)]
    if not candidates:
        raise ValueError(f"--task {task!r}: no episode of {dataset_path} has a task_id starting with it")
    chosen: list[dict[str, Any]] = []
    for outcome in ("success", "failure"):
        ids = [i for i in candidates if dataset.episodes[i]["outcome"] == outcome][:episodes_per_outcome]
        for i in ids:
            chosen.append({"episode": i, "episode_id": dataset.episodes[i].get("episode_id", ""),
                           "outcome": outcome, "rows": episode_rows(model, dataset, state, i, gamma, never_seen)})
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"checkpoint": str(checkpoint), "dataset": str(dataset_path), "gamma": gamma,
              "task": task, "train_config": {k: state["train_config"].get(k) for k in
                               ("alpha", "n_step", "use_conservative", "use_mc_bound", "target_update", "lr")},
              "never_seen_bins_per_dim": never_seen.sum(1).tolist(), "summary": summarise(chosen),
              "episodes": chosen}
    (out_dir / "q_diagnostics.json").write_text(json.dumps(report))
    plot(chosen, model.cfg.num_dims, out_dir / "q_along_episodes.png")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qt q-diagnostics", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="run directory (best.pt or checkpoint.pt) or checkpoint file")
    parser.add_argument("dataset", type=Path, help="qt dataset the episodes come from")
    parser.add_argument("--out", type=Path, required=True, help="folder for q_diagnostics.json and the PNG")
    parser.add_argument("--episodes", type=int, default=4, help="episodes per outcome (success, failure)")
    parser.add_argument("--checkpoint-choice", choices=("auto", "best", "last"), default="auto")
    parser.add_argument("--task", default="", help="only episodes whose task id starts with this (e.g. push/)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    try:
        report = diagnose(args.checkpoint, args.dataset, args.out, args.episodes, args.checkpoint_choice, args.task)
    except ValueError as exc:
        parser.exit(2, f"qt q-diagnostics: {exc}\n")
    print(json.dumps(report["summary"], indent=1))
    print(f"wrote {args.out / 'q_diagnostics.json'} and {args.out / 'q_along_episodes.png'}")
    return 0
