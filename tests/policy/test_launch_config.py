"""run.launch.py and config/run.yaml, checked without ros2 launch (not on the package registries).

The launch file is parsed, not executed: every import must be a real launch / launch_ros name
(or one of the project's two launch helpers),
every LaunchConfiguration must be declared, every executable must be a console script of the
package it names, and every parameter handed to a node must be one that node declares. The
YAML is loaded into a real PolicyNode, so a wrong type or a misspelt name fails here.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import yaml
from helpers.processes import REPO_ROOT
from qt_policy_node.params import NODE_NAME, PARAMETERS

PACKAGE = REPO_ROOT / "src" / "qt_policy_node"
LAUNCH_FILE = PACKAGE / "launch" / "run.launch.py"
CONFIG_FILE = PACKAGE / "config" / "run.yaml"

# The launch / launch_ros names this file may use (their public API, as documented upstream).
LAUNCH_API = {
    "launch": {"LaunchContext", "LaunchDescription"},
    "launch.actions": {"DeclareLaunchArgument", "GroupAction", "IncludeLaunchDescription", "OpaqueFunction"},
    "launch.conditions": {"IfCondition", "UnlessCondition"},
    "launch.substitutions": {"EnvironmentVariable", "LaunchConfiguration", "PathJoinSubstitution"},
    "launch_ros.actions": {"Node", "LifecycleNode"},
    "launch_ros.parameter_descriptions": {"ParameterValue"},
    "launch_ros.substitutions": {"FindPackageShare"},
    "qt_common.launch_required": {"shutdown_when_exits"},
    "qt_sim.card_fit": {"sim_parameters"},
    "pathlib": {"Path"},
    "typing": {"Any"},
}
REQUIRED_ARGUMENTS = {"model", "params_file", "namespace", "sim", "record", "use_sim_time", "bags_dir"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(LAUNCH_FILE.read_text(), filename=str(LAUNCH_FILE))


def calls(tree: ast.Module, name: str) -> list[ast.Call]:
    return [n for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == name]


def keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def string_arg(call: ast.Call) -> str:
    arg = call.args[0] if call.args else keyword(call, "name")
    assert isinstance(arg, ast.Constant), ast.dump(call)
    return str(arg.value)


def console_scripts(package: str) -> set[str]:
    text = (REPO_ROOT / "src" / package / "setup.py").read_text()
    return set(re.findall(r'"(\w+)\s*=\s*[\w.]+:\w+"', text))


def test_imports_are_the_launch_ros_api(tree):
    imported = [n for n in ast.walk(tree) if isinstance(n, (ast.Import, ast.ImportFrom))]
    assert imported
    for node in imported:
        assert isinstance(node, ast.ImportFrom), "use from-imports of launch / launch_ros only"
        assert node.module in LAUNCH_API, node.module
        for alias in node.names:
            assert alias.name in LAUNCH_API[node.module], f"{node.module}.{alias.name}"
    functions = [n.name for n in tree.body if isinstance(n, ast.FunctionDef)]
    assert functions[-1] == "generate_launch_description" and set(functions) <= {"_sim", "generate_launch_description"}


def test_arguments_are_declared_and_used(tree):
    declared = {string_arg(c) for c in calls(tree, "DeclareLaunchArgument")}
    used = {string_arg(c) for c in calls(tree, "LaunchConfiguration")}
    assert declared >= REQUIRED_ARGUMENTS
    assert used == declared, f"declared but unused: {declared - used}; used but undeclared: {used - declared}"
    for call in calls(tree, "DeclareLaunchArgument"):
        assert keyword(call, "default_value") is not None and keyword(call, "description") is not None


def test_nodes_name_real_executables_and_declared_parameters(tree):
    nodes = calls(tree, "LifecycleNode") + calls(tree, "Node")
    found = {}
    for call in nodes:
        package = keyword(call, "package").value
        executable = keyword(call, "executable").value
        assert executable in console_scripts(package), f"{package} has no console script {executable!r}"
        assert keyword(call, "namespace") is not None and keyword(call, "parameters") is not None
        found[executable] = call
    assert set(found) == {"policy_node", "sim_driver", "recorder"}
    assert calls(tree, "LifecycleNode")[0] is found["policy_node"]
    params = keyword(found["policy_node"], "parameters")
    literal_keys = {k.value for d in params.elts if isinstance(d, ast.Dict) for k in d.keys}
    assert literal_keys <= set(PARAMETERS) | {"use_sim_time"}
    assert "model_path" in literal_keys
    assert keyword(found["recorder"], "condition") is not None, "the recorder must be optional"
    sim_call = calls(tree, "OpaqueFunction")[0]
    assert keyword(sim_call, "function").id == "_sim" and keyword(sim_call, "condition") is not None


def test_every_node_ends_the_launch_when_it_exits(tree):
    """Issue 14 item 2: OnProcessExit -> Shutdown (exit 1 on failure) for the policy, the sim and the recorder."""
    targets = {c.args[0].id for c in calls(tree, "shutdown_when_exits")}
    assert targets == {"policy", "sim", "recorder"}


def test_sim_is_fitted_to_the_card_and_publishes_the_clock_for_sim_time(tree):
    """Items 1, 3 and 4: the sim gets the card's image size and tasks, and /clock when use_sim_time."""
    sim_function = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "_sim")
    text = ast.unparse(sim_function)
    assert "sim_parameters(" in text and "'publish_clock'" in text and "use_sim_time" in text


