"""Instruction embeddings: the pretrained encoder in torch, its ONNX export, the torch-free runtime."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qt_policy_node.text_encoder import InstructionEmbeddings, TextEncoder, TextEncoderMissing
from qt_trainer.text import TEXT_ENCODER_ID, SentenceEmbedder, export_text_encoder

NEW = ["stack the green cube on the red one", "Open the TOP drawer, slowly!", "wipe the table"]


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_text_encoder(tmp_path_factory.mktemp("enc") / "minilm")


def test_pretrained_embeddings_carry_meaning(embedder) -> None:
    a, b, c = embedder.embed(["pick up the red block", "grasp the red cube", "open the drawer"])
    np.testing.assert_allclose([np.linalg.norm(v) for v in (a, b, c)], 1.0, atol=1e-5)
    assert a @ b > a @ c + 0.15  # a paraphrase is much closer than another task
    again = embedder.embed(["grasp the red cube"])[0]
    np.testing.assert_array_equal(again, b)  # cached per string


def test_onnx_runtime_encoder_matches_torch_on_new_instructions(exported: Path) -> None:
    runtime = TextEncoder(exported)
    assert runtime.id == TEXT_ENCODER_ID and runtime.dim == 384
    reference = SentenceEmbedder(disk_cache=False)
    for text in NEW:
        np.testing.assert_allclose(runtime.embed(text), reference.compute(text), atol=1e-5)
    with pytest.raises(ValueError, match="instruction"):
        runtime.embed("   ")


def test_instruction_embeddings_prefer_the_card_then_the_encoder(exported: Path, tmp_path: Path) -> None:
    known = np.zeros(384, np.float32)
    known[0] = 1.0
    embeddings = {"pick up the red block": known.tolist()}
    card = {"text_encoder": {"id": TEXT_ENCODER_ID, "dim": 384, "embeddings": embeddings}}
    offline = InstructionEmbeddings(card, encoder_dir=tmp_path / "absent")
    np.testing.assert_array_equal(offline.get("pick up the red block"), known)  # no encoder needed
    with pytest.raises(TextEncoderMissing, match="absent"):
        offline.get(NEW[0])
    online = InstructionEmbeddings(card, encoder_dir=exported)
    vector = online.get(NEW[0])
    assert vector.shape == (384,) and abs(np.linalg.norm(vector) - 1.0) < 1e-5
    other = json.loads(json.dumps(card))
    other["text_encoder"]["id"] = "some/other-encoder"
    with pytest.raises(ValueError, match="some/other-encoder"):
        InstructionEmbeddings(other, encoder_dir=exported).get(NEW[1])
