"""The teleop package's parameter YAML matches each node's parameters (installed too); bad setups
are refused with a clear message and no traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest
from helpers.package_config import code_defaults, shipped_parameters


@pytest.mark.parametrize(
    ("config", "module", "node"),
    [
        ("keyboard_teleop.yaml", "qt_teleop.keyboard_teleop", "keyboard_teleop"),
        ("joy_teleop.yaml", "qt_teleop.joy_teleop", "joy_teleop"),
    ],
)
def test_yaml_lists_every_parameter_with_the_code_default(config, module, node):
    assert shipped_parameters("qt_teleop", config, node) == code_defaults(module)


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("qt_teleop.keyboard_teleop", [], "keyboard_teleop: stdin is not a terminal"),
        ("qt_teleop.joy_teleop", ["-p", "episode_mode:=robot"], "joy_teleop: episode_mode: expected one of"),
    ],
)
def test_nodes_refuse_bad_setup_with_a_clear_message(module, args, message):
    result = subprocess.run([sys.executable, "-m", module, "--ros-args", *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