def test_record_writes_into_the_bags_dir_argument(tree):
    """Item 6: the recorder's output_dir comes from a launch argument (default $QT_ROBOT_ROOT/bags)."""
    recorder = next(c for c in calls(tree, "Node") if keyword(c, "executable").value == "recorder")
    assert "output_dir" in ast.unparse(keyword(recorder, "parameters")) and "bags_dir" in ast.unparse(recorder)


def test_policy_section_of_the_yaml_matches_the_declared_parameters():
    config = yaml.safe_load(CONFIG_FILE.read_text())
    section = config[f"/**/{NODE_NAME}"]["ros__parameters"]
    assert set(section) <= set(PARAMETERS), set(section) - set(PARAMETERS)
    for name, value in section.items():
        default = PARAMETERS[name][0]
        assert type(value) is type(default), f"{name}: YAML {value!r} vs declared {default!r}"
        if isinstance(default, list):
            assert {type(v) for v in value} <= {type(default[0])}, name


def test_sim_section_names_sim_driver_parameters():
    sim_node = pytest.importorskip("qt_sim.driver_node")
    section = yaml.safe_load(CONFIG_FILE.read_text())["/**/sim_driver"]["ros__parameters"]
    assert set(section) <= set(sim_node.PARAMETERS)


def test_recorder_section_names_recorder_parameters_with_relative_topics():
    """namespace:=robot1 must move the recorder's topics too (relative names), and required_topics names
    recorded topic parameters."""
    recorder = pytest.importorskip("qt_data_logger.recorder_core")
    section = yaml.safe_load(CONFIG_FILE.read_text())["/**/recorder"]["ros__parameters"]
    topic_parameters = {name for name, *_ in recorder.TOPIC_PARAMETERS}
    assert topic_parameters <= set(section)
    assert not any(section[name].startswith("/") for name in topic_parameters)
    assert set(section["required_topics"]) <= topic_parameters


def test_yaml_loads_into_a_real_policy_node():
    import rclpy
    from qt_policy_node.node import PolicyNode
    from rclpy.signals import SignalHandlerOptions

    context = rclpy.Context()
    rclpy.init(args=["--ros-args", "--params-file", str(CONFIG_FILE)], context=context,
               signal_handler_options=SignalHandlerOptions.NO)
    try:
        node = PolicyNode(context=context, namespace="launch_check")
        section = yaml.safe_load(CONFIG_FILE.read_text())[f"/**/{NODE_NAME}"]["ros__parameters"]
        for name, value in section.items():
            assert node.get_parameter(name).value == value, name
        assert all(node.has_parameter(name) for name in PARAMETERS)
        node.destroy_node()
    finally:
        rclpy.try_shutdown(context=context)


def test_setup_installs_launch_and_config():
    setup = (PACKAGE / "setup.py").read_text()
    assert '"launch/*.launch.py"' in setup and '"config/*.yaml"' in setup
    assert "policy_node = qt_policy_node.node:main" in setup
    share = REPO_ROOT / "install" / "qt_policy_node" / "share" / "qt_policy_node"
    if not share.is_dir():
        pytest.skip("workspace not built (scripts/setup.sh)")
    assert (share / "launch" / "run.launch.py").is_file()
    assert (share / "config" / "run.yaml").is_file()
    assert (REPO_ROOT / "install" / "qt_policy_node" / "lib" / "qt_policy_node" / "policy_node").is_file()


def test_qt_run_defaults_to_the_same_yaml():
    from qt_policy_node.run import default_params_file

    assert default_params_file().resolve() == CONFIG_FILE.resolve()


def test_missing_default_model_is_named(monkeypatch, tmp_path):
    from qt_policy_node.params import default_model_path, resolve_model_path

    monkeypatch.setenv("QT_ROBOT_ROOT", str(tmp_path))
    assert resolve_model_path("") == tmp_path / "models" / "default" == default_model_path()
    assert resolve_model_path("~/m") == Path.home() / "m"


def test_qt_run_passes_the_launch_arguments_as_global_ros_arguments(tmp_path):
    from qt_policy_node.run import parse_args, ros_arguments

    args = parse_args(["--namespace", "/robot1/", "--use-sim-time"])
    assert ros_arguments(args, tmp_path / "p.yaml") == [
        "--ros-args", "--params-file", str(tmp_path / "p.yaml"), "-p", "use_sim_time:=true", "-r", "__ns:=/robot1",
    ]


def test_qt_run_names_a_missing_component_package(monkeypatch):
    from qt_policy_node.run import _factory

    from qt_common import components

    monkeypatch.setitem(components.COMPONENTS, "nowhere", ("qt_nowhere.node", "Thing", "qt_nowhere"))
    with pytest.raises(SystemExit, match=r"cannot start the qt_nowhere node \(qt_nowhere.node.Thing"):
        _factory("nowhere")
    assert components.load_component("sim").__name__ == "sim_driver_node"
