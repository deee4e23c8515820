"""Node processes started by a pipeline verb (qt collect, qt eval): started together, watched,
stopped together, never left behind.

Why processes and not threads: collection and evaluation must exercise the same thing a robot
runs, i.e. separate ROS processes talking over DDS. Why this care:

* each child runs in a **process group of its own**, so stopping it (SIGINT, then SIGTERM, then
  SIGKILL after a grace period) reaches exactly that child and whatever it started, and never
  any other process on the machine; a terminal's Ctrl-C reaches only the parent, which then
  stops the children in order (the recorder gets its SIGINT and finalises its bag);
* each child is started through ``python -m qt_eval.children MODULE ARGS...``, which asks Linux
  to send it SIGTERM when the parent dies (``PR_SET_PDEATHSIG``) before running MODULE as
  ``__main__``: even a parent killed with SIGKILL leaves no node running (Linux ties this to
  the parent *thread* that started the child: start children from a thread that outlives them,
  as the verbs do from the main thread);
* every line a child prints is kept (the last ``keep_lines``) and optionally written to a log
  file, so a child that dies is reported with its exit code and its last words
  (:class:`ChildDied`), not as a hang.

No rclpy here: the parent may or may not be a ROS process itself.
"""

from __future__ import annotations

import collections
import ctypes
import os
import queue
import re
import runpy
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from qt_common.processes import stop_process_group

_PR_SET_PDEATHSIG = 1


class ChildDied(RuntimeError):
    """A child process exited while it was still needed; the message names it and shows its output."""


class Child:
    """One node process in its own process group; a reader thread collects its output lines."""

    def __init__(self, name: str, module: str, args: Sequence[str] = (), *, env: dict[str, str] | None = None,
                 log_dir: Path | None = None, keep_lines: int = 400):
        self.name = name
        self.module = module
        child_env = dict(os.environ if env is None else env)
        child_env["PYTHONUNBUFFERED"] = "1"
        # Never let a child discover beyond this machine by accident (env.sh sets this too).
        child_env.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        self.args = [sys.executable, "-m", __name__, str(os.getpid()), module, *args]
        self.lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self._eof = False  # the output ended (the process exited)
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._log: TextIO | None = None
        if log_dir is not None:
            log_dir.mkdir(parents=True, exist_ok=True)
            self._log = (log_dir / f"{name}.log").open("a", encoding="utf-8")
        self.popen = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=child_env,
            text=True, errors="replace", start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"{name}-output", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            line = line.rstrip("\n")
            if self._log is not None:
                self._log.write(line + "\n")
                self._log.flush()
            self._queue.put(line)
        self._queue.put(None)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def new_lines(self) -> list[str]:
        """Lines printed since the last call (also kept in ``lines``)."""
        out: list[str] = []
        while True:
            try:
                line = self._queue.get_nowait()
            except queue.Empty:
                return out
            if line is None:
                self._eof = True
            else:
                self.lines.append(line)
                out.append(line)

    def wait_for(self, pattern: str, timeout: float, what: str = "") -> re.Match[str]:
        """Block until an output line matches ``pattern`` (lines already seen count too)."""
        regex = re.compile(pattern)
        for line in self.lines:
            if match := regex.search(line):
                return match
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"{self.name}: {what or repr(pattern)} not seen within {timeout:g} s\n"
                                   f"{self.tail()}")
            try:
                line = None if self._eof else self._queue.get(timeout=min(remaining, 0.2))
            except queue.Empty:
                continue
            if line is None:
                self._eof = True
                code = self.popen.wait()
                raise ChildDied(f"{self.name} exited with code {code} before {what or repr(pattern)}\n{self.tail()}")
            self.lines.append(line)
            if match := regex.search(line):
                return match

    def tail(self, count: int = 25) -> str:
        self.new_lines()
        last = list(self.lines)[-count:]
        return "\n".join(f"  [{self.name}] {line}" for line in last) or f"  [{self.name}] (no output)"

    def stop(self, grace_s: float = 10.0) -> int | None:
        """SIGINT, then SIGTERM, then SIGKILL to this child's own process group; its exit code."""
        code = stop_process_group(self.popen, grace_s)
        self._reader.join(timeout=5.0)
        self.new_lines()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code


class ChildGroup:
    """The children of one verb run; a context manager that always stops them (in reverse order).

    While the group is open, SIGTERM to the parent raises KeyboardInterrupt in the main thread,
    so ``qt collect`` stopped by a supervisor cleans up exactly like one stopped by Ctrl-C.
    """

    def __init__(self, log_dir: Path | None = None):
        self.log_dir = log_dir
        self.children: list[Child] = []
        self._previous_sigterm: object = None

    def __enter__(self) -> ChildGroup:
        if threading.current_thread() is threading.main_thread():
            self._previous_sigterm = signal.signal(signal.SIGTERM, _raise_interrupt)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
        if self._previous_sigterm is not None:
            signal.signal(signal.SIGTERM, self._previous_sigterm)  # type: ignore[arg-type]

    def start(self, name: str, module: str, *args: str) -> Child:
        child = Child(name, module, args, log_dir=self.log_dir)
        self.children.append(child)
        return child

    def check(self) -> None:
        """Raise ChildDied if any child has exited (they are all meant to run until stopped)."""
        for child in self.children:
            if not child.alive():
                child.new_lines()
                raise ChildDied(f"{child.name} (pid {child.pid}) exited with code {child.popen.returncode}\n"
                                f"{child.tail()}")

    def stop_all(self, grace_s: float = 10.0) -> dict[str, int | None]:
        codes = {}
        for child in reversed(self.children):
            codes[child.name] = child.stop(grace_s)
        return codes


def _raise_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _die_with_parent(parent_pid: int) -> None:
    """Linux: SIGTERM this process when the parent dies (the nodes shut down cleanly on it)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        sys.exit(1)


def main(argv: list[str]) -> None:
    """``python -m qt_eval.children PARENT_PID MODULE ARGS...``: run MODULE as __main__."""
    if len(argv) < 2:
        sys.exit("usage: python -m qt_eval.children PARENT_PID MODULE [ARGS...]")
    _die_with_parent(int(argv[0]))
    sys.argv = [argv[1], *argv[2:]]
    runpy.run_module(argv[1], run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main(sys.argv[1:])
