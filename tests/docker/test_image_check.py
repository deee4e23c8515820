"""docker/check_image.py, the images' last build step, run against the development venv.

The venv is built from the same pins (plus the trainer's), so every check that does not need
the image's dpkg database or the exported model must pass here, and a wrong flavour must fail.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "docker" / "check_image.py"


def _check(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=120,
                          cwd=REPO, env=dict(os.environ))


def test_development_venv_passes_every_environment_check() -> None:
    result = _check("--flavour", "cpu", "--skip", "ros-apt", "--skip", "model")
    assert result.returncode == 0, result.stdout + result.stderr
    for name in ("pins", "ort", "numpy", "imports", "messages", "workspace", "render"):
        assert f"ok    {name}" in result.stdout, result.stdout
    assert "onnxruntime==" in result.stdout and "MUJOCO_GL=" in result.stdout


def test_cpu_onnxruntime_fails_the_cuda_image_checks() -> None:
    result = _check("--flavour", "cuda", "--only", "pins", "--only", "ort")
    assert result.returncode == 1
    assert "FAIL  pins      onnxruntime-gpu: want" in result.stdout
    assert "FAIL  ort       expected only onnxruntime-gpu, found ['onnxruntime==" in result.stdout


def test_missing_model_and_unknown_check_are_reported(tmp_path: Path) -> None:
    result = _check("--only", "model", "--models", str(tmp_path))
    assert result.returncode == 1 and "missing ['policy.onnx', 'policy.json']" in result.stdout
    result = _check("--only", "provider", "--models", str(tmp_path))
    assert result.returncode == 2 and "unknown check(s) ['provider']" in result.stderr
    result = _check("--only", "provider", "--provider", "CPUExecutionProvider", "--models", str(tmp_path))
    assert result.returncode == 1 and "policy.onnx missing" in result.stdout
