"""Fixtures of the docker/ tests: docker/pins.py loaded as a module, the parsed Dockerfiles."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest
from helpers.dockerfiles import Instruction, parse_dockerfile

DOCKER = Path(__file__).resolve().parents[2] / "docker"


def _load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def pins() -> ModuleType:
    """docker/pins.py, the one place the images' package lists come from."""
    return _load("qt_docker_pins", DOCKER / "pins.py")


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, list[Instruction]]:
    """flavour (cpu, cuda) -> parsed instructions of docker/Dockerfile, docker/Dockerfile.cuda."""
    return {"cpu": parse_dockerfile(DOCKER / "Dockerfile"), "cuda": parse_dockerfile(DOCKER / "Dockerfile.cuda")}
