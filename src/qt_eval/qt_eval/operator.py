"""The operator's side of an on-robot evaluation: keys in a real terminal and/or service calls.

Why two inputs: an operator at the robot uses the keyboard of the terminal running ``qt eval
--robot``; one who stands at the arm presses a remote button, which anything can turn into a
``std_srvs/Trigger`` call (``ros2 service call /robot_eval/success std_srvs/srv/Trigger``).
Both feed the same queue of requests, so the session logic does not care where they come from.

Keys (as the keyboard teleop's episode keys): ``n`` start the trial, ``y`` success, ``u``
failure, ``x`` discard (the trial is repeated), ``q`` / Ctrl-C / Ctrl-D end the session (it
resumes with ``--resume``), ``h`` help.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections import deque
from collections.abc import Iterator
from typing import Any

REQUESTS = ("start", "success", "failure", "discard", "quit")
KEYS = {"n": "start", "y": "success", "u": "failure", "x": "discard", "q": "quit", "\x03": "quit", "\x04": "quit"}
HELP = "keys: n start trial   y success   u failure   x discard (repeat)   q quit (resume later)   h help"


class Operator:
    """Collects operator requests from the terminal (when it is one) and from Trigger services."""

    def __init__(self, node: Any, use_keys: bool, service_prefix: str = "~"):
        from std_srvs.srv import Trigger

        self.queue: deque[str] = deque()
        self.help_asked = False
        self._fd: int | None = None
        self._terminal: contextlib.ExitStack | None = None
        self.use_keys = use_keys
        prefix = service_prefix.rstrip("/")
        self.services = [node.create_service(Trigger, f"{prefix}/{name}", self._handler(name)) for name in REQUESTS]

    def _handler(self, name: str) -> Any:
        def handle(request: Any, response: Any) -> Any:
            self.queue.append(name)
            response.success, response.message = True, f"{name} queued"
            return response

        return handle

    @contextlib.contextmanager
    def keys(self) -> Iterator[None]:
        """Raw key input for the session (restores the terminal on exit); nothing without keys."""
        if not self.use_keys:
            yield
            return
        from qt_teleop.keyboard import raw_terminal

        with raw_terminal() as fd:
            self._fd = fd
            try:
                yield
            finally:
                self._fd = None

    def say(self, text: str) -> None:
        """One line to the operator (raw mode needs \\r\\n)."""
        end = "\r\n" if self._fd is not None else "\n"
        sys.stdout.write(text.replace("\n", end) + end)
        sys.stdout.flush()

    def poll(self) -> list[str]:
        """Requests since the last call, oldest first (keys read without blocking)."""
        if self._fd is not None:
            from qt_teleop.keyboard import read_keys

            for char in read_keys(self._fd):
                if char == "h":
                    self.say(HELP)
                elif char in KEYS:
                    self.queue.append(KEYS[char])
        out = list(self.queue)
        self.queue.clear()
        return out


def stdin_is_terminal() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError):
        return False
