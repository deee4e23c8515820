"""Export contract: ONNX decode == PyTorch greedy decode, card fields, decoder refusals."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from helpers.tiny_policy import export_tiny_policy
from qt_common.action_spec import ActionSpec
from qt_policy_node.decoder import PolicyCardError, PolicyDecoder, ProviderError
from qt_trainer.config import ModelConfig
from qt_trainer.export import export_policy, random_inputs, torch_decode
from qt_trainer.model import QTransformer


@pytest.fixture(scope="module")
def default_policy(tmp_path_factory: pytest.TempPathFactory) -> tuple[QTransformer, ActionSpec, Path]:
    """The default-size network (with proprio and non-trivial proprio statistics, so parity covers
    the standardisation inside the graph) on a small image, random weights."""
    spec = ActionSpec.default()
    cfg = ModelConfig(image_height=40, image_width=56, proprio_dim=4)
    torch.manual_seed(3)
    model = QTransformer(cfg).eval()
    with torch.no_grad():
        model.proprio_mean.copy_(torch.tensor([0.4, -0.1, 0.2, 0.9]))
        model.proprio_std.copy_(torch.tensor([0.05, 0.1, 0.3, 2.0]))
    out = export_policy(model, spec, tmp_path_factory.mktemp("policy"), name="parity", embeddings={},
                        text_encoder_id="none")
    return model, spec, out


def test_onnx_bins_equal_torch_greedy_on_500_inputs(default_policy) -> None:
    model, spec, out = default_policy
    decoder = PolicyDecoder(out)
    feeds = random_inputs(model.cfg, 500, np.random.default_rng(11))
    bins, q, action = decoder.decode_batch(feeds["image"], feeds["instruction_embedding"], feeds["proprio"])
    ref_bins, ref_q, _ = torch_decode(model, spec, feeds)
    assert bins.dtype == np.int64 and bins.shape == (500, spec.num_dims)
    np.testing.assert_array_equal(bins, ref_bins)
    np.testing.assert_allclose(q, ref_q, atol=1e-4, rtol=0)
    np.testing.assert_allclose(action, spec.bins_to_values(bins), atol=1e-7, rtol=0)
    assert ((q >= 0) & (q <= 1)).all()
    # The preallocated batch-1 path gives the same answers as the batched run.
    for i in range(0, 500, 50):
        result = decoder.decode(feeds["image"][i], feeds["instruction_embedding"][i], feeds["proprio"][i])
        np.testing.assert_array_equal(result.bins, ref_bins[i])
        np.testing.assert_allclose(result.q_values, ref_q[i], atol=1e-4, rtol=0)
        assert result.latency_ms > 0


def test_the_graph_standardises_raw_proprio_itself(default_policy) -> None:
    """Feeding raw proprio gives the decision of the PyTorch model on standardised values."""
    model, _spec, out = default_policy
    decoder = PolicyDecoder(out)
    feeds = random_inputs(model.cfg, 64, np.random.default_rng(5))
    raw = (feeds["proprio"] * np.float32([0.05, 0.1, 0.3, 2.0]) + np.float32([0.4, -0.1, 0.2, 0.9])).astype(np.float32)
    bins, _, _ = decoder.decode_batch(feeds["image"], feeds["instruction_embedding"], raw)
    with torch.no_grad():
        ref, _ = model.greedy(torch.from_numpy(feeds["image"]), torch.from_numpy(feeds["instruction_embedding"]),
                              torch.from_numpy(raw))
    np.testing.assert_array_equal(bins, ref.numpy())
    unnormalised = QTransformer(model.cfg).eval()
    unnormalised.load_state_dict({k: v for k, v in model.state_dict().items() if "proprio_" not in k}, strict=False)
    with torch.no_grad():
        plain, _ = unnormalised.greedy(torch.from_numpy(feeds["image"]),
                                       torch.from_numpy(feeds["instruction_embedding"]), torch.from_numpy(raw))
    assert not np.array_equal(plain.numpy(), bins), "the statistics must change the decision"


@pytest.mark.parametrize("obs_tokens", ["objects", "both"])
def test_object_token_model_exports_with_parity(tmp_path: Path, obs_tokens: str) -> None:
    """Image mode with object tokens: the aux head and the object encoder run inside the graph
    (the robot has no object poses), and the ONNX decode equals PyTorch's."""
    spec = ActionSpec.default()
    cfg = ModelConfig(image_height=32, image_width=32, proprio_dim=4, aux_dim=15, obs_tokens=obs_tokens)
    torch.manual_seed(7)
    model = QTransformer(cfg).eval()
    out = export_policy(model, spec, tmp_path, name="objects", embeddings={}, text_encoder_id="none")
    feeds = random_inputs(cfg, 100, np.random.default_rng(2))
    bins, q, _ = PolicyDecoder(out).decode_batch(feeds["image"], feeds["instruction_embedding"], feeds["proprio"])
    ref_bins, ref_q, _ = torch_decode(model, spec, feeds)
    np.testing.assert_array_equal(bins, ref_bins)
    np.testing.assert_allclose(q, ref_q, atol=1e-4, rtol=0)
    assert "object_poses" not in {i.name for i in onnx.load(str(out / "policy.onnx")).graph.input}


