"""The CUDA image's node parameters are run.yaml with only the policy node's provider list changed."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
RUN_YAML = REPO / "src" / "qt_policy_node" / "config" / "run.yaml"


def _derive(src: Path, dst: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO / "docker" / "cuda_params.py"), str(src), str(dst)],
                          capture_output=True, text=True, timeout=30)


def test_only_the_provider_list_differs(tmp_path: Path) -> None:
    out = tmp_path / "run-cuda.yaml"
    result = _derive(RUN_YAML, out)
    assert result.returncode == 0, result.stderr
    original, derived = yaml.safe_load(RUN_YAML.read_text()), yaml.safe_load(out.read_text())
    section = next(key for key in original if key.endswith("policy_node"))
    assert derived[section]["ros__parameters"].pop("execution_providers") == ["CUDAExecutionProvider"]
    assert original[section]["ros__parameters"].pop("execution_providers") != ["CUDAExecutionProvider"]
    assert derived == original


def test_a_renamed_parameter_stops_the_build(tmp_path: Path) -> None:
    src = tmp_path / "run.yaml"
    src.write_text("/**/policy_node:\n  ros__parameters:\n    providers: [CPUExecutionProvider]\n")
    result = _derive(src, tmp_path / "out.yaml")
    assert result.returncode == 1
    assert "has no 'execution_providers'" in result.stderr
    assert not (tmp_path / "out.yaml").exists()


def test_cuda_image_uses_the_derived_file() -> None:
    text = (REPO / "docker" / "Dockerfile.cuda").read_text()
    derive = "cuda_params.py \\\n      /opt/qt/ws/share/qt_policy_node/config/run.yaml /opt/qt/params/run-cuda.yaml"
    assert derive in text
    assert '"params_file:=/opt/qt/params/run-cuda.yaml"]' in text
