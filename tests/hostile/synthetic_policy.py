"""Synthetic policy artefacts for the hostile-input suite, built in milliseconds.

Why synthetic: the suite must be fast and must control exactly what a model outputs (always
the same non-zero action, so any published motion is visibly "decided"), and it needs graphs
that disagree with their card in one chosen way. The graph is a few ONNX Constant nodes with
the contract's input and output names; the card is a minimal valid policy.json. No torch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.action_spec import ActionSpec

SPEC = ActionSpec.default()
IMAGE_SIZE = (48, 64)  # (height, width)
EMBED_DIM = 8
INSTRUCTION = "pick up the red block"
ACTION = np.array([0.01, -0.01, 0.005, 0.05, 0.5], dtype=np.float32)  # non-zero in every dimension

_ONNX_TYPE = {np.dtype(np.uint8): 2, np.dtype(np.float32): 1, np.dtype(np.int64): 7}  # onnx.TensorProto codes


def write_policy(
    out: Path,
    *,
    graph_image: tuple[int, int] = IMAGE_SIZE,
    graph_dims: int = SPEC.num_dims,
    graph_embed: int = EMBED_DIM,
    image_dtype: Any = np.uint8,
    proprio_dim: int = 0,
    action: np.ndarray = ACTION,
    card_changes: dict[str, Any] | None = None,
) -> Path:
    """policy.onnx (constant outputs) + policy.json; graph_* deliberately may disagree with the card."""
    from onnx import helper, numpy_helper, save

    out.mkdir(parents=True, exist_ok=True)
    values = np.resize(np.asarray(action, np.float32), graph_dims)[None]
    bins = np.full((1, graph_dims), SPEC.num_bins // 2, np.int64)  # the controller acts on ``action`` only
    outputs = {"bins": bins.astype(np.int64), "q_values": np.ones((1, graph_dims), np.float32), "action": values}
    nodes = [helper.make_node("Constant", [], [name], value=numpy_helper.from_array(array, name))
             for name, array in outputs.items()]
    inputs = [
        helper.make_tensor_value_info("image", _ONNX_TYPE[np.dtype(image_dtype)], [1, *graph_image, 3]),
        helper.make_tensor_value_info("instruction_embedding", 1, [1, graph_embed]),
    ]
    if proprio_dim:
        inputs.append(helper.make_tensor_value_info("proprio", 1, [1, proprio_dim]))
    graph = helper.make_graph(nodes, "hostile", inputs, [
        helper.make_tensor_value_info(name, _ONNX_TYPE[array.dtype], list(array.shape))
        for name, array in outputs.items()
    ])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    save(model, str(out / "policy.onnx"))
    embedding = np.linspace(-1, 1, EMBED_DIM).tolist()
    card = {
        "format": "qt-policy", "schema_version": 1, "model_id": "hostile", "algorithm": "q_transformer",
        "action_spec": SPEC.to_dict(), "action_spec_digest": SPEC.digest(),
        "image": {"height": IMAGE_SIZE[0], "width": IMAGE_SIZE[1], "encoding": "rgb8"},
        "proprio_dim": proprio_dim, "proprio_layout": "ee_pose" if proprio_dim else "none",
        "text_encoder": {"id": "synthetic", "dim": EMBED_DIM, "embeddings": {INSTRUCTION: embedding}},
        "control_rate_hz": 10.0, "onnx_io": {},
    }
    card.update(card_changes or {})
    (out / "policy.json").write_text(json.dumps(card))
    return out
