"""Evaluation results -> per-task table (JSON, markdown, terminal), PNG summary, model card.

Plain numpy + PIL (no ROS, no matplotlib), so both evaluation modes and the tests share it.

Why a Wilson interval: evaluations here are tens of episodes per task, often with success
rates near 0 or 1, where the normal approximation gives intervals outside [0, 1] or of zero
width; the Wilson score interval stays inside [0, 1] and is honest for small n. Two results
whose intervals overlap are not shown to differ.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.stats import wilson_interval

ALL = "all"


@dataclass
class EpisodeResult:
    """One evaluated episode, in either mode."""

    task_id: str
    seed: int
    instruction: str
    split: str
    outcome: str  # success | failure
    steps: int  # policy decisions executed (ticks after the episode's first, which runs before any)
    wall_s: float
    control_rate_hz: float  # ticks per wall second achieved during the episode
    decode_ms: list[float] = field(default_factory=list)  # inference latency of each decode
    command_latency_ms: list[float] = field(default_factory=list)  # ros: frame stamp -> command arrival
    lockstep_misses: int = 0  # ros: ticks the sim ran without the policy's command for the last frame
    repeated_commands: int = 0  # ros: policy ticks that found no new frame (decision reused)
    episode_id: str = ""
    frames: list[np.ndarray] = field(default_factory=list, repr=False)  # for the contact sheet (not saved)
    executed: list[np.ndarray] = field(default_factory=list, repr=False)  # commands executed, in order

    @property
    def success(self) -> bool:
        return self.outcome == "success"

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id, "seed": self.seed, "instruction": self.instruction, "split": self.split,
            "outcome": self.outcome, "steps": self.steps, "wall_s": round(self.wall_s, 3),
            "control_rate_hz": round(self.control_rate_hz, 2), "decode_ms": _stats(self.decode_ms),
            "command_latency_ms": _stats(self.command_latency_ms), "lockstep_misses": self.lockstep_misses,
            "repeated_commands": self.repeated_commands, "episode_id": self.episode_id,
        }


def _stats(values: Sequence[float]) -> dict[str, float] | None:
    if not len(values):
        return None
    a = np.asarray(values, dtype=np.float64)
    return {"n": int(a.size), "mean": round(float(a.mean()), 3), "p50": round(float(np.percentile(a, 50)), 3),
            "p95": round(float(np.percentile(a, 95)), 3), "max": round(float(a.max()), 3)}


def task_row(task_id: str, results: Sequence[EpisodeResult]) -> dict[str, Any]:
    n = len(results)
    successes = sum(r.success for r in results)
    low, high = wilson_interval(successes, n)
    decode = [v for r in results for v in r.decode_ms]
    latency = [v for r in results for v in r.command_latency_ms]
    return {
        "task": task_id, "episodes": n, "successes": successes, "success_rate": successes / n if n else 0.0,
        "ci95": [round(low, 4), round(high, 4)],
        "mean_steps": round(float(np.mean([r.steps for r in results])), 2) if n else 0.0,
        "control_rate_hz": round(float(np.mean([r.control_rate_hz for r in results])), 2) if n else 0.0,
        "decode_ms": _stats(decode), "command_latency_ms": _stats(latency),
        "lockstep_misses": sum(r.lockstep_misses for r in results),
        "repeated_commands": sum(r.repeated_commands for r in results),
    }


def build_report(results: Sequence[EpisodeResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The whole evaluation: ``meta`` (model, mode, split, seeds, command...), rows, episodes."""
    by_task: dict[str, list[EpisodeResult]] = {}
    for r in results:
        by_task.setdefault(r.task_id, []).append(r)
    rows = [task_row(t, rs) for t, rs in by_task.items()]
    return {**meta, "tasks": rows, "overall": task_row(ALL, list(results)),
            "episodes": [r.to_dict() for r in results]}


def _fmt_stats(stats: dict[str, float] | None) -> str:
    return "-" if not stats else f"{stats['p50']:.2f} / {stats['p95']:.2f}"


