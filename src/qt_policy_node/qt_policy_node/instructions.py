"""The current instruction and its embedding, computed once per new instruction.

Why a separate class: the embedding must never be computed on the control path. A new
instruction is looked up in the policy card's embedding cache (every instruction the model
was trained or evaluated on); only when it is not there does the optional text encoder run,
once, in the instruction callback. An instruction that neither can embed leaves the policy
without a goal: the state becomes ``unknown`` and the safety layer holds the arm still.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from qt_policy_node.safety import INSTRUCTION_MISSING, INSTRUCTION_OK, INSTRUCTION_UNKNOWN

Encoder = Callable[[str], np.ndarray]


def normalize(text: str) -> str:
    """Lookup key: case and surrounding/repeated whitespace do not change an instruction."""
    return " ".join(text.split()).lower()


class InstructionEmbedder:
    """Holds the embedding of the current instruction in one reused float32 buffer."""

    def __init__(self, cache: Mapping[str, np.ndarray | list[float]], dim: int, encoder: Encoder | None = None):
        if dim <= 0:
            raise ValueError(f"text_encoder.dim: expected > 0, got {dim}")
        self.dim = dim
        self.encoder = encoder
        self._cache: dict[str, np.ndarray] = {}
        for text, vector in cache.items():
            array = np.asarray(vector, dtype=np.float32)
            if array.shape != (dim,) or not np.isfinite(array).all():
                raise ValueError(
                    f"text_encoder.embeddings[{text!r}]: expected {dim} finite floats, got shape {array.shape}"
                )
            self._cache[normalize(text)] = array
        self.embedding = np.zeros(dim, dtype=np.float32)
        self.text: str | None = None
        self.state = INSTRUCTION_MISSING
        self.source = ""  # "cache" or "encoder": where the current embedding came from
        self.problem = "no instruction received yet"

    @property
    def known(self) -> list[str]:
        return sorted(self._cache)

    def set(self, text: str) -> bool:
        """Take a new instruction; returns True when it changed (the caller logs it)."""
        if text == self.text:
            return False
        self.text = text
        key = normalize(text)
        if not key:
            self.state, self.source, self.problem = INSTRUCTION_MISSING, "", "instruction is empty"
            return True
        vector = self._cache.get(key)
        source = "cache"
        if vector is None and self.encoder is not None:
            try:
                vector = np.asarray(self.encoder(text), dtype=np.float32).reshape(-1)
            except Exception as exc:  # the encoder is optional; its failure must not stop the node
                vector = None
                self.problem = f"text encoder failed on {text!r}: {exc}"
            else:
                if vector.shape != (self.dim,) or not np.isfinite(vector).all():
                    self.problem = f"text encoder returned shape {vector.shape}, expected ({self.dim},) finite"
                    vector = None
                else:
                    self._cache[key] = vector.copy()  # embed each wording once
                    source = "encoder"
        elif vector is None:
            self.problem = (
                f"instruction {text!r} is not in the model card's embedding cache and no text encoder is "
                f"loaded (known: {self.known})"
            )
        if vector is None:
            self.state, self.source = INSTRUCTION_UNKNOWN, ""
            return True
        np.copyto(self.embedding, vector)
        self.state, self.source, self.problem = INSTRUCTION_OK, source, ""
        return True
