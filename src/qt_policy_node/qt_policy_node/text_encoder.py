"""Instruction -> embedding on the robot, without torch: card cache first, ONNX encoder second.

A policy card caches the embedding of every instruction the model was trained or evaluated on
(``text_encoder.embeddings``), so a shipped model needs nothing else for known wordings. A new
wording goes through the exported sentence encoder (all-MiniLM-L6-v2 as ONNX + its
tokenizer.json, ~90 MB, kept outside git in ``$QT_CACHE_DIR/text_encoder/all-MiniLM-L6-v2`` or
~/.cache/qt-robot/...; ``qt export`` writes it). numpy + onnxruntime + tokenizers only.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

CPU = "CPUExecutionProvider"


def default_encoder_dir() -> Path:
    root = Path(os.environ.get("QT_CACHE_DIR") or Path.home() / ".cache" / "qt-robot")
    return root / "text_encoder" / "all-MiniLM-L6-v2"


class TextEncoderMissing(RuntimeError):
    """A new instruction needs the ONNX sentence encoder, and it is not there."""


class TextEncoder:
    """The exported sentence encoder: tokenise, run ONNX, return a unit-norm embedding."""

    def __init__(self, directory: str | Path | None = None, threads: int = 1):
        from tokenizers import Tokenizer

        self.directory = Path(directory) if directory is not None else default_encoder_dir()
        info_path = self.directory / "text_encoder.json"
        if not info_path.is_file():
            raise TextEncoderMissing(
                f"no exported text encoder at {self.directory} (text_encoder.json missing); run `qt export` "
                "on a machine with the trainer installed, or set QT_CACHE_DIR"
            )
        self.info: dict[str, Any] = json.loads(info_path.read_text())
        self.id: str = self.info["id"]
        self.dim = int(self.info["dim"])
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(int(self.info["max_tokens"]))
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        self.session = ort.InferenceSession(str(self.directory / "text_encoder.onnx"), options, providers=[CPU])
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, text: str) -> np.ndarray:
        """float32 [dim], L2-normalised; each distinct string is computed once."""
        if not isinstance(text, str) or not text.strip():
            raise ValueError(f"instruction: expected a non-empty string, got {text!r}")
        cached = self._cache.get(text)
        if cached is None:
            encoding = self.tokenizer.encode(text)
            ids = np.asarray([encoding.ids], dtype=np.int64)
            mask = np.asarray([encoding.attention_mask], dtype=np.int64)
            (embedding,) = self.session.run(["embedding"], {"input_ids": ids, "attention_mask": mask})
            cached = embedding[0].astype(np.float32)
            self._cache[text] = cached
        return cached.copy()


class InstructionEmbeddings:
    """What the policy node asks: the embedding for an instruction string.

    Known wordings come from the card; unknown ones load the ONNX encoder on first use (and
    fail with TextEncoderMissing naming where it looked when it is absent).
    """

    def __init__(self, card: dict[str, Any], encoder_dir: str | Path | None = None, threads: int = 1):
        section = card["text_encoder"]
        self.encoder_id: str = section.get("id", "")
        self.dim = int(section["dim"])
        self.known = {text: np.asarray(v, np.float32) for text, v in section.get("embeddings", {}).items()}
        self._encoder_dir = encoder_dir
        self._threads = threads
        self._encoder: TextEncoder | None = None

    def get(self, instruction: str) -> np.ndarray:
        vector = self.known.get(instruction)
        if vector is not None:
            return vector.copy()
        if self._encoder is None:
            encoder = TextEncoder(self._encoder_dir, self._threads)
            if encoder.id != self.encoder_id or encoder.dim != self.dim:
                raise ValueError(
                    f"text encoder: the card was trained with {self.encoder_id!r} (dim {self.dim}), the exported "
                    f"encoder at {encoder.directory} is {encoder.id!r} (dim {encoder.dim})"
                )
            self._encoder = encoder
        vector = self._encoder.embed(instruction)
        self.known[instruction] = vector
        return vector.copy()


def load_text_encoder(card: dict[str, Any], path: str) -> tuple[Callable[[str], np.ndarray] | None, str]:
    """The optional ONNX sentence encoder for instructions outside the card's cache.

    Loaded at configure (about a second), never in the instruction callback, so a new wording
    costs one encoder run and never a model load while the arm is under control.
    """
    section = card["text_encoder"]
    try:
        encoder = TextEncoder(path or None)
    except Exception as exc:  # optional: the card's cache still works without it
        return None, f"text encoder not loaded ({exc})"
    if encoder.id != section.get("id") or encoder.dim != int(section["dim"]):
        return None, (
            f"text encoder at {encoder.directory} is {encoder.id!r} (dim {encoder.dim}) but the card was trained "
            f"with {section.get('id')!r} (dim {section['dim']}); not used"
        )
    return encoder.embed, f"text encoder {encoder.id} loaded from {encoder.directory}"
