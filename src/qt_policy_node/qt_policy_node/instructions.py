"""The current instruction and its embedding, computed once per new instruction.

Why a separate class: the embedding must never be computed on the control path. A new
instruction is looked up in the policy card's embedding cache (every instruction the model
was trained or evaluated on); only when it is not there does the optional text encoder run,
once, in the instruction callback. An instruction that neither can embed leaves the policy
without a goal: the state becomes ``unknown`` and the safety layer holds the arm still.

An instruction longer than ``max_chars`` is refused before it is normalised, looked up,
encoded or logged (state ``too_long``, hold ``instruction_too_long``): a megabyte of text must
not cost the node CPU or flood its logs. Logs and /diagnostics show :func:`shorten`'s form.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np

from qt_policy_node.safety import INSTRUCTION_MISSING, INSTRUCTION_OK, INSTRUCTION_OVERLONG, INSTRUCTION_UNKNOWN

Encoder = Callable[[str], np.ndarray]
DEFAULT_MAX_CHARS = 1000
SHOWN_CHARS = 120  # of an instruction in logs and diagnostics


def shorten(text: str | None, limit: int = SHOWN_CHARS) -> str:
    """The form of an instruction that logs and diagnostics show: at most ``limit`` characters."""
    if text is None:
        return ""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def vector_problem(name: str, values: object, dim: int) -> str:
    """Why ``values`` is not a vector of ``dim`` finite floats (its shape, or how many and where
    its NaN/inf values are); empty when it is one. Shared with the decoder's input checks."""
    array = np.asarray(values)
    if array.shape != (dim,):
        return f"{name}: expected {dim} finite floats, got shape {array.shape}"
    bad = np.flatnonzero(~np.isfinite(array))
    if bad.size:
        return f"{name}: expected {dim} finite floats, got {bad.size} NaN/inf value(s) (first at index {int(bad[0])})"
    return ""


def normalize(text: str) -> str:
    """Lookup key: case and surrounding/repeated whitespace do not change an instruction."""
    return " ".join(text.split()).lower()


class InstructionEmbedder:
    """Holds the embedding of the current instruction in one reused float32 buffer."""

    def __init__(self, cache: Mapping[str, np.ndarray | list[float]], dim: int, encoder: Encoder | None = None,
                 max_chars: int = DEFAULT_MAX_CHARS):
        if dim <= 0:
            raise ValueError(f"text_encoder.dim: expected > 0, got {dim}")
        if max_chars <= 0:
            raise ValueError(f"max_instruction_chars: expected > 0, got {max_chars}")
        self.dim = dim
        self.max_chars = max_chars
        self.encoder = encoder
        self._cache: dict[str, np.ndarray] = {}
        for text, vector in cache.items():
            array = np.asarray(vector, dtype=np.float32)
            problem = vector_problem(f"text_encoder.embeddings[{shorten(text)!r}]", array, dim)
            if problem:
                raise ValueError(problem)
            self._cache[normalize(text)] = array
        self.embedding = np.zeros(dim, dtype=np.float32)
        self.text: str | None = None
        self.state = INSTRUCTION_MISSING
        self.source = ""  # "cache" or "encoder": where the current embedding came from
        self.problem = "no instruction received yet"

    @property
    def shown(self) -> str:
        """The current instruction as logs and diagnostics show it."""
        return shorten(self.text)

    @property
    def known(self) -> list[str]:
        return sorted(self._cache)

    def set(self, text: str) -> bool:
        """Take a new instruction; returns True when it changed (the caller logs it)."""
        if text == self.text:
            return False
        self.text = text
        if len(text) > self.max_chars:
            self.state, self.source = INSTRUCTION_OVERLONG, ""
            self.problem = f"instruction has {len(text)} characters, more than max_instruction_chars={self.max_chars}"
            return True
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
                self.problem = f"text encoder failed on {shorten(text)!r}: {exc}"
            else:
                problem = vector_problem("text encoder output", vector, self.dim)
                if problem:
                    self.problem, vector = problem, None
                else:
                    self._cache[key] = vector.copy()  # embed each wording once
                    source = "encoder"
        elif vector is None:
            self.problem = (
                f"instruction {shorten(text)!r} is not in the model card's embedding cache and no text encoder is "
                f"loaded (known: {self.known})"
            )
        if vector is None:
            self.state, self.source = INSTRUCTION_UNKNOWN, ""
            return True
        np.copyto(self.embedding, vector)
        self.state, self.source, self.problem = INSTRUCTION_OK, source, ""
        return True
