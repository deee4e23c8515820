"""`--precision bf16`: CPU autocast in the training step (issue 16); fp32 stays the default."""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.trainer_mdp import tiny_config
from qt_common.dataset import Dataset
from qt_trainer.config import TrainConfig
from qt_trainer.synthetic import write_synthetic_dataset
from qt_trainer.train import Trainer, _config_from_args


class RandomEmbedder:
    id = "test-random"

    def embed(self, texts: list[str]) -> np.ndarray:
        v = np.random.default_rng(0).standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory: pytest.TempPathFactory) -> Dataset:
    return write_synthetic_dataset(tmp_path_factory.mktemp("data") / "syn", episodes=4, length=6,
                                   image_shape=(16, 16, 3), proprio_dim=2, seed=3)


def _trainer(data: Dataset, algorithm: str, precision: str, steps: int = 4) -> Trainer:
    cfg = tiny_config(steps, batch_size=8, precision=precision, device="cpu")
    cfg = replace(cfg, model=replace(cfg.model, algorithm=algorithm))
    return Trainer(cfg, data, None, embedder=RandomEmbedder(), progress=False)


def _linear_output_dtypes(trainer: Trainer) -> set[torch.dtype]:
    seen: set[torch.dtype] = set()
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.add(out.dtype))
             for m in trainer.model.modules() if isinstance(m, torch.nn.Linear)]
    try:
        trainer.train_step()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("algorithm", ["q_transformer", "bc"])
def test_bf16_step_runs_in_bf16_and_stays_finite(synthetic: Dataset, algorithm: str) -> None:
    fp32, bf16 = _trainer(synthetic, algorithm, "fp32"), _trainer(synthetic, algorithm, "bf16")
    assert _linear_output_dtypes(fp32) == {torch.float32}
    assert torch.bfloat16 in _linear_output_dtypes(bf16)  # autocast is really on
    before = {k: v.clone() for k, v in bf16.model.state_dict().items()}
    for _ in range(3):
        a, b = fp32.train_step(), bf16.train_step()
        assert all(np.isfinite(v) for v in b.values()), b
        # same step, same batch: the loss agrees to bf16's ~3 significant digits
        assert b["loss/total"] == pytest.approx(a["loss/total"], rel=0.05, abs=0.02)
    after = bf16.model.state_dict()
    assert all(after[k].dtype == before[k].dtype for k in before)  # weights stay fp32
    assert all(torch.isfinite(v).all() for v in after.values() if v.is_floating_point())
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_precision_is_a_validated_config_field_and_a_flag(tmp_path: Path) -> None:
    assert TrainConfig().precision == "fp32"
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp16")
    cfg = TrainConfig(precision="bf16")
    assert TrainConfig.from_dict(cfg.to_dict()).precision == "bf16"
    legacy = cfg.to_dict()
    del legacy["precision"]  # checkpoints written before the field resume as fp32
    assert TrainConfig.from_dict(legacy).precision == "fp32"
    from qt_trainer.train import main

    with pytest.raises(SystemExit):
        main([str(tmp_path), "--out", str(tmp_path / "run"), "--precision", "fp8"])
    args = argparse.Namespace(**{name: None for name in (
        "config", "model_size", "algorithm", "obs_mode", "obs_tokens", "steps", "batch_size", "lr", "lr_schedule",
        "warmup_steps", "gamma", "n_step", "alpha", "target_update", "tau", "target_copy_every", "augment_shift",
        "seed", "device", "threads", "log_every", "checkpoint_every", "aux_weight", "bc_label_sigma", "q_bin_sigma",
        "q_regression", "action_aux_weight", "init_from", "eval_every", "eval_episodes_per_task", "eval_horizon",
        "eval_seed_base", "time_budget_min")},
        no_conservative=False, no_mc_bound=False, no_amp=False, precision="bf16")
    assert _config_from_args(args).precision == "bf16"
