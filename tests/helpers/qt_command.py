"""Run the ``qt`` command line as users do, in a subprocess of the test (bounded in time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from helpers.processes import REPO_ROOT


def run_qt(*args: str | Path, timeout: float = 300, env: dict[str, str] | None = None,
           cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """``qt ARGS...`` (via ``python -m qt_common.cli``); the finished process with its output."""
    return subprocess.run([sys.executable, "-m", "qt_common.cli", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=cwd)
