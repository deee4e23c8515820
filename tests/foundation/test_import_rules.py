"""The package import rules (docs/ARCHITECTURE.md, "Packages"), checked two ways.

* Statically: no module of a package names a forbidden package in any ``import`` statement, even
  one inside a function (a lazy import is still a dependency), and the runtime names no simulator
  or evaluation module in a string either (``importlib.import_module("qt_sim...")`` would hide it).
* In a fresh interpreter: importing every module of the package loads none of the forbidden ones.

Rules: the runtime (qt_policy_node) imports no simulator, evaluation, teleop, trainer or torch
code; teleop (qt_teleop) needs no MuJoCo and no simulator; the trainer imports no rclpy; the
robot-side evaluation modules load no simulator until a sim run asks for it.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"

# package folder -> top-level modules its code may never import (statically, anywhere in a file)
STATIC_RULES: dict[str, tuple[str, ...]] = {
    "qt_policy_node/qt_policy_node": ("qt_sim", "qt_eval", "qt_teleop", "qt_trainer", "mujoco", "torch"),
    "qt_teleop/qt_teleop": ("qt_sim", "qt_eval", "qt_trainer", "mujoco", "torch"),
    "qt_trainer/qt_trainer": ("rclpy", "qt_msgs", "qt_policy_node", "qt_eval", "qt_teleop", "qt_data_logger"),
    "qt_sim/qt_sim": ("qt_eval", "qt_teleop", "qt_policy_node", "qt_trainer", "torch"),
}
# runtime modules may not even name these in a string
RUNTIME_STRING_BANS = ("qt_sim", "qt_eval", "mujoco")


def _modules(folder: str) -> list[Path]:
    return sorted(p for p in (SRC / folder).glob("*.py"))


def _imported_names(tree: ast.AST) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append((node.lineno, node.module))
    return names


@pytest.mark.parametrize("folder", sorted(STATIC_RULES))
def test_no_forbidden_import_statement(folder: str):
    banned = STATIC_RULES[folder]
    found = []
    for path in _modules(folder):
        for line, name in _imported_names(ast.parse(path.read_text(), filename=str(path))):
            if name.split(".")[0] in banned:
                found.append(f"{path.relative_to(SRC)}:{line} imports {name}")
    assert _modules(folder), f"no modules found under src/{folder}"
    assert not found, "forbidden imports:\n" + "\n".join(found)


def test_runtime_names_no_simulator_or_evaluation_module_in_strings():
    found = []
    for path in _modules("qt_policy_node/qt_policy_node"):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                head = node.value.split(".")[0]
                if head in RUNTIME_STRING_BANS:
                    found.append(f"{path.relative_to(SRC)}:{node.lineno} {node.value!r}")
    assert not found, "the runtime names these modules (use qt_common.components):\n" + "\n".join(found)


def _loaded_after_import(modules: list[str], watched: tuple[str, ...]) -> list[str]:
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({list(watched)!r})))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def _package_modules(folder: str, package: str, skip: tuple[str, ...] = ()) -> list[str]:
    return [f"{package}.{p.stem}" for p in _modules(folder) if p.stem != "__init__" and p.stem not in skip]


def test_importing_the_whole_runtime_loads_no_simulator_evaluation_or_torch():
    modules = _package_modules("qt_policy_node/qt_policy_node", "qt_policy_node")
    assert "qt_policy_node.node" in modules and "qt_policy_node.run" in modules
    assert _loaded_after_import(modules, ("qt_sim", "qt_eval", "qt_teleop", "mujoco", "torch", "qt_trainer")) == []


def test_importing_teleop_loads_no_mujoco_or_simulator():
    modules = _package_modules("qt_teleop/qt_teleop", "qt_teleop")
    assert {"qt_teleop.keyboard_teleop", "qt_teleop.joy_teleop", "qt_teleop.joy_mapping"} <= set(modules)
    assert _loaded_after_import(modules, ("qt_sim", "mujoco", "qt_eval", "torch")) == []


def test_importing_the_trainer_loads_no_rclpy():
    modules = _package_modules("qt_trainer/qt_trainer", "qt_trainer")
    assert _loaded_after_import(modules, ("rclpy", "qt_msgs")) == []


def test_robot_evaluation_loads_no_simulator():
    modules = ["qt_eval.robot", "qt_eval.operator", "qt_eval.evaluate", "qt_eval.report", "qt_eval.plan",
               "qt_eval.episode_client", "qt_eval.children", "qt_eval.demo"]
    assert _loaded_after_import(modules, ("qt_sim", "mujoco", "torch")) == []
