"""Gamepad / 3D-mouse input -> normalised arm action and episode requests (no ROS; node in joy_teleop.py).

A mapping is a YAML file (shipped: config/joy_gamepad.yaml, config/joy_spacemouse.yaml), read
into :class:`JoyMapping` with every field checked and any error naming the field. The state
machine :class:`JoyTeleop` takes the axes and buttons of each ``sensor_msgs/Joy`` message:

* **deadman**: motion only while every ``deadman_buttons`` button is held (empty: always live,
  for self-centring devices such as a 3D mouse); released, the arm gets zero motion at once;
* **motion**: each action dimension (``dx dy dz dyaw``) reads one axis times ``scale`` (the sign
  flips an axis), with ``deadzone`` applied and rescaled so motion starts at 0, times the speed;
* **speed scaling**: ``speed`` (fraction of the action spec's maximum at full deflection), raised
  to ``turbo_speed`` while a ``turbo_buttons`` button is held, and stepped by ``speed_step``
  with ``speed_up_buttons`` / ``speed_down_buttons`` (within [0.05, 1]);
* **gripper**: ``toggle_buttons`` flip open/closed on each press, or ``close_buttons`` close it
  while held (open otherwise); it starts open and every episode start opens it;
* **episodes**: one press of a ``start`` / ``success`` / ``failure`` / ``discard`` button gives
  that request once (on the press, not while held).

Buttons are events on their rising edge only, so a button held across messages fires once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.yaml_file import read_yaml

MOTION_DIMS = ("dx", "dy", "dz", "dyaw")
EPISODE_REQUESTS = ("start", "success", "failure", "discard")
MIN_SPEED = 0.05


class MappingError(ValueError):
    """A mapping file or a Joy message that does not fit it; the message names the field."""


@dataclass(frozen=True)
class AxisBinding:
    axis: int
    scale: float = 1.0


@dataclass(frozen=True)
class JoyMapping:
    name: str
    axes: dict[str, AxisBinding]
    deadman_buttons: tuple[int, ...] = ()
    deadzone: float = 0.1
    speed: float = 0.5
    turbo_buttons: tuple[int, ...] = ()
    turbo_speed: float = 1.0
    speed_up_buttons: tuple[int, ...] = ()
    speed_down_buttons: tuple[int, ...] = ()
    speed_step: float = 1.25
    gripper_toggle_buttons: tuple[int, ...] = ()
    gripper_close_buttons: tuple[int, ...] = ()
    episode_buttons: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def max_axis(self) -> int:
        return max((b.axis for b in self.axes.values()), default=-1)

    def essential_buttons(self) -> tuple[int, ...]:
        """Buttons without which the device cannot drive the arm safely (deadman, gripper)."""
        return (*self.deadman_buttons, *self.gripper_toggle_buttons, *self.gripper_close_buttons)

    def optional_buttons(self) -> tuple[int, ...]:
        """Buttons a smaller device may lack (speed, episodes: label from another device then)."""
        return (*self.turbo_buttons, *self.speed_up_buttons, *self.speed_down_buttons,
                *(b for group in self.episode_buttons.values() for b in group))

    @classmethod
    def from_dict(cls, data: Any, source: str = "mapping") -> JoyMapping:
        if not isinstance(data, dict):
            raise MappingError(f"{source}: expected a mapping (YAML dictionary) at the top, got {type(data).__name__}")
        known = {"name", "axes", "deadman_buttons", "deadzone", "speed", "turbo_buttons", "turbo_speed",
                 "speed_up_buttons", "speed_down_buttons", "speed_step", "gripper", "episode_buttons"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise MappingError(f"{source}: unknown field(s) {unknown}; known: {sorted(known)}")
        axes_data = data.get("axes")
        if not isinstance(axes_data, dict) or not axes_data:
            raise MappingError(f"{source}: axes: expected a dictionary of {MOTION_DIMS} -> {{axis, scale}}")
        axes = {}
        for dim, binding in axes_data.items():
            where = f"{source}: axes.{dim}"
            if dim not in MOTION_DIMS:
                raise MappingError(f"{where}: expected one of {MOTION_DIMS}")
            if not isinstance(binding, dict) or set(binding) - {"axis", "scale"} or "axis" not in binding:
                raise MappingError(f"{where}: expected {{axis: INDEX, scale: FACTOR}}, got {binding!r}")
            axes[dim] = AxisBinding(_index(binding["axis"], f"{where}.axis"),
                                    _number(binding.get("scale", 1.0), f"{where}.scale", -10.0, 10.0))
        gripper = data.get("gripper") or {}
        if not isinstance(gripper, dict) or set(gripper) - {"toggle_buttons", "close_buttons"}:
            raise MappingError(f"{source}: gripper: expected {{toggle_buttons: [...]}} or {{close_buttons: [...]}}, "
                               f"got {gripper!r}")
        toggle = _buttons(gripper.get("toggle_buttons", []), f"{source}: gripper.toggle_buttons")
        close = _buttons(gripper.get("close_buttons", []), f"{source}: gripper.close_buttons")
        if toggle and close:
            raise MappingError(f"{source}: gripper: toggle_buttons and close_buttons exclude each other")
        episodes_data = data.get("episode_buttons") or {}
        if not isinstance(episodes_data, dict) or set(episodes_data) - set(EPISODE_REQUESTS):
            raise MappingError(f"{source}: episode_buttons: expected keys among {EPISODE_REQUESTS}, "
                               f"got {episodes_data!r}")
        episodes = {k: _buttons(v, f"{source}: episode_buttons.{k}") for k, v in episodes_data.items()}
        speed = _number(data.get("speed", 0.5), f"{source}: speed", MIN_SPEED, 1.0)
        return cls(
            name=str(data.get("name", source)), axes=axes,
            deadman_buttons=_buttons(data.get("deadman_buttons", []), f"{source}: deadman_buttons"),
            deadzone=_number(data.get("deadzone", 0.1), f"{source}: deadzone", 0.0, 0.9), speed=speed,
            turbo_buttons=_buttons(data.get("turbo_buttons", []), f"{source}: turbo_buttons"),
            turbo_speed=_number(data.get("turbo_speed", 1.0), f"{source}: turbo_speed", MIN_SPEED, 1.0),
            speed_up_buttons=_buttons(data.get("speed_up_buttons", []), f"{source}: speed_up_buttons"),
            speed_down_buttons=_buttons(data.get("speed_down_buttons", []), f"{source}: speed_down_buttons"),
            speed_step=_number(data.get("speed_step", 1.25), f"{source}: speed_step", 1.01, 4.0),
            gripper_toggle_buttons=toggle, gripper_close_buttons=close, episode_buttons=episodes)

    @classmethod
    def load(cls, path: Path) -> JoyMapping:
        path = Path(path)
        return cls.from_dict(read_yaml(path, "mapping", MappingError), str(path))


def _index(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 64:
        raise MappingError(f"{where}: expected an index 0..63, got {value!r}")
    return value


def _number(value: Any, where: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= float(value) <= high:
        raise MappingError(f"{where}: expected a number in [{low:g}, {high:g}], got {value!r}")
    return float(value)


def _buttons(value: Any, where: str) -> tuple[int, ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, list):
        raise MappingError(f"{where}: expected a list of button indices, got {value!r}")
    return tuple(_index(v, where) for v in value)


class JoyTeleop:
    """The device state between Joy messages: gripper, speed, previous buttons (for press edges)."""

    def __init__(self, mapping: JoyMapping):
        self.mapping = mapping
        self.speed = mapping.speed
        self.gripper_open = True
        self._previous: tuple[int, ...] = ()
        self._axes = np.zeros(0)
        self._buttons: tuple[int, ...] = ()
        self.sizes = (-1, -1)  # (axes, buttons) of the device, checked when they change
        self.warnings: list[str] = []  # from the newest size check

    def check_sizes(self, axes: int, buttons: int) -> list[str]:
        """Raise MappingError when the device lacks an axis or an essential button the mapping
        uses; the optional buttons it lacks come back as warnings (they can never be pressed)."""
        m = self.mapping
        if m.max_axis >= axes:
            raise MappingError(f"mapping {m.name}: uses axis {m.max_axis} but the Joy message has {axes} axes "
                               "(wrong mapping for this device?)")
        essential = max(m.essential_buttons(), default=-1)
        if essential >= buttons:
            raise MappingError(f"mapping {m.name}: uses button {essential} (deadman/gripper) but the Joy message "
                               f"has {buttons} buttons (wrong mapping for this device?)")
        missing = sorted({b for b in m.optional_buttons() if b >= buttons})
        return [f"mapping {m.name}: this device has {buttons} buttons; button(s) {missing} (speed/episode) "
                "can never be pressed"] if missing else []

    def update(self, axes: Sequence[float], buttons: Sequence[int]) -> list[str]:
        """Take one Joy message; the episode requests its button presses make, in EPISODE_REQUESTS order."""
        if (len(axes), len(buttons)) != self.sizes:
            self.sizes = (len(axes), len(buttons))
            self.warnings = self.check_sizes(*self.sizes)
        m = self.mapping
        now = tuple(int(b) for b in buttons)
        pressed = {i for i, b in enumerate(now) if b and (i >= len(self._previous) or not self._previous[i])}
        self._previous, self._buttons = now, now
        self._axes = np.asarray(axes, dtype=np.float64)
        if pressed & set(m.speed_up_buttons):
            self.speed = min(1.0, self.speed * m.speed_step)
        if pressed & set(m.speed_down_buttons):
            self.speed = max(MIN_SPEED, self.speed / m.speed_step)
        if pressed & set(m.gripper_toggle_buttons):
            self.gripper_open = not self.gripper_open
        requests = [r for r in EPISODE_REQUESTS if pressed & set(m.episode_buttons.get(r, ()))]
        if "start" in requests:
            self.gripper_open = True  # every episode starts with the gripper open
        return requests

    def deadman_held(self) -> bool:
        return all(self._held(b) for b in self.mapping.deadman_buttons)

    def _held(self, button: int) -> bool:
        return button < len(self._buttons) and bool(self._buttons[button])

    def action(self) -> np.ndarray:
        """Normalised [-1, 1] action (dx dy dz dyaw gripper) from the newest message."""
        m = self.mapping
        action = np.zeros(5)
        if self._axes.size and self.deadman_held():
            speed = m.turbo_speed if any(self._held(b) for b in m.turbo_buttons) else self.speed
            for i, dim in enumerate(MOTION_DIMS):
                binding = m.axes.get(dim)
                if binding is None:
                    continue
                value = float(np.clip(self._axes[binding.axis] * binding.scale, -1.0, 1.0))
                magnitude = max(0.0, (abs(value) - m.deadzone) / (1.0 - m.deadzone))
                action[i] = np.sign(value) * magnitude * speed
        if m.gripper_close_buttons:
            closed = any(self._held(b) for b in m.gripper_close_buttons)
            action[4] = -1.0 if closed else 1.0
        else:
            action[4] = 1.0 if self.gripper_open else -1.0
        return action

    def release(self) -> None:
        """The device went quiet: no motion until its next message. The buttons keep their last
        state (the gripper does not drop what it holds; a button still held fires no new press)."""
        self._axes = np.zeros(0)
