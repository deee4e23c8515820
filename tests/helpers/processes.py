"""Start real child processes for tests and always end exactly the ones we started.

Each child runs in its own process group so that SIGINT/SIGTERM reach it (and anything it
started) without touching any other process on the machine; nothing is ever killed by name.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from qt_common.processes import stop_process_group

TESTS_DIR = Path(__file__).resolve().parents[1]
REPO_ROOT = TESTS_DIR.parent


class ChildProcess:
    """A child process whose output lines are collected by a reader thread."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None):
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(TESTS_DIR), child_env.get("PYTHONPATH", "")) if p
        )
        child_env["PYTHONUNBUFFERED"] = "1"
        self.args = list(args)
        self.popen = subprocess.Popen(
            self.args,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=child_env,
            cwd=str(cwd or REPO_ROOT),
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self._queue.put(line.rstrip("\n"))
        self._queue.put(None)

    def wait_for_line(self, pattern: str, timeout: float) -> re.Match[str]:
        """Block until an output line matches ``pattern``; fail with the output on timeout."""
        regex = re.compile(pattern)
        for line in self.lines:
            match = regex.search(line)
            if match:
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no line matching {pattern!r} within {timeout}s; output:\n{self.output()}")
            try:
                line = self._queue.get(timeout=remaining)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(
                    f"process exited ({self.popen.wait()}) before printing {pattern!r}; output:\n{self.output()}"
                )
            self.lines.append(line)
            match = regex.search(line)
            if match:
                return match

    def drain(self) -> None:
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return
            if line is not None:
                self.lines.append(line)

    def output(self) -> str:
        self.drain()
        return "\n".join(self.lines)

    def wait(self, timeout: float) -> int:
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=5)
        self.drain()
        return code

    def send_signal(self, sig: int) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT, then SIGTERM, then SIGKILL to this child's own process group."""
        stop_process_group(self.popen, timeout)
        return self.wait(timeout=timeout)


def python_child(module: str, *args: str, env: dict[str, str] | None = None) -> ChildProcess:
    """Run ``python -m module args...`` with the test helpers importable."""
    return ChildProcess([sys.executable, "-m", module, *args], env=env)


def ros_args(**params: object) -> list[str]:
    """``--ros-args -p name:=value ...`` for a node started with :func:`python_child`."""
    args = ["--ros-args"]
    for name, value in params.items():
        args += ["-p", f"{name}:={value}"]
    return args
