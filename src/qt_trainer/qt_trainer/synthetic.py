"""A small synthetic dataset in the real on-disk format, for benchmarks and smoke runs.

Written through qt_common.dataset.DatasetWriter, so it is exactly what the bag converter
produces; only the content is made up: each episode's frames are a coloured square drifting
over a noisy background, actions move toward a goal bin, and episodes succeed at random.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset, DatasetWriter, Episode

INSTRUCTIONS = ("pick up the red block", "push the blue block to the left", "open the gripper")


def write_synthetic_dataset(
    path: str | Path,
    *,
    episodes: int = 8,
    length: int = 12,
    image_shape: tuple[int, int, int] = (96, 96, 3),
    proprio_dim: int = 0,
    spec: ActionSpec | None = None,
    gamma: float = 0.98,
    seed: int = 0,
) -> Dataset:
    spec = spec or ActionSpec.default()
    rng = np.random.default_rng(seed)
    h, w, _ = image_shape
    with DatasetWriter(path, spec, image_shape, proprio_dim=proprio_dim, gamma=gamma,
                       created_by="qt_trainer.synthetic") as writer:
        for e in range(episodes):
            images = rng.integers(0, 40, size=(length, *image_shape), dtype=np.uint8)
            colour = rng.integers(80, 256, size=3)
            y, x = rng.integers(0, max(1, h - 8)), rng.integers(0, max(1, w - 8))
            goal = rng.integers(0, spec.num_bins, size=spec.num_dims)
            bins = np.clip(goal + rng.integers(-20, 21, size=(length, spec.num_dims)), 0, spec.num_bins - 1)
            for t in range(length):
                yy, xx = (y + t) % max(1, h - 8), (x + 2 * t) % max(1, w - 8)
                images[t, yy : yy + 8, xx : xx + 8] = colour
            proprio = rng.standard_normal((length, proprio_dim)).astype(np.float32) if proprio_dim else None
            writer.add_episode(Episode(
                images=images, bins=bins, proprio=proprio, instruction=INSTRUCTIONS[e % len(INSTRUCTIONS)],
                outcome="success" if rng.random() < 0.5 else "failure", episode_id=f"synthetic-{e}",
            ))
    return Dataset(path)
