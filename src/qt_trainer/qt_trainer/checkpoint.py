"""Training checkpoints: one torch file holding everything a bit-exact resume needs.

Written atomically (temporary file + rename) so a crash mid-save keeps the previous one.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

FORMAT = "qt-checkpoint"
VERSION = 1
REQUIRED = ("step", "train_config", "model_config", "model", "action_spec", "instructions", "embeddings")


def save_checkpoint(path: Path, state: dict[str, Any]) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        torch.save({"format": FORMAT, "version": VERSION, **state}, tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and check a checkpoint; raises ValueError naming what is wrong."""
    path = Path(path)
    if path.is_dir():
        path = path / "checkpoint.pt"
    if not path.is_file():
        raise ValueError(f"checkpoint: no file at {path}")
    state = torch.load(path, map_location=map_location, weights_only=False)
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise ValueError(f"{path}: field 'format' must be {FORMAT!r}")
    if state.get("version") != VERSION:
        raise ValueError(f"{path}: field 'version' is {state.get('version')!r}; this code reads {VERSION}")
    missing = [k for k in REQUIRED if k not in state]
    if missing:
        raise ValueError(f"{path}: missing field(s) {missing}")
    return state
