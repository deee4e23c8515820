"""INT8 export: a statically quantized graph the node's decoder loads, close to fp32, labelled int8."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from qt_common.action_spec import ActionSpec
from qt_policy_node.decoder import PolicyDecoder
from qt_trainer.config import MODEL_SIZES, ModelConfig
from qt_trainer.export import export_policy, int8_frames, int8_summary
from qt_trainer.model import QTransformer
from qt_trainer.quantize import WORTHWHILE_SPEEDUP, node_flops
from qt_trainer.synthetic import INSTRUCTIONS, write_synthetic_dataset


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    """fp32 and int8 exports of one tiny model, and held-back frames of its synthetic dataset."""
    root = tmp_path_factory.mktemp("int8")
    spec = ActionSpec.default()
    dataset = write_synthetic_dataset(root / "data", episodes=6, length=40, image_shape=(48, 64, 3), proprio_dim=3,
                                      spec=spec)
    cfg = ModelConfig(image_height=48, image_width=64, num_dims=spec.num_dims, num_bins=spec.num_bins,
                      proprio_dim=3, **MODEL_SIZES["tiny"])
    torch.manual_seed(0)
    model = QTransformer(cfg).eval()
    rng = np.random.default_rng(0)
    embeddings = rng.standard_normal((len(INSTRUCTIONS), cfg.embed_dim)).astype(np.float32)
    embeddings /= np.linalg.norm(embeddings, axis=1, keepdims=True)
    state = {"data_path": str(dataset.path), "data_digest": dataset.digest(), "instructions": list(INSTRUCTIONS),
             "embeddings": embeddings}
    frames = int8_frames(state, cfg, calibration_frames=64, check_frames=120)
    common = {"embeddings": {}, "text_encoder_id": "none"}
    fp32 = export_policy(model, spec, root / "fp32", name="fp32", **common)
    int8 = export_policy(model, spec, root / "int8", name="int8", int8=frames, **common)
    return fp32, int8, frames.check


def test_int8_graph_is_quantized_and_labelled(exports) -> None:
    fp32, int8, _ = exports
    ops = {node.op_type for node in onnx.load(str(int8 / "policy.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear", "ArgMax"} <= ops
    assert not (int8 / "policy.fp32.onnx.tmp").exists()
    assert PolicyDecoder(fp32).precision == "fp32"
    decoder = PolicyDecoder(int8)
    card = decoder.card
    assert decoder.precision == card["precision"] == "int8"
    assert card["quantization"]["calibration_frames"] == 64
    assert card["quantization"]["bin_agreement_vs_fp32"]["frames"] == 120


def test_int8_bins_agree_with_fp32_in_one_run(exports) -> None:
    fp32, int8, check = exports
    ref, quant = PolicyDecoder(fp32), PolicyDecoder(int8)
    bins, _, action = quant.decode_batch(check["image"], check["instruction_embedding"], check["proprio"])
    ref_bins, _, _ = ref.decode_batch(check["image"], check["instruction_embedding"], check["proprio"])
    spec = ActionSpec.default()
    assert ((bins >= 0) & (bins < spec.num_bins)).all()
    np.testing.assert_allclose(action, spec.bins_to_values(bins), atol=1e-6)  # the look-up table stays exact
    assert (bins == ref_bins).mean() > 0.8
    single = quant.decode(check["image"][0], check["instruction_embedding"][0], check["proprio"][0])
    np.testing.assert_array_equal(single.bins, bins[0])


def test_int8_refuses_changed_training_data(exports, tmp_path: Path) -> None:
    cfg = ModelConfig(image_height=48, image_width=64, proprio_dim=3, **MODEL_SIZES["tiny"])
    dataset = write_synthetic_dataset(tmp_path / "data", episodes=2, length=5, image_shape=(48, 64, 3),
                                      proprio_dim=3)
    state = {"data_path": str(dataset.path), "data_digest": "0000", "instructions": list(INSTRUCTIONS),
             "embeddings": np.zeros((len(INSTRUCTIONS), cfg.embed_dim), np.float32)}
    with pytest.raises(ValueError, match="differs from the checkpoint"):
        int8_frames(state, cfg, calibration_frames=4)


def test_int8_quantizes_only_the_convolutions(exports) -> None:
    """Quantized weights feed convolutions only: the transformer's small MatMuls stay fp32 (their
    quantize/dequantize pairs cost more than int8 saves; docs/TRAINER.md "INT8")."""
    _, int8, _ = exports
    graph = onnx.load(str(int8 / "policy.onnx")).graph
    weights = {init.name for init in graph.initializer}
    dequantized_weights = {n.output[0] for n in graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights}
    consumers = {n.op_type for n in graph.node if set(n.input) & dequantized_weights}
    assert dequantized_weights and consumers == {"Conv"}
    assert any(n.op_type == "MatMul" for n in graph.node)


def test_int8_card_says_what_int8_carries_and_how_fast_it_ran(exports) -> None:
    """The card records the convolutions' share of the arithmetic (counted from one real run's
    shapes, only Conv nodes in it) and both graphs' decode time at export (values not judged:
    they depend on the machine)."""
    fp32, int8, check = exports
    quantization = PolicyDecoder(int8).card["quantization"]
    flops = node_flops(fp32 / "policy.onnx", {name: value[:1] for name, value in check.items()})
    convs = sum(v for name, v in flops.items() if name.endswith("/Conv"))
    assert 0 < convs < sum(flops.values())
    assert quantization["conv_flop_share"] == round(convs / sum(flops.values()), 4)
    speed = quantization["decode_speed_at_export"]
    assert speed["fp32_ms_p50"] > 0 and speed["int8_ms_p50"] > 0 and speed["decodes"] >= 3


@pytest.mark.parametrize("speedup", [WORTHWHILE_SPEEDUP - 0.3, WORTHWHILE_SPEEDUP + 0.8])
def test_int8_export_warns_when_int8_is_not_faster(speedup: float) -> None:
    quantization = {"conv_flop_share": 0.46, "bin_agreement_vs_fp32": {"frames": 500, "per_dim": [0.9] * 5},
                    "decode_speed_at_export": {"fp32_ms_p50": 0.64, "int8_ms_p50": 0.64 / speedup,
                                               "speedup": speedup}}
    line, warning = int8_summary(quantization)
    assert "46%" in line and f"x{speedup:.2f}" in line
    assert bool(warning) == (speedup < WORTHWHILE_SPEEDUP)
