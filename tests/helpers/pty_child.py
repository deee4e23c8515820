"""Run a child process on a pseudo-terminal, so programs that need a real terminal (raw key
input) can be tested: write keys to it and read what it prints.

Like processes.ChildProcess, the child gets its own process group and only that group is ever
signalled.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from qt_common.processes import stop_process_group

from helpers.processes import REPO_ROOT, TESTS_DIR


class PtyChild:
    """A child whose stdin/stdout/stderr are the slave side of a new pseudo-terminal."""

    def __init__(self, args: Sequence[str], env: dict[str, str] | None = None):
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS_DIR), child_env.get("PYTHONPATH", "")) if p)
        child_env["PYTHONUNBUFFERED"] = "1"
        self.master, slave = pty.openpty()
        self.popen = subprocess.Popen(
            list(args), stdin=slave, stdout=slave, stderr=slave, env=child_env, cwd=str(REPO_ROOT),
            start_new_session=True, close_fds=True,
        )
        os.close(slave)
        self._text = ""
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while True:
            try:
                data = os.read(self.master, 4096)
            except OSError:  # slave closed: the child exited
                return
            if not data:
                return
            with self._lock:
                self._text += data.decode(errors="replace")

    def output(self) -> str:
        with self._lock:
            return self._text

    def write(self, keys: str) -> None:
        os.write(self.master, keys.encode())

    def wait_for(self, pattern: str, timeout: float, start: int = 0) -> re.Match[str]:
        """First match of ``pattern`` in the output after character ``start``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            match = regex.search(self.output(), start)
            if match:
                return match
            if self.popen.poll() is not None:
                time.sleep(0.2)  # let the reader drain the last output
                match = regex.search(self.output(), start)
                if match:
                    return match
                raise RuntimeError(f"process exited ({self.popen.returncode}) before {pattern!r}:\n{self.output()}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {pattern!r} within {timeout}s; output:\n{self.output()}")
            time.sleep(0.02)

    def wait(self, timeout: float) -> int:
        return self.popen.wait(timeout=timeout)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGINT, then SIGTERM, then SIGKILL to this child's own process group."""
        stop_process_group(self.popen, timeout)
        code = self.popen.wait(timeout=timeout)
        self._reader.join(timeout=2)
        os.close(self.master)
        return code


def python_pty_child(module: str, *args: str, env: dict[str, str] | None = None) -> PtyChild:
    """Run ``python -m module args...`` on a pseudo-terminal."""
    return PtyChild([sys.executable, "-m", module, *args], env=env)
