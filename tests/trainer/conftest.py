"""Fixtures of the trainer tests: the real sentence embedder (loaded once) and an MDP trainer."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
from helpers.trainer_mdp import tiny_config
from qt_common.dataset import Dataset
from qt_trainer.train import Trainer


class Embedder:
    """The real sentence encoder, shared by all tests of a session (loaded once)."""

    def __init__(self) -> None:
        from qt_trainer.text import SentenceEmbedder

        self.inner = SentenceEmbedder()
        self.id = self.inner.id

    def embed(self, texts: list[str]) -> np.ndarray:
        return self.inner.embed(texts)


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder()


@pytest.fixture
def train_mdp(embedder: Embedder) -> Callable[..., Trainer]:
    """Train the tiny network on a dataset for ``steps`` (TrainConfig overrides as keywords)."""

    def run(dataset: Dataset, steps: int, **overrides) -> Trainer:
        trainer = Trainer(tiny_config(steps, **overrides), dataset, None, embedder=embedder, progress=False)
        trainer.run()
        return trainer

    return run
