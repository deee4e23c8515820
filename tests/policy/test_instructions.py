"""Instruction -> embedding: card cache first, text encoder second, otherwise "unknown"."""

from __future__ import annotations

import numpy as np
import pytest
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.safety import INSTRUCTION_MISSING, INSTRUCTION_OK, INSTRUCTION_UNKNOWN

DIM = 4
CACHE = {"pick up the red block": [1.0, 0.0, 0.0, 0.0]}


def test_cached_instruction_is_found_regardless_of_case_and_spacing():
    embedder = InstructionEmbedder(CACHE, DIM)
    assert embedder.state == INSTRUCTION_MISSING
    buffer = embedder.embedding
    assert embedder.set("  Pick up the RED   block ")
    assert embedder.state == INSTRUCTION_OK and embedder.source == "cache"
    np.testing.assert_array_equal(embedder.embedding, [1, 0, 0, 0])
    assert embedder.embedding is buffer  # written in place, never reallocated


def test_unknown_instruction_without_encoder_is_reported():
    embedder = InstructionEmbedder(CACHE, DIM)
    embedder.set("pick up the red block")
    assert embedder.set("stack everything")
    assert embedder.state == INSTRUCTION_UNKNOWN
    assert "not in the model card's embedding cache" in embedder.problem
    assert "stack everything" in embedder.problem


def test_encoder_runs_once_per_new_wording():
    calls: list[str] = []

    def encoder(text: str) -> np.ndarray:
        calls.append(text)
        return np.array([0.0, 1.0, 0.0, 0.0], dtype=np.float32)

    embedder = InstructionEmbedder(CACHE, DIM, encoder)
    embedder.set("stack everything")
    assert embedder.state == INSTRUCTION_OK and embedder.source == "encoder"
    assert not embedder.set("stack everything")  # unchanged: nothing to do
    embedder.set("pick up the red block")
    embedder.set("Stack everything")  # same wording after normalisation: cached now
    assert calls == ["stack everything"]


@pytest.mark.parametrize("bad", [np.zeros(3), np.array([np.nan, 0, 0, 0])])
def test_bad_encoder_output_is_not_used(bad):
    embedder = InstructionEmbedder(CACHE, DIM, lambda text: bad)
    embedder.set("stack everything")
    assert embedder.state == INSTRUCTION_UNKNOWN and "text encoder output" in embedder.problem


def test_failing_encoder_leaves_the_instruction_unknown():
    def broken(text: str) -> np.ndarray:
        raise RuntimeError("tokenizer exploded")

    embedder = InstructionEmbedder(CACHE, DIM, broken)
    embedder.set("stack everything")
    assert embedder.state == INSTRUCTION_UNKNOWN and "tokenizer exploded" in embedder.problem


def test_empty_instruction_means_no_instruction():
    embedder = InstructionEmbedder(CACHE, DIM)
    embedder.set("pick up the red block")
    embedder.set("   ")
    assert embedder.state == INSTRUCTION_MISSING


def test_malformed_cache_names_the_entry():
    with pytest.raises(ValueError, match=r"embeddings\['short'\]"):
        InstructionEmbedder({"short": [1.0, 2.0]}, DIM)


def test_real_text_encoder_agrees_with_the_card_cache(tiny_model):
    """The ONNX encoder (when exported on this machine) reproduces the trainer's cached vectors."""
    import json

    text_encoder = pytest.importorskip("qt_policy_node.text_encoder")
    try:
        encoder = text_encoder.TextEncoder()
    except text_encoder.TextEncoderMissing as exc:
        pytest.skip(str(exc))
    card = json.loads((tiny_model / "policy.json").read_text())["text_encoder"]
    text, cached = next(iter(card["embeddings"].items()))
    embedder = InstructionEmbedder({}, int(card["dim"]), encoder.embed)
    embedder.set(text)
    assert embedder.source == "encoder"
    np.testing.assert_allclose(embedder.embedding, cached, atol=1e-4)