def test_state_mode_models_are_not_exported(tmp_path: Path) -> None:
    cfg = ModelConfig(obs_mode="state", state_dim=35, proprio_dim=6)
    with pytest.raises(ValueError, match="obs_mode 'state'"):
        export_policy(QTransformer(cfg), ActionSpec.default(), tmp_path, name="s", embeddings={}, text_encoder_id="")


def test_graph_encodes_once_and_unrolls_every_dimension(default_policy) -> None:
    model, spec, out = default_policy
    graph = onnx.load(str(out / "policy.onnx")).graph
    ops = [node.op_type for node in graph.node]
    assert "Loop" not in ops and "If" not in ops
    # One conv per encoder stage plus the token learner's 1x1: the image is encoded exactly once.
    assert ops.count("Conv") == len(model.cfg.conv_channels) + 1
    assert ops.count("ArgMax") == spec.num_dims
    assert [i.name for i in graph.input] == ["image", "instruction_embedding", "proprio"]
    assert [o.name for o in graph.output] == ["bins", "q_values", "action"]


def test_card_follows_contract(default_policy) -> None:
    _, spec, out = default_policy
    card = json.loads((out / "policy.json").read_text())
    assert card["format"] == "qt-policy" and card["schema_version"] == 1
    assert card["algorithm"] == "q_transformer"
    assert card["action_spec_digest"] == spec.digest()
    assert ActionSpec.from_dict(card["action_spec"]).digest() == spec.digest()
    assert card["image"]["height"] == 40 and card["image"]["width"] == 56 and card["image"]["encoding"] == "rgb8"
    assert card["proprio_dim"] == 4 and card["proprio_layout"] == "unnamed_4"
    assert card["proprio_normalisation"]["mean"] == pytest.approx([0.4, -0.1, 0.2, 0.9])
    assert card["proprio_normalisation"]["std"] == pytest.approx([0.05, 0.1, 0.3, 2.0])
    assert card["text_encoder"]["dim"] == 384
    assert {i["name"] for i in card["onnx_io"]["inputs"]} == {"image", "instruction_embedding", "proprio"}
    assert card["model_id"].startswith("parity-")
    for key in ("control_rate_hz", "training", "evaluation"):
        assert key in card


def test_decoder_refuses_mismatched_card(tmp_path: Path) -> None:
    out = export_tiny_policy(tmp_path / "tiny")
    other = ActionSpec.from_dict({**ActionSpec.default().to_dict(), "num_bins": 128})
    with pytest.raises(PolicyCardError, match="action_spec_digest") as info:
        PolicyDecoder(out, expected_action_spec_digest=other.digest())
    assert other.digest() in str(info.value) and ActionSpec.default().digest() in str(info.value)
    with pytest.raises(PolicyCardError, match=r"image.*\(48, 64\).*\(96, 96\)"):
        PolicyDecoder(out, expected_image_size=(96, 96))
    ok = PolicyDecoder(out, expected_action_spec_digest=ActionSpec.default().digest(), expected_image_size=(48, 64))
    assert ok.provider == "CPUExecutionProvider" and not ok.fallback
    card = json.loads((out / "policy.json").read_text())
    (out / "policy.json").write_text(json.dumps({**card, "format": "something-else"}))
    with pytest.raises(PolicyCardError, match="'format'"):
        PolicyDecoder(out)


def test_gpu_request_never_silently_runs_on_cpu(tmp_path: Path) -> None:
    out = export_tiny_policy(tmp_path / "tiny")
    with pytest.raises(ProviderError, match="CUDAExecutionProvider"):
        PolicyDecoder(out, providers=["CUDAExecutionProvider", "CPUExecutionProvider"])
    flagged = PolicyDecoder(out, providers=["CUDAExecutionProvider", "CPUExecutionProvider"], allow_cpu_fallback=True)
    assert flagged.fallback and flagged.provider == "CPUExecutionProvider"


def test_decoder_rejects_bad_inputs_naming_the_field(tmp_path: Path) -> None:
    out = export_tiny_policy(tmp_path / "tiny", proprio_dim=2)
    decoder = PolicyDecoder(out)
    emb = decoder.known_embedding("pick up the red block")
    assert emb is not None and emb.shape == (384,)
    image = np.zeros((48, 64, 3), np.uint8)
    with pytest.raises(ValueError, match=r"image: expected uint8 \[48, 64, 3\]"):
        decoder.decode(np.zeros((64, 48, 3), np.uint8), emb, np.zeros(2))
    with pytest.raises(ValueError, match="image"):
        decoder.decode(image.astype(np.float32), emb, np.zeros(2))
    with pytest.raises(ValueError, match="embedding"):
        decoder.decode(image, np.full(384, np.nan, np.float32), np.zeros(2))
    with pytest.raises(ValueError, match="proprio"):
        decoder.decode(image, emb, None)
    result = decoder.decode(image, emb, np.zeros(2))
    assert result.bins.shape == (5,) and result.action.dtype == np.float32


def test_runtime_modules_import_neither_torch_nor_rclpy() -> None:
    code = (
        "import sys, qt_policy_node.decoder, qt_policy_node.text_encoder\n"
        "bad = [m for m in ('torch', 'rclpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
