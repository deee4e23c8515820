"""Checks of a package's shipped parameter YAML, shared by the per-package config tests."""

from __future__ import annotations

import importlib
from pathlib import Path

import yaml

SRC = Path(__file__).resolve().parents[2] / "src"


def shipped_parameters(package: str, config: str, node: str) -> dict:
    """The ``ros__parameters`` of ``node`` in ``src/<package>/config/<config>``, after checking
    that the file is also installed to share/<package>/config (a rebuild is what puts it there)."""
    from ament_index_python.packages import get_package_share_directory

    installed = Path(get_package_share_directory(package)) / "config" / config
    assert installed.is_file(), f"{config} is not installed to share/{package}/config (rebuild with scripts/setup.sh)"
    return yaml.safe_load((SRC / package / "config" / config).read_text())[f"/**/{node}"]["ros__parameters"]


def code_defaults(module: str) -> dict:
    """A node module's ``PARAMETERS`` (its declared defaults)."""
    return importlib.import_module(module).PARAMETERS
