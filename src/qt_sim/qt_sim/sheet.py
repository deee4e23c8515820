"""Contact sheet of the task family: one scripted-expert episode per task, as one PNG.

    qt sim-sheet --out sim_tasks.png            # or: python -m qt_sim.sheet --out sim_tasks.png
    qt sim-sheet --size 160 --frames 8 --seed 3 --tasks pick/red,place/blue/yellow

One row per task: ``--frames`` camera frames spread evenly over the episode (first = the reset
layout, last = the final state), captioned with the task id, the step and the outcome. It is the
quickest way to see that every task is visible and solvable in the policy's camera.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
from qt_common.contact_sheet import make_contact_sheet, save_png

from qt_sim.env import TabletopEnv
from qt_sim.expert import ScriptedExpert
from qt_sim.rollout import run_episode
from qt_sim.teleop_common import parse_task_list


def build_sheet(task_ids: tuple[str, ...], seed: int, size: int, frames: int, scale: int) -> np.ndarray:
    env = TabletopEnv(width=size, height=size)
    expert = ScriptedExpert()
    tiles, captions = [], []
    try:
        for task_id in task_ids:
            result = run_episode(env, expert, task_id, seed, keep_frames=True)
            picks = np.linspace(0, len(result.frames) - 1, frames).round().astype(int)
            outcome = "SUCCESS" if result.success else "FAILURE"
            for column, index in enumerate(picks):
                tiles.append(result.frames[index])
                first = task_id if column == 0 else ""
                last = f"{outcome} t={index}" if column == frames - 1 else f"t={index}"
                captions.append(f"{first}\n{last}")
    finally:
        env.close()
    title = f"qt_sim: one scripted-expert episode per task (seed {seed}, {size}x{size} camera)"
    return make_contact_sheet(tiles, captions, columns=frames, scale=scale, title=title)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qt sim-sheet", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="sim_tasks.png", help="PNG path to write")
    parser.add_argument("--tasks", default="", help="comma-separated task ids (default: all 15)")
    parser.add_argument("--seed", type=int, default=0, help="layout seed of every episode")
    parser.add_argument("--size", type=int, default=96, help="camera size in pixels (square)")
    parser.add_argument("--frames", type=int, default=6, help="frames shown per episode (>= 2)")
    parser.add_argument("--scale", type=int, default=2, help="enlarge each frame by this factor")
    args = parser.parse_args(argv)
    if args.frames < 2:
        parser.error("--frames: expected at least 2")
    try:
        task_ids = parse_task_list(args.tasks)
    except ValueError as exc:
        parser.error(str(exc))
    path = save_png(args.out, build_sheet(task_ids, args.seed, args.size, args.frames, args.scale))
    print(f"wrote {path} ({len(task_ids)} tasks x {args.frames} frames)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
