"""The policy with the simulated arm, and ``qt run`` up and down.

* sim driver + policy node as two processes: commands at the control rate move the arm; an
  e-stop stops it and it stays still.
* ``qt run``: the same nodes and YAML in one process; SIGINT publishes the stop command and
  the process exits 0 (with the simulator and the recorder too).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from geometry_msgs.msg import PoseStamped
from helpers.policy_models import KNOWN_INSTRUCTION, SIM_TASK, TINY_IMAGE_SIZE
from helpers.policy_probe import PolicyProbe, _qos, start_policy_node, unique_namespace
from helpers.processes import ChildProcess, python_child
from qt_common.action_spec import ActionSpec

SPEC = ActionSpec.default()
HEIGHT, WIDTH = TINY_IMAGE_SIZE
STARTUP_S = 90.0


def is_stop(msg) -> bool:
    return list(msg.values) == list(SPEC.neutral_values())


def write_params(path: Path, recorder_dir: Path | None = None, policy_rate_hz: float = 0.0) -> Path:
    """Parameter YAML in the layout of config/run.yaml, for the tiny model and a small camera."""
    config = {
        "/**/policy_node": {"ros__parameters": {
            "image_height": HEIGHT, "image_width": WIDTH, "control_rate_hz": policy_rate_hz,
            "use_text_encoder": False,
        }},
        "/**/sim_driver": {"ros__parameters": {
            "auto_start": True, "image_height": HEIGHT, "image_width": WIDTH, "tasks": SIM_TASK, "horizon": 1000,
        }},
    }
    if recorder_dir is not None:
        config["/**/recorder"] = {"ros__parameters": {"output_dir": str(recorder_dir), "fsync": False}}
    path.write_text(yaml.safe_dump(config))
    return path


def qt_run(*args: str) -> ChildProcess:
    return ChildProcess([str(Path(sys.executable).parent / "qt"), "run", *args])


def test_sim_driver_and_policy_node_processes(sim_model, children, tmp_path):
    params = write_params(tmp_path / "params.yaml")
    sim = python_child("qt_sim.driver_node", "--ros-args", "--params-file", str(params))
    children.append(sim)
    policy = start_policy_node(sim_model, "", autostart=True, use_text_encoder=False, image_height=HEIGHT,
                               image_width=WIDTH)
    children.append(policy)
    sim.wait_for_line(r"sim_driver ready", STARTUP_S)
    policy.wait_for_line(r"policy_node: ready", STARTUP_S)
    with PolicyProbe("", TINY_IMAGE_SIZE) as probe:
        poses: list[tuple[float, np.ndarray]] = []
        probe.node.create_subscription(
            PoseStamped, "/ee_pose",
            lambda m: poses.append((time.monotonic(), np.array([m.pose.position.x, m.pose.position.y,
                                                                 m.pose.position.z]))), _qos(50))
        probe.wait_until(lambda: sum(not is_stop(m) for m in probe.actions.messages) >= 3, 30.0, "policy motion")
        start = time.monotonic()
        probe.spin(3.0)
        rate = len(probe.actions.since(start)) / 3.0
        assert 6.0 <= rate <= 12.0, f"{rate:.1f} commands/s; sim and card run at 10 Hz"
        moved = [p for t, p in poses if t >= start]
        assert np.ptp(np.array(moved), axis=0).max() > 1e-3, "the arm should move under the policy"
        pressed = time.monotonic()
        probe.estop(True)
        probe.wait_until(lambda: any(is_stop(m) for m in probe.actions.since(pressed)), 5.0, "stop command")
        stopped = time.monotonic()
        probe.spin(1.5)
        after = probe.actions.since(pressed)
        assert sum(map(is_stop, after)) == 1 and is_stop(after[-1])
        still = np.array([p for t, p in poses if t >= stopped + 0.5])
        assert len(still) >= 5 and np.ptp(still, axis=0).max() < 1e-3, "the arm must hold still after the e-stop"
    assert "rejected command" not in sim.output()
    assert "proprio: ee_pose" in policy.output()  # the sim model takes /ee_pose as proprioception


def test_qt_run_comes_up_and_goes_down_on_sigint(tiny_model, children, tmp_path):
    namespace = unique_namespace()
    params = write_params(tmp_path / "params.yaml", policy_rate_hz=20.0)
    run = qt_run("--model", str(tiny_model), "--params-file", str(params), "--namespace", namespace)
    children.append(run)
    run.wait_for_line(r"qt run: running policy_node \(Ctrl-C to stop\)", STARTUP_S)
    with PolicyProbe(namespace, TINY_IMAGE_SIZE) as probe:
        probe.wait_for_policy_node()
        probe.instruct(KNOWN_INSTRUCTION)
        probe.start_camera(30.0)
        probe.wait_until(lambda: sum(not is_stop(m) for m in probe.actions.messages) >= 5, 20.0, "motion")
        probe.stop_camera()
        stopping = time.monotonic()
        run.send_signal(signal.SIGINT)
        assert run.wait(timeout=30) == 0, run.output()
        probe.wait_until(lambda: any(is_stop(m) for m in probe.actions.since(stopping)), 5.0, "final stop")
        assert is_stop(probe.actions.messages[-1])
    output = run.output()
    assert f"[{namespace}.policy_node]" in output  # the namespace reached the node
    assert "deactivate: published the stop command" in output and "qt run: stopped (exit 0)" in output
    assert "Traceback" not in output


def test_qt_run_with_sim_and_recorder(sim_model, children, tmp_path):
    pytest.importorskip("qt_data_logger.recorder_node")
    params = write_params(tmp_path / "params.yaml", recorder_dir=tmp_path / "bags")
    run = qt_run("--model", str(sim_model), "--params-file", str(params), "--sim", "--record")
    children.append(run)
    run.wait_for_line(r"qt run: running policy_node, sim_driver, recorder", STARTUP_S)
    with PolicyProbe("", TINY_IMAGE_SIZE) as probe:
        probe.wait_until(lambda: sum(not is_stop(m) for m in probe.actions.messages) >= 10, 30.0, "policy motion")
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=60) == 0, run.output()
    output = run.output()
    assert "deactivate: published the stop command" in output
    assert "recorder stopped" in output and "qt run: stopped (exit 0)" in output
    assert "Traceback" not in output
