"""Every launch file of the project: the package ones and the operator's top-level launch/ (issue 14).

Parsed (always) and, where ``launch``/``launch_ros`` are importable (a machine with the ROS CLI;
they are on no package registry here), loaded and described: declared arguments, the exit
handlers that end a launch when a required node dies, and the sim fitted to the model card.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path
from types import SimpleNamespace

import pytest
from helpers.policy_models import SIM_TASK, TINY_IMAGE_SIZE
from helpers.processes import REPO_ROOT

SRC = REPO_ROOT / "src"
RUN = SRC / "qt_policy_node" / "launch" / "run.launch.py"
SIM = SRC / "qt_sim" / "launch" / "sim.launch.py"
RECORD = SRC / "qt_data_logger" / "launch" / "record.launch.py"
SYSTEM = REPO_ROOT / "launch"
SYSTEM_FILES = ("collect_teleop.launch.py", "sim_demo.launch.py", "robot.launch.py", "robot_topics.launch.py")
ALL = [RUN, SIM, RECORD, *(SYSTEM / name for name in SYSTEM_FILES)]


def parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


@pytest.mark.parametrize("path", ALL, ids=lambda p: p.name)
def test_launch_file_is_documented_and_declares_what_it_uses(path):
    tree = parse(path)
    assert ast.get_docstring(tree), "say how to run it"
    for call in calls(tree, "DeclareLaunchArgument"):
        assert any(k.arg == "description" for k in call.keywords), ast.unparse(call)


@pytest.mark.parametrize(("path", "required"), [(SIM, "driver"), (RECORD, "recorder")], ids=["sim", "record"])
def test_package_launch_files_end_when_their_required_node_exits(path, required):
    tree = parse(path)
    assert [c.args[0].id for c in calls(tree, "shutdown_when_exits")] == [required]


def test_system_launch_files_compose_the_package_ones():
    """Thin compositions: the package launch files do the work; only the teleop is a node of its own."""
    for name in ("sim_demo.launch.py", "robot.launch.py", "collect_teleop.launch.py"):
        text = (SYSTEM / name).read_text()
        assert "IncludeLaunchDescription" in text, name
    assert "run.launch.py" in (SYSTEM / "sim_demo.launch.py").read_text()
    robot = (SYSTEM / "robot.launch.py").read_text()
    assert '"sim": "false"' in robot and "robot_topics.launch.py" in robot
    teleop = (SYSTEM / "collect_teleop.launch.py").read_text()
    assert "record.launch.py" in teleop and "robot_topics.launch.py" in teleop and '"episode_mode": "events"' in teleop
    nodes = calls(parse(SYSTEM / "collect_teleop.launch.py"), "Node")
    executables = sorted(k.value.value for n in nodes for k in n.keywords if k.arg == "executable")
    assert executables == ["joy_node", "joy_teleop", "keyboard_teleop"]  # the devices, and the joy driver


def test_sim_fit_takes_the_card_image_size_and_its_cached_tasks(sim_model, tiny_model, tmp_path):
    from qt_sim.card_fit import sim_parameters

    assert sim_parameters(sim_model) == {"image_height": TINY_IMAGE_SIZE[0], "image_width": TINY_IMAGE_SIZE[1],
                                         "tasks": SIM_TASK}
    assert sim_parameters(tiny_model)["tasks"] == ""  # no sim task fully cached: the sim draws all
    assert sim_parameters(tmp_path / "missing") == {}


# ---- described by launch itself (needs the ROS CLI's launch / launch_ros) ----------------------


@pytest.fixture(scope="module")
def launch():
    # launch_ros is the sentinel: the repository's own launch/ folder is an importable namespace
    # package named "launch" when the repository root is on sys.path (a real launch wins over it).
    pytest.importorskip("launch_ros")
    return importlib.import_module("launch")


def describe(launch, path: Path):
    from launch.launch_description_sources import get_launch_description_from_python_launch_file

    return get_launch_description_from_python_launch_file(str(path))


def test_run_launch_registers_exit_handlers_for_its_nodes(launch):
    from launch.actions import RegisterEventHandler
    from launch.event_handlers import OnProcessExit
    from launch.events.process import ProcessExited
    from launch_ros.actions import LifecycleNode

    description = describe(launch, RUN)
    handlers = [e.event_handler for e in description.entities if isinstance(e, RegisterEventHandler)]
    assert len(handlers) == 2 and all(isinstance(h, OnProcessExit) for h in handlers)
    policy = next(e for e in description.entities if isinstance(e, LifecycleNode))
    exited = ProcessExited(action=policy, name="policy_node-1", cmd=[], cwd=None, env=None, pid=1, returncode=1)
    assert [h.matches(exited) for h in handlers] == [True, False]  # the policy's; the other is the recorder's
    names = {a.name for a in description.get_launch_arguments()}
    assert {"model", "sim", "record", "bags_dir", "use_sim_time", "namespace", "autostart"} <= names


def test_a_failed_required_node_shuts_the_launch_down_with_an_error(launch):
    from launch.actions import Shutdown
    from qt_common.launch_required import RequiredNodeExited, shutdown_when_exits

    handler = shutdown_when_exits(launch.actions.ExecuteProcess(cmd=["true"]), "nothing to do").event_handler
    on_exit = handler._OnActionEventBase__on_event
    running, stopping = SimpleNamespace(is_shutdown=False), SimpleNamespace(is_shutdown=True)
    with pytest.raises(RequiredNodeExited, match="policy_node-1 exited with code 1: nothing to do"):
        on_exit(SimpleNamespace(process_name="policy_node-1", returncode=1), running)
    [shutdown] = on_exit(SimpleNamespace(process_name="policy_node-1", returncode=0), running)
    assert isinstance(shutdown, Shutdown)
    assert on_exit(SimpleNamespace(process_name="policy_node-1", returncode=-2), stopping) is None


@pytest.mark.parametrize("name", SYSTEM_FILES[:3])
def test_system_launch_files_describe_their_arguments(launch, name):
    names = {a.name for a in describe(launch, SYSTEM / name).get_launch_arguments()}
    if name == "collect_teleop.launch.py":
        assert {"instruction", "teleop", "output_dir", "camera_topic", "joint_states_topic", "mapping"} <= names
    else:
        assert {"model", "record", "bags_dir"} <= names
    if name == "robot.launch.py":
        assert {"camera_topic", "twist_topic", "gripper_topic"} <= names
