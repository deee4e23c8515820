"""Short version of bench/logger_soak.py: 640x480 rgb8 at 30 Hz + actions at 30 Hz, zero drops."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers.processes import REPO_ROOT

SECONDS = 10.0


def _bench():
    spec = importlib.util.spec_from_file_location("logger_soak", REPO_ROOT / "bench" / "logger_soak.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _check(result: dict) -> None:
    camera, action = "/camera/image_raw", "/qt/action"
    assert result["published"][camera] == pytest.approx(SECONDS * 30, abs=1)
    assert result["published"][action] == pytest.approx(SECONDS * 30, abs=1)
    assert result["recorded"] == result["published"], result
    assert result["missing_frame_indices"] == [] and result["duplicate_frames"] == 0
    assert result["recorder_exit"] == 0 and result["ok"]


def test_short_soak_records_every_frame_and_action(tmp_path: Path, topic_prefix: str) -> None:
    bench = _bench()
    result = bench.run_soak(SECONDS, tmp_path, prefix=topic_prefix)
    print(result)  # CPU and MB/s for the log; speed is not asserted in unit tests
    _check(result)


@pytest.mark.slow
def test_soak_best_effort_subscriber(tmp_path: Path, topic_prefix: str) -> None:
    """The other subscriber QoS CONTRACTS allows: best effort also loses nothing with the env's profile."""
    _check(_bench().run_soak(SECONDS, tmp_path, recorder_qos="best_effort", prefix=topic_prefix))
