"""Fixtures of the policy node tests: real exported models (tiny, untrained) and a broken one."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers.policy_models import SIM_TASK, TINY_IMAGE_SIZE, make_nan_model
from helpers.tiny_policy import export_tiny_policy


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real policy.onnx + policy.json written by qt_trainer's exporter (random weights)."""
    return export_tiny_policy(tmp_path_factory.mktemp("policy") / "tiny", image_size=TINY_IMAGE_SIZE)


@pytest.fixture(scope="session")
def nan_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_nan_model(tiny_model, tmp_path_factory.mktemp("policy") / "nan")


@pytest.fixture(scope="session")
def sim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model for the simulator: its card caches the wordings of SIM_TASK (no text encoder
    needed), and it takes the end-effector pose as proprioception (qt convert --proprio ee_pose)."""
    tasks = pytest.importorskip("qt_sim.tasks")
    return export_tiny_policy(tmp_path_factory.mktemp("policy") / "sim", image_size=TINY_IMAGE_SIZE,
                              instructions=tasks.instructions(SIM_TASK, "train"), proprio_dim=7)
