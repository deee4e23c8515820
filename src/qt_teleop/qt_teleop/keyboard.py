"""Keyboard teleop logic and raw terminal handling (no ROS; the node in keyboard_teleop.py).

Keys (directions in base_link: x away from the robot base, y to the robot's left, z up):

    w / s   +x / -x          a / d   +y / -y          r / f   up / down
    q / e   yaw left / right                          space   toggle gripper open/closed
    n       start an episode
    y       end: success     u   end: failure          x      end: discard
    h       help             Ctrl-C or Ctrl-D: quit

A motion key moves its axis at ``speed`` (fraction of the action spec's maximum per step) for
``hold_s`` after the press; holding a key down relies on the terminal's auto-repeat, so motion
stops shortly after the key is released. The gripper state is sent on every control tick
(+1 open, -1 closed), like a device that reports its trigger position.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import tty
from collections.abc import Iterator

import numpy as np

AXES = ("dx", "dy", "dz", "dyaw")
MOTION_KEYS: dict[str, tuple[int, float]] = {
    "w": (0, 1.0), "s": (0, -1.0),
    "a": (1, 1.0), "d": (1, -1.0),
    "r": (2, 1.0), "f": (2, -1.0),
    "q": (3, 1.0), "e": (3, -1.0),
}
EPISODE_KEYS = {"n": "start", "y": "success", "u": "failure", "x": "discard"}
QUIT_KEYS = {"\x03", "\x04"}
HELP = (
    "keyboard teleop: w/s +x/-x  a/d +y/-y  r/f up/down  q/e yaw  space gripper toggle\n"
    "                 n start episode  y success  u failure  x discard  h help  Ctrl-C quit"
)


class KeyboardTeleop:
    """Turns key presses into a normalised action and episode requests."""

    def __init__(self, speed: float = 0.5, hold_s: float = 0.3):
        if not 0.0 < speed <= 1.0:
            raise ValueError(f"speed: expected a fraction in (0, 1], got {speed}")
        if not hold_s > 0.0:
            raise ValueError(f"hold_s: expected > 0 seconds, got {hold_s}")
        self.speed, self.hold_s = speed, hold_s
        self._pressed: dict[int, tuple[float, float]] = {}  # axis -> (direction, time of press)
        self.gripper_open = True

    def key(self, char: str, now: float) -> str | None:
        """Handle one key; returns "start"/"success"/"failure"/"discard"/"help"/"quit" or None."""
        if char in MOTION_KEYS:
            axis, direction = MOTION_KEYS[char]
            self._pressed[axis] = (direction, now)
            return None
        if char == " ":
            self.gripper_open = not self.gripper_open
            return None
        if char in EPISODE_KEYS:
            self._pressed.clear()
            if char == "n":
                self.gripper_open = True  # every episode starts with the gripper open
            return EPISODE_KEYS[char]
        if char in QUIT_KEYS:
            return "quit"
        if char == "h":
            return "help"
        return None

    def action(self, now: float) -> np.ndarray:
        """Normalised [-1, 1] action (dx dy dz dyaw gripper) at time ``now``."""
        action = np.zeros(5)
        for axis, (direction, pressed_at) in self._pressed.items():
            if now - pressed_at <= self.hold_s:
                action[axis] = direction * self.speed
        action[4] = 1.0 if self.gripper_open else -1.0
        return action


class NotATerminal(RuntimeError):
    """stdin is a pipe or file: raw key input needs a real terminal."""


@contextlib.contextmanager
def raw_terminal(stream=None) -> Iterator[int]:
    """Put a terminal in raw input mode (keys arrive one by one, no echo, Ctrl-C is a key) and
    always restore it. Output post-processing stays on so log lines still start at column 0."""
    stream = stream or sys.stdin
    fd = stream.fileno()
    if not os.isatty(fd):
        raise NotATerminal("stdin is not a terminal; run it in a real terminal (not piped)")
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[1] |= termios.OPOST | termios.ONLCR
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        yield fd
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def read_keys(fd: int) -> str:
    """All characters waiting on ``fd`` (never blocks); an empty string when none."""
    chars = []
    while select.select([fd], [], [], 0)[0]:
        data = os.read(fd, 64)
        if not data:
            chars.append("\x04")  # end of input behaves like Ctrl-D
            break
        chars.append(data.decode(errors="ignore"))
    return "".join(chars)
