"""qt collect under interruption and failure: Ctrl-C discards the episode in progress and stops every
node; a node that dies ends the run with a clear error naming it; no node process is left behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers.processes import python_child

pytest.importorskip("qt_sim.driver_node")

SLOW = ["--tasks", "pick/", "--rate-hz", "10", "--horizon", "100", "--image", "48x64"]


def _node_pids(collect) -> dict[str, int]:
    line = collect.wait_for_line(r"^nodes: ", timeout=120).string
    return {name: int(pid) for name, pid in re.findall(r"(\w+) \(pid (\d+)\)", line)}


def _gone(pid: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text():
                return True
        except FileNotFoundError:
            return True
        time.sleep(0.05)
    return False


def test_ctrl_c_discards_the_episode_in_progress_and_stops_every_node(tmp_path, children):
    bags = tmp_path / "bags"
    collect = python_child("qt_common.cli", "collect", "--episodes", "5", "--bags", str(bags), *SLOW)
    children.append(collect)
    pids = _node_pids(collect)
    assert set(pids) == {"sim_driver", "recorder", "expert_teleop"}
    collect.wait_for_line(r"^\[1/5\] pick/red .* success", timeout=120)
    time.sleep(0.5)  # episode 2 is running (about 2 s at 10 Hz)
    collect.send_signal(signal.SIGINT)
    assert collect.wait(timeout=60) == 130, collect.output()[-3000:]  # 0: it ignored the Ctrl-C (conftest)
    assert "interrupted; the episode in progress was discarded" in collect.output()
    assert all(_gone(pid) for pid in pids.values()), pids
    written = sorted(bags.iterdir())
    assert len(written) == 1 and written[0].name.startswith("pick-red-s0-")  # only the finished episode
    custom = yaml.safe_load((written[0] / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]
    assert custom["outcome"] == "success" and not list(written[0].glob(".recording*"))


def test_a_node_that_dies_ends_the_run_with_its_name_and_output(tmp_path, children):
    collect = python_child("qt_common.cli", "collect", "--episodes", "5", "--bags", str(tmp_path / "bags"), *SLOW)
    children.append(collect)
    pids = _node_pids(collect)
    try:
        collect.wait_for_line(r"^\[1/5\]", timeout=120)
        # The sim leads its own process group (qt_eval.children); this test started it, via qt collect.
        os.killpg(pids["sim_driver"], signal.SIGKILL)
        assert collect.wait(timeout=60) == 1
        output = collect.output()
        assert re.search(rf"qt collect: failed: sim_driver \(pid {pids['sim_driver']}\) exited with code -9", output)
        assert "[sim_driver]" in output  # its last output lines are shown
        assert all(_gone(pid) for pid in pids.values()), pids
    finally:
        tool = Path(sys.executable).with_name("fastdds")  # SIGKILL leaves shared-memory files behind
        if tool.exists():
            subprocess.run([str(tool), "shm", "clean"], capture_output=True, timeout=60)