def markdown_table(report: dict[str, Any]) -> str:
    header = ("| task | episodes | success | 95 % CI | mean steps | control rate (Hz) | decode p50 / p95 (ms) "
              "| command latency p50 / p95 (ms) |")
    lines = [header, "|---|---|---|---|---|---|---|---|"]
    for row in [*report["tasks"], report["overall"]]:
        low, high = row["ci95"]
        name = f"**{row['task']}**" if row["task"] == ALL else f"`{row['task']}`"
        lines.append(
            f"| {name} | {row['episodes']} | {row['successes']}/{row['episodes']} = {100 * row['success_rate']:.0f} % "
            f"| {100 * low:.0f}-{100 * high:.0f} % | {row['mean_steps']:.1f} | {row['control_rate_hz']:.1f} "
            f"| {_fmt_stats(row['decode_ms'])} | {_fmt_stats(row['command_latency_ms'])} |")
    return "\n".join(lines)


def markdown_report(report: dict[str, Any]) -> str:
    meta = (f"model `{report.get('model_id', '?')}` ({report.get('algorithm', '?')}) from `{report.get('model_dir')}`; "
            f"mode {report.get('mode')}; split {report.get('split')} wordings; seeds from {report.get('seed_base')}; "
            f"{report['overall']['episodes']} episodes; {report.get('date', '')}")
    notes = []
    overall = report["overall"]
    if overall["lockstep_misses"] or overall["repeated_commands"]:
        notes.append(f"Timing: {overall['lockstep_misses']} lockstep miss(es), {overall['repeated_commands']} "
                     "policy tick(s) without a new frame (see docs/E2E.md).")
    command = report.get("command")
    body = [f"# Evaluation: {report.get('model_id', '?')}", "", meta, "", markdown_table(report), ""]
    if command:
        body += ["Command:", "", "```", command, "```", ""]
    return "\n".join(body + notes) + "\n"


def terminal_table(report: dict[str, Any]) -> str:
    lines = [f"{'task':<20} {'n':>4} {'success':>8} {'95% CI':>12} {'steps':>6} {'Hz':>6} {'decode p50/p95 ms':>18}"]
    for row in [*report["tasks"], report["overall"]]:
        low, high = row["ci95"]
        lines.append(f"{row['task']:<20} {row['episodes']:>4} {100 * row['success_rate']:>7.0f}% "
                     f"{100 * low:>5.0f}-{100 * high:<4.0f}% {row['mean_steps']:>6.1f} {row['control_rate_hz']:>6.1f} "
                     f"{_fmt_stats(row['decode_ms']):>18}")
    return "\n".join(lines)


# ---- pictures ----------------------------------------------------------------------------------


def bar_chart(rows: Sequence[dict[str, Any]], title: str = "", width: int = 640) -> np.ndarray:
    """Horizontal bars of success rate per row with 95 % interval whiskers, drawn with PIL."""
    from PIL import Image, ImageDraw

    label_w, bar_h, gap, top, axis_h = 150, 16, 8, 26 if title else 8, 22
    plot_w = width - label_w - 60
    height = top + len(rows) * (bar_h + gap) + axis_h
    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    if title:
        draw.text((6, 6), title, fill="black")
    x0 = label_w
    for frac in (0.0, 0.25, 0.5, 0.75, 1.0):
        x = x0 + round(frac * plot_w)
        draw.line([(x, top - 2), (x, height - axis_h + 2)], fill=(215, 215, 215))
        draw.text((x - 8, height - axis_h + 5), f"{round(frac * 100)}%", fill="black")
    for i, row in enumerate(rows):
        y = top + i * (bar_h + gap)
        draw.text((6, y + 2), str(row["task"])[:24], fill="black")
        colour = (70, 110, 200) if row["task"] != ALL else (40, 150, 80)
        draw.rectangle([x0, y, x0 + round(row["success_rate"] * plot_w), y + bar_h], fill=colour)
        low, high = row["ci95"]
        xl, xh, ym = x0 + round(low * plot_w), x0 + round(high * plot_w), y + bar_h // 2
        draw.line([(xl, ym), (xh, ym)], fill="black", width=2)
        for x in (xl, xh):
            draw.line([(x, y + 3), (x, y + bar_h - 3)], fill="black", width=2)
        draw.text((x0 + plot_w + 6, y + 2), f"{row['successes']}/{row['episodes']}", fill="black")
    return np.asarray(image)


def episode_sheet(results: Sequence[EpisodeResult], max_episodes: int = 6, frames_per_episode: int = 6,
                  scale: int = 2) -> np.ndarray | None:
    """Contact sheet: a few episodes (the first of each task first), one row each."""
    from qt_common.contact_sheet import make_contact_sheet

    with_frames = [r for r in results if r.frames]
    chosen: list[EpisodeResult] = []
    for r in with_frames:  # one per task first, then fill up in order
        if r.task_id not in {c.task_id for c in chosen}:
            chosen.append(r)
    chosen += [r for r in with_frames if r not in chosen]
    chosen = chosen[:max_episodes]
    if not chosen:
        return None
    frames, captions = [], []
    for r in chosen:
        picks = np.linspace(0, len(r.frames) - 1, frames_per_episode).round().astype(int)
        for j, k in enumerate(picks):
            frames.append(r.frames[k])
            head = f"{r.task_id} s{r.seed}" if j == 0 else f"step {k}"
            tail = r.outcome if j == frames_per_episode - 1 else ""
            captions.append(f"{head}\n{tail}")
    return make_contact_sheet(frames, captions, columns=frames_per_episode, scale=scale,
                              title="episodes (first and last frame of each row: reset and outcome)")


def summary_png(report: dict[str, Any], results: Sequence[EpisodeResult], path: Path) -> Path:
    """Bar chart above a contact sheet, one PNG."""
    from qt_common.contact_sheet import save_png

    title = (f"{report.get('model_id', '?')}: success rate per task, 95 % Wilson interval "
             f"({report.get('mode')}, {report.get('split')} wordings)")
    sheet = episode_sheet(results)
    chart = bar_chart([*report["tasks"], report["overall"]], title,
                      width=max(640, sheet.shape[1] if sheet is not None else 0))
    parts = [chart] if sheet is None else [chart, sheet]
    width = max(p.shape[1] for p in parts)
    padded = [np.pad(p, ((0, 0), (0, width - p.shape[1]), (0, 0)), constant_values=255) for p in parts]
    return save_png(path, np.concatenate(padded, axis=0))


# ---- files ---------------------------------------------------------------------------------------


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_outputs(report: dict[str, Any], results: Sequence[EpisodeResult], out_dir: Path) -> dict[str, Path]:
    """eval.json, eval.md and summary.png in ``out_dir``."""
    paths = {"json": out_dir / "eval.json", "markdown": out_dir / "eval.md", "png": out_dir / "summary.png"}
    _atomic_write(paths["json"], json.dumps(report, indent=2) + "\n")
    _atomic_write(paths["markdown"], markdown_report(report))
    summary_png(report, results, paths["png"])
    return paths


def card_entry(report: dict[str, Any]) -> dict[str, Any]:
    """What goes into policy.json "evaluation": the table and how it was made, not every episode."""
    keep = ("mode", "split", "seed_base", "episodes_per_task", "rate_hz", "sim_period_s", "lockstep", "date",
            "command", "tasks", "overall")
    return {k: report[k] for k in keep if k in report}


def merge_into_card(model_dir: Path, report: dict[str, Any]) -> Path:
    """Set policy.json "evaluation"[split] to this evaluation (other splits are kept); atomic."""
    path = Path(model_dir) / "policy.json"
    card = json.loads(path.read_text())
    evaluation = card.get("evaluation")
    if not isinstance(evaluation, dict):
        evaluation = {}
    evaluation[str(report["split"])] = card_entry(report)
    card["evaluation"] = evaluation
    _atomic_write(path, json.dumps(card, indent=1))  # the exporter's layout
    return path
