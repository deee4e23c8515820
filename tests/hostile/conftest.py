"""Fixtures of the hostile-input suite (synthetic artefacts: hostile/synthetic_policy.py)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hostile.synthetic_policy import write_policy


@pytest.fixture
def policy_dir(tmp_path: Path) -> Callable[..., Path]:
    """policy_dir(name, **write_policy kwargs) -> a synthetic models/<name>/ directory."""
    return lambda name="model", **kwargs: write_policy(tmp_path / name, **kwargs)
