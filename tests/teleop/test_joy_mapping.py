"""Joy mapping and device state without ROS: every field checked by name, deadman, deadzone, speed
scaling, gripper modes, button presses counted once; the shipped mappings load."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from qt_teleop.joy_mapping import JoyMapping, JoyTeleop, MappingError
from qt_teleop.joy_teleop import SHIPPED_MAPPINGS, mapping_path

BASE = {
    "name": "test",
    "deadman_buttons": [4],
    "deadzone": 0.2,
    "speed": 0.5,
    "turbo_buttons": [5],
    "turbo_speed": 1.0,
    "speed_up_buttons": [8],
    "speed_down_buttons": [9],
    "speed_step": 2.0,
    "axes": {"dx": {"axis": 1}, "dy": {"axis": 0, "scale": -1.0}},
    "gripper": {"toggle_buttons": [0]},
    "episode_buttons": {"start": [7], "success": [3], "failure": [2], "discard": [1]},
}
AXES, BUTTONS = 8, 11


def state(**buttons: int) -> tuple[list[float], list[int]]:
    values = [0] * BUTTONS
    for name, value in buttons.items():
        values[int(name[1:])] = value
    return [0.0] * AXES, values


@pytest.mark.parametrize("name", SHIPPED_MAPPINGS)
def test_shipped_mappings_load(name):
    mapping = JoyMapping.load(mapping_path(name))
    assert mapping.name == name and set(mapping.axes) == {"dx", "dy", "dz", "dyaw"}
    assert set(mapping.episode_buttons) == {"start", "success", "failure", "discard"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda d: d.update(spead=0.3), "unknown field(s) ['spead']"),
        (lambda d: d["axes"].update(dq={"axis": 2}), "axes.dq: expected one of"),
        (lambda d: d["axes"]["dx"].update(axis=-1), "axes.dx.axis: expected an index"),
        (lambda d: d["axes"]["dx"].update(scale="fast"), "axes.dx.scale: expected a number"),
        (lambda d: d.update(speed=1.5), "speed: expected a number in [0.05, 1]"),
        (lambda d: d.update(deadzone=1.0), "deadzone: expected a number"),
        (lambda d: d.update(deadman_buttons="LB"), "deadman_buttons: expected a list of button indices"),
        (lambda d: d["gripper"].update(close_buttons=[1]), "toggle_buttons and close_buttons exclude each other"),
        (lambda d: d["episode_buttons"].update(abort=[6]), "episode_buttons: expected keys among"),
        (lambda d: d.pop("axes"), "axes: expected a dictionary"),
    ],
)
def test_a_bad_mapping_is_refused_naming_the_field(change, field):
    data = copy.deepcopy(BASE)
    change(data)
    with pytest.raises(MappingError) as info:
        JoyMapping.from_dict(data, "pad.yaml")
    assert field in str(info.value) and str(info.value).startswith("pad.yaml")


def test_deadman_deadzone_scale_and_speed():
    teleop = JoyTeleop(JoyMapping.from_dict(BASE))
    axes, buttons = state()
    axes[1], axes[0] = 1.0, 0.6
    teleop.update(axes, buttons)
    assert teleop.action()[:4].tolist() == [0.0] * 4  # no deadman
    buttons[4] = 1
    teleop.update(axes, buttons)
    action = teleop.action()
    assert action[0] == pytest.approx(0.5)  # full deflection x speed 0.5
    assert action[1] == pytest.approx(-(0.6 - 0.2) / 0.8 * 0.5)  # scale -1, deadzone rescaled
    axes[0] = 0.15  # inside the deadzone
    teleop.update(axes, buttons)
    assert teleop.action()[1] == 0.0
    buttons[5] = 1  # turbo
    teleop.update(axes, buttons)
    assert teleop.action()[0] == pytest.approx(1.0)
    buttons[5] = 0
    buttons[9] = 1  # speed down, held over two messages: one step
    teleop.update(axes, buttons)
    teleop.update(axes, buttons)
    assert teleop.speed == pytest.approx(0.25) and teleop.action()[0] == pytest.approx(0.25)
    buttons[9] = 0
    teleop.update(axes, buttons)
    buttons[8] = 1
    teleop.update(axes, buttons)
    assert teleop.speed == pytest.approx(0.5)
    teleop.release()  # the device went quiet: no motion
    assert teleop.action()[:4].tolist() == [0.0] * 4


def test_buttons_fire_once_per_press_and_start_opens_the_gripper():
    teleop = JoyTeleop(JoyMapping.from_dict(BASE))
    assert teleop.action()[4] == 1.0
    assert teleop.update(*state(b0=1)) == []
    assert teleop.action()[4] == -1.0
    assert teleop.update(*state(b0=1)) == []  # still held: no new toggle
    assert teleop.action()[4] == -1.0
    teleop.update(*state())
    assert teleop.update(*state(b7=1)) == ["start"]
    assert teleop.action()[4] == 1.0
    assert teleop.update(*state(b7=1)) == []
    assert teleop.update(*state(b2=1, b3=1)) == ["success", "failure"]
    assert teleop.update(*state(b1=1, b2=1, b3=1)) == ["discard"]


def test_close_while_held_gripper_and_device_size_checks():
    data = copy.deepcopy(BASE)
    data["gripper"] = {"close_buttons": [0]}
    teleop = JoyTeleop(JoyMapping.from_dict(data))
    teleop.update(*state(b0=1))
    assert teleop.action()[4] == -1.0
    teleop.update(*state())
    assert teleop.action()[4] == 1.0
    with pytest.raises(MappingError, match="uses axis 1 but the Joy message has 1 axes"):
        teleop.update([0.0], [0] * BUTTONS)
    with pytest.raises(MappingError, match=r"uses button 4 .deadman/gripper. but the Joy message has 2 buttons"):
        teleop.update([0.0] * AXES, [0, 0])
    teleop.update([0.0] * AXES, [0] * 6)  # episode/speed buttons a small device lacks: a warning only
    assert teleop.warnings and "[7, 8, 9]" in teleop.warnings[0]
    assert np.all(teleop.action()[:4] == 0.0)
