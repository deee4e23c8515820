"""Installed parameter YAML matches each node's parameters; the contact-sheet command works."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.package_config import code_defaults, shipped_parameters
from PIL import Image


@pytest.mark.parametrize(
    ("config", "module", "node"),
    [
        ("sim_driver.yaml", "qt_sim.driver_node", "sim_driver"),
        ("expert_teleop.yaml", "qt_sim.expert_teleop", "expert_teleop"),
    ],
)
def test_yaml_lists_every_parameter_with_the_code_default(config, module, node):
    assert shipped_parameters("qt_sim", config, node) == code_defaults(module)


def test_contact_sheet_command_writes_one_row_per_task(tmp_path):
    from qt_sim.sheet import main

    out = tmp_path / "sheet.png"
    assert main(["--out", str(out), "--tasks", "pick/red,push/blue/yellow", "--frames", "3", "--scale", "1",
                 "--size", "48"]) == 0
    image = np.asarray(Image.open(out))
    assert image.shape[1] >= 3 * 48 and image.shape[0] >= 2 * 48
    assert image.std() > 20
    with pytest.raises(SystemExit):
        main(["--tasks", "pick/orange", "--out", str(tmp_path / "x.png")])


@pytest.mark.parametrize(
    ("module", "args", "message"),
    [
        ("qt_sim.driver_node", ["-p", "tasks:=pick/orange"], "sim_driver: simulation failed to start: task_id"),
        ("qt_sim.expert_teleop", ["-p", "noise_std:=-1.0"], "expert_teleop: noise_std: expected"),
    ],
)
def test_nodes_refuse_bad_setup_with_a_clear_message(module, args, message):
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-m", module, "--ros-args", *args], capture_output=True, text=True,
                            stdin=subprocess.DEVNULL, timeout=120)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr
