"""``qt run``: the nodes of run.launch.py in one process on one executor (manual composition).

For machines without the ros2 CLI (``launch``/``launch_ros`` are not on PyPI). Same nodes, same
parameter YAML (``config/run.yaml``) and the same arguments as the launch file:

    qt run [--model DIR] [--params-file YAML] [--namespace NS] [--sim] [--record] [--use-sim-time]

The YAML, namespace and use_sim_time go in as global ROS arguments, exactly what ``ros2
launch`` hands each process; the model path goes to the policy node only. The policy node is
configured and activated here (the lifecycle transitions ``ros2 launch`` leaves to
``autostart``); SIGINT or SIGTERM deactivate it (the stop command goes out), stop the
simulator and let the recorder finalise its bag, then exit 0. The simulator and recorder
nodes are found by name through qt_common.components (the runtime names no simulator module) and
imported only when asked for, with an error naming the missing package.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qt_policy_node.params import default_model_path

PACKAGE_DIR = Path(__file__).resolve().parent


def default_params_file() -> Path:
    """The installed config/run.yaml, or the source tree's when the package is not installed."""
    try:
        from ament_index_python.packages import get_package_share_directory

        installed = Path(get_package_share_directory("qt_policy_node")) / "config" / "run.yaml"
        if installed.is_file():
            return installed
    except (ImportError, LookupError, ValueError):
        pass
    return PACKAGE_DIR.parent / "config" / "run.yaml"


@dataclass
class Component:
    """One node in the process and how to stop it cleanly."""

    name: str
    node: Any
    finish: Callable[[Any], None] = lambda executor: None


def _factory(name: str) -> Any:
    from qt_common.components import ComponentMissing, load_component

    try:
        return load_component(name)
    except ComponentMissing as exc:
        raise SystemExit(f"qt run: {exc}") from exc


def make_sim(model: Path, use_sim_time: bool) -> Component:
    """The sim driver fitted to the model's card (component ``sim``: qt_common.components names the
    package, so this runtime imports no simulator code); it publishes /clock for --use-sim-time."""
    node = _factory("sim")(model, use_sim_time)
    return Component("sim_driver", node, lambda executor: node.shutdown())


def make_recorder() -> Component:
    node = _factory("recorder")()

    def finish(executor: Any) -> None:
        # An episode that already ended keeps its grace period for late messages, then the
        # open bag is finalised (the recorder's own main does the same).
        deadline = time.monotonic() + node.core.config.end_grace_s + 1.0
        while node.core.closing and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
        results = node.core.shutdown()
        written = sum(1 for r in results if r.ok and not r.discarded)
        node.get_logger().info(f"recorder stopped: {written} episode(s) written")

    return Component("recorder", node, finish)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="qt run", description="Run the policy node (optionally with the simulated arm and the recorder) in one "
        "process, with the same nodes and parameter YAML as run.launch.py.")
    parser.add_argument("--model", type=Path, default=None,
                        help=f"policy directory (policy.onnx + policy.json); default {default_model_path()}")
    parser.add_argument("--params-file", type=Path, default=None,
                        help="parameter YAML for every node; default: qt_policy_node's config/run.yaml")
    parser.add_argument("--namespace", default="", help="namespace of every node and topic")
    parser.add_argument("--sim", action="store_true", help="also run the MuJoCo arm (qt_sim sim_driver)")
    parser.add_argument("--record", action="store_true", help="also run the episode recorder (qt_data_logger)")
    parser.add_argument("--use-sim-time", action="store_true", help="run every node on /clock")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long (0: until SIGINT)")
    return parser.parse_args(argv)


def ros_arguments(args: argparse.Namespace, params_file: Path) -> list[str]:
    """Global ROS arguments: what ros2 launch passes to each process of run.launch.py."""
    ros = ["--ros-args", "--params-file", str(params_file), "-p", f"use_sim_time:={str(args.use_sim_time).lower()}"]
    if args.namespace:
        ros += ["-r", f"__ns:=/{args.namespace.strip('/')}"]
    return ros


def main(argv: list[str] | None = None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    params_file = args.params_file or default_params_file()
    if not params_file.is_file():
        print(f"qt run: --params-file {params_file}: no such file", file=sys.stderr)
        return 2
    model = (args.model or default_model_path()).expanduser().resolve()
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")

    import rclpy
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.parameter import Parameter
    from rclpy.signals import SignalHandlerOptions

    from qt_policy_node.node import PolicyNode, StopFlag, bring_down, bring_up, spin_until_stopped
    from qt_policy_node.param_types import ParameterTypeError

    rclpy.init(args=["qt_run", *ros_arguments(args, params_file)], signal_handler_options=SignalHandlerOptions.NO)
    flag = StopFlag()
    executor = SingleThreadedExecutor()
    components: list[Component] = []
    policy: PolicyNode | None = None
    code = 0
    try:
        try:
            if args.sim:
                components.append(make_sim(model, args.use_sim_time))
            if args.record:
                components.append(make_recorder())
        except SystemExit:
            raise
        except Exception as exc:  # a component that cannot start is reported, not a traceback
            raise SystemExit(f"qt run: a node failed to start: {exc}") from exc
        try:
            policy = PolicyNode(parameter_overrides=[Parameter("model_path", Parameter.Type.STRING, str(model))])
        except ParameterTypeError as exc:
            raise SystemExit(f"qt run: {exc}") from None
        for component in components:
            executor.add_node(component.node)
        executor.add_node(policy)
        if not bring_up(policy):
            policy.get_logger().fatal("qt run: the policy node did not come up (see the error above)")
            code = 1
        else:
            names = ", ".join(["policy_node", *(c.name for c in components)])
            print(f"qt run: running {names} (Ctrl-C to stop)", flush=True)
            if args.seconds > 0:
                deadline = time.monotonic() + args.seconds
                while not flag.stopped and time.monotonic() < deadline:
                    executor.spin_once(timeout_sec=0.1)
            else:
                spin_until_stopped(executor, flag)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        code = 2
    finally:
        if policy is not None:
            bring_down(policy)
        for component in reversed(components):
            component.finish(executor)
        for node in [*(c.node for c in components), *([policy] if policy else [])]:
            executor.remove_node(node)
            node.destroy_node()
        executor.shutdown()
        rclpy.try_shutdown()
    print(f"qt run: stopped (exit {code})", flush=True)
    return code
