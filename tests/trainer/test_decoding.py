"""Greedy decoding == the training forward's argmax chain == brute force over the chain."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from qt_common.action_spec import ActionDimension, ActionSpec
from qt_trainer.config import MODEL_SIZES, ModelConfig
from qt_trainer.export import export_policy, random_inputs
from qt_trainer.model import QTransformer


def _inputs(cfg: ModelConfig, batch: int, seed: int) -> tuple[torch.Tensor, ...]:
    feeds = random_inputs(cfg, batch, np.random.default_rng(seed))
    out = [torch.from_numpy(feeds["image"]), torch.from_numpy(feeds["instruction_embedding"])]
    return (*out, torch.from_numpy(feeds["proprio"])) if "proprio" in feeds else tuple(out)


@pytest.mark.parametrize("obs_tokens", ["keypoints", "objects", "both"])
def test_training_forward_agrees_with_decoding_on_chosen_bins(obs_tokens: str) -> None:
    """Feeding the decoded bins back through the teacher-forced training forward must make
    every dimension's argmax the decoded bin (an off-by-one shift of the bin tokens fails),
    whatever the prefix holds of the observation."""
    torch.manual_seed(0)
    cfg = ModelConfig(image_height=32, image_width=32, proprio_dim=3, obs_tokens=obs_tokens,
                      aux_dim=0 if obs_tokens == "keypoints" else 9)
    model = QTransformer(cfg).eval()
    keypoints = cfg.num_obs_tokens if obs_tokens != "objects" else 0
    assert model.num_prefix == 1 + keypoints + 1 + (3 if obs_tokens != "keypoints" else 0)
    image, emb, proprio = _inputs(cfg, 64, seed=1)
    with torch.no_grad():
        bins, q = model.greedy(image, emb, proprio)
        logits = model(image, emb, bins, proprio)
    assert torch.equal(logits.argmax(dim=-1), bins)
    torch.testing.assert_close(torch.sigmoid(logits).gather(2, bins[..., None])[..., 0], q, atol=1e-5, rtol=0)
    # And the first dimension's own path (used for the bootstrap) is the same function.
    with torch.no_grad():
        torch.testing.assert_close(model.first_dim_logits(image, emb, proprio), logits[:, 0], atol=1e-5, rtol=0)


def test_decoding_equals_brute_force_over_the_autoregressive_chain(tmp_path: Path) -> None:
    """A tiny model with 3 dims x 5 bins: evaluate Q for every one of the 125 bin sequences with
    the training forward, follow the argmax chain through that table, compare with PyTorch
    greedy decoding and with the exported ONNX graph."""
    spec = ActionSpec(tuple(ActionDimension(n, -1.0, 1.0) for n in "xyz"), num_bins=5)
    cfg = ModelConfig(image_height=8, image_width=8, num_dims=3, num_bins=5, **MODEL_SIZES["tiny"])
    torch.manual_seed(4)
    model = QTransformer(cfg).eval()
    # Spread the head so the chain genuinely depends on the previous bins.
    with torch.no_grad():
        model.head_weight.mul_(20.0)
        model.bin_embed.mul_(20.0)
    out = export_policy(model, spec, tmp_path / "p", name="brute", embeddings={}, text_encoder_id="none")
    session = ort.InferenceSession(str(out / "policy.onnx"), providers=["CPUExecutionProvider"])
    sequences = torch.tensor(list(itertools.product(range(5), repeat=3)))  # [125, 3]
    image, emb = _inputs(cfg, 20, seed=2)
    paths = set()
    for i in range(20):
        with torch.no_grad():
            q_all = torch.sigmoid(model(image[i : i + 1].expand(125, -1, -1, -1), emb[i : i + 1].expand(125, -1),
                                        sequences))  # [125, D, N]
            table = {tuple(seq.tolist()): q_all[k] for k, seq in enumerate(sequences)}
        chain: list[int] = []
        values: list[float] = []
        for dim in range(3):
            # Q of dim `dim` depends only on the bins before it: any completion gives the same row.
            row = table[tuple(chain + [0] * (3 - len(chain)))][dim]
            for completion in itertools.product(range(5), repeat=3 - len(chain)):
                torch.testing.assert_close(table[tuple(chain) + completion][dim], row, atol=1e-5, rtol=0)
            best = int(row.argmax())
            chain.append(best)
            values.append(float(row[best]))
        paths.add(tuple(chain))
        with torch.no_grad():
            bins, q = model.greedy(image[i : i + 1], emb[i : i + 1])
        assert bins[0].tolist() == chain
        np.testing.assert_allclose(q[0].numpy(), values, atol=1e-5)
        onnx_bins, onnx_q, onnx_action = session.run(
            None, {"image": image[i : i + 1].numpy(), "instruction_embedding": emb[i : i + 1].numpy()})
        assert onnx_bins[0].tolist() == chain
        np.testing.assert_allclose(onnx_q[0], values, atol=1e-4)
        np.testing.assert_allclose(onnx_action[0], spec.bins_to_values(np.array(chain)), atol=1e-6)
    assert len(paths) > 1  # the inputs exercise more than one branch of the chain
