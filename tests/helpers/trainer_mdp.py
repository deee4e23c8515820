"""Small MDPs with closed-form Q written as real datasets, and a tiny-model trainer config (qt_trainer tests).

Each state is a flat-coloured image, so the tiny conv encoder tells states apart at once and
the tests measure the learning rule, not perception. Two action dimensions with 256 bins.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from qt_common.action_spec import ActionDimension, ActionSpec
from qt_common.dataset import Dataset, DatasetWriter, Episode
from qt_trainer.config import MODEL_SIZES, ModelConfig, TrainConfig
from qt_trainer.train import Trainer

SPEC = ActionSpec((ActionDimension("a", -1.0, 1.0), ActionDimension("b", -1.0, 1.0)))
IMAGE = (8, 8, 3)
PALETTE = np.array([[230, 25, 25], [25, 200, 25], [25, 25, 230], [220, 220, 30], [30, 210, 210], [210, 30, 210],
                    [250, 250, 250], [10, 10, 10]], dtype=np.uint8)
INSTRUCTION = "reach the goal"


def state_image(state: int) -> np.ndarray:
    return np.broadcast_to(PALETTE[state], IMAGE).copy()


def write_mdp(path: Path, episodes: list[tuple[list[int], list[tuple[int, int]], str]], gamma: float,
              repeat: int = 1) -> Dataset:
    """``episodes``: (states, actions as bin pairs, outcome); each written ``repeat`` times."""
    with DatasetWriter(path, SPEC, IMAGE, gamma=gamma, created_by="tests/trainer") as writer:
        for _ in range(repeat):
            for states, actions, outcome in episodes:
                writer.add_episode(Episode(images=np.stack([state_image(s) for s in states]),
                                           bins=np.asarray(actions), instruction=INSTRUCTION, outcome=outcome))
    return Dataset(path)


def tiny_config(steps: int, **overrides) -> TrainConfig:
    model = replace(ModelConfig(), **MODEL_SIZES["tiny"])
    base = TrainConfig(model=model, steps=steps, batch_size=64, lr=3e-3, weight_decay=0.0, lr_schedule="constant",
                       warmup_steps=10, target_update="copy", target_copy_every=50, n_step=1, alpha=1.0,
                       num_threads=1, log_every=50,
                       checkpoint_every=10**9)
    return replace(base, **overrides)


def q_values(trainer: Trainer, state: int, prefix: tuple[int, ...] = (0, 0)) -> np.ndarray:
    """Online-network Q [D, N] in ``state``, teacher-forced on ``prefix`` (bins of earlier dims)."""
    model = trainer.model.eval()
    with torch.no_grad():
        image = torch.from_numpy(state_image(state)[None])
        logits = model(image, trainer.embeddings[:1], torch.tensor([prefix]))
    return torch.sigmoid(logits)[0].numpy()
