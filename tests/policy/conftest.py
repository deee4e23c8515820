"""Fixtures of the policy node tests: real exported models (tiny, untrained), a broken one, and
an in-process PolicyNode factory."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.policy_models import SIM_TASK, TINY_IMAGE_SIZE, make_nan_model
from helpers.processes import REPO_ROOT
from helpers.tiny_policy import export_tiny_policy

CONFIG_FILE = REPO_ROOT / "src" / "qt_policy_node" / "config" / "run.yaml"


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real policy.onnx + policy.json written by qt_trainer's exporter (random weights)."""
    return export_tiny_policy(tmp_path_factory.mktemp("policy") / "tiny", image_size=TINY_IMAGE_SIZE)


@pytest.fixture(scope="session")
def nan_model(tiny_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_nan_model(tiny_model, tmp_path_factory.mktemp("policy") / "nan")


@pytest.fixture(scope="session")
def sim_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model for the simulator: its card caches the wordings of SIM_TASK (no text encoder
    needed), and it takes the end-effector pose as proprioception (qt convert --proprio ee_pose)."""
    tasks = pytest.importorskip("qt_sim.tasks")
    return export_tiny_policy(tmp_path_factory.mktemp("policy") / "sim", image_size=TINY_IMAGE_SIZE,
                              instructions=tasks.instructions(SIM_TASK, "train"), proprio_dim=7)


@pytest.fixture
def make_node() -> Iterator:
    """``make_node(model, *ros_args)``: a PolicyNode loading run.yaml plus ``-p`` arguments."""
    import rclpy
    from qt_policy_node.node import PolicyNode
    from rclpy.signals import SignalHandlerOptions

    made = []

    def make(model: Path, *params: str):
        context = rclpy.Context()
        args = ["--ros-args", "--params-file", str(CONFIG_FILE), "-p", f"model_path:={model}",
                "-p", "use_text_encoder:=false"]
        for param in params:
            args += ["-p", param]
        rclpy.init(args=args, context=context, signal_handler_options=SignalHandlerOptions.NO)
        made.append((context, None))
        node = PolicyNode(context=context, namespace="params_check")
        made[-1] = (context, node)
        return node

    yield make
    from qt_policy_node.node import bring_down

    for context, node in made:
        if node is not None:
            bring_down(node)
            node.destroy_node()
        rclpy.try_shutdown(context=context)
