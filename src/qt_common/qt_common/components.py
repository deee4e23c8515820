"""Nodes that ``qt run`` can start next to the policy node, named here rather than in the runtime.

Why: the runtime package (qt_policy_node) may not import the simulator (or evaluation code), yet
``qt run --sim`` starts the simulated arm in the policy node's process, like ``run.launch.py
sim:=true`` starts it as a process of its own. As with the ``qt`` verbs (qt_common.cli), the
shared contract package names the module that provides each optional node; the runtime asks for
a component by name and gets a factory, imported only when asked for.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

# name -> (module, factory, package). A factory takes keyword arguments and returns an rclpy node.
COMPONENTS: dict[str, tuple[str, str, str]] = {
    "sim": ("qt_sim.card_fit", "sim_driver_node", "qt_sim"),
    "recorder": ("qt_data_logger.recorder_node", "RecorderNode", "qt_data_logger"),
}


class ComponentMissing(RuntimeError):
    """The package that provides a component is not installed (or not built)."""


def load_component(name: str) -> Callable[..., Any]:
    """The factory of component ``name``; ComponentMissing names the package when it cannot be imported."""
    if name not in COMPONENTS:
        raise KeyError(f"component: expected one of {sorted(COMPONENTS)}, got {name!r}")
    module, factory, package = COMPONENTS[name]
    try:
        return getattr(importlib.import_module(module), factory)
    except (ImportError, AttributeError) as exc:
        raise ComponentMissing(f"cannot start the {package} node ({module}.{factory}: {exc}); build it with "
                               "scripts/setup.sh and source env.sh") from exc
