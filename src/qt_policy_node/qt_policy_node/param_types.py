"""Typed declaration of the policy node's parameters, with a readable error for a wrong type.

Why: rclpy declares a parameter with the type of its default and raises
``InvalidParameterTypeException`` (a raw traceback) when YAML or ``-p`` gives another type. An
operator who writes ``control_rate_hz: 10`` or ``image_timeout_s: fast`` should get one line
naming the parameter, the type it needs and the value given. Integers are accepted where a
double is declared (``10`` means ``10.0``), at start-up and in ``ros2 param set``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import InvalidParameterTypeException
from rclpy.node import Node
from rclpy.parameter import Parameter

_TYPE_NAMES = {bool: "bool (true/false)", int: "integer", float: "double", str: "string"}


class ParameterTypeError(ValueError):
    """A parameter was given a value of the wrong type; the message names each one."""


def _type_name(default: Any) -> str:
    if isinstance(default, list):
        return f"list of {_TYPE_NAMES[type(default[0])]}"
    return _TYPE_NAMES[type(default)]


def coerce(name: str, value: Any, default: Any) -> Any:
    """``value`` as the type of ``default`` (integers widen to doubles); raises ParameterTypeError."""
    if isinstance(default, float) and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if isinstance(default, list) and isinstance(value, (list, tuple)):
        item = type(default[0])
        if item is float and all(isinstance(v, int) and not isinstance(v, bool) for v in value):
            return [float(v) for v in value]
        if all(type(v) is item for v in value):
            return list(value)
    elif type(value) is type(default):
        return value
    raise ParameterTypeError(f"parameter '{name}': expected {_type_name(default)}, got {value!r}")


def declare(node: Node, table: dict[str, tuple[Any, str]]) -> None:
    """Declare every ``name -> (default, description)`` of ``table`` with the default's type.

    A value of another type from YAML or ``-p`` is coerced when that is lossless (int -> double),
    otherwise collected; all problems are raised together as one ParameterTypeError.
    """
    problems = []
    for name, (default, description) in table.items():
        descriptor = ParameterDescriptor(description=description)
        try:
            node.declare_parameter(name, default, descriptor)
            continue
        except InvalidParameterTypeException:
            pass
        # Read what was given through a dynamically typed declaration, then declare it typed.
        given = node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True)).value
        node.undeclare_parameter(name)
        try:
            value = coerce(name, given, default)
        except ParameterTypeError as exc:
            problems.append(str(exc))
            value = default
        node.declare_parameter(name, value, descriptor, ignore_override=True)
    if problems:
        raise ParameterTypeError("; ".join(problems))


def widen_integers(table: dict[str, tuple[Any, str]]) -> Callable[[list[Parameter]], list[Parameter]]:
    """A pre-set callback for ``ros2 param set``: an integer for a double parameter becomes a double."""

    def callback(parameters: list[Parameter]) -> list[Parameter]:
        widened = []
        for parameter in parameters:
            default = table.get(parameter.name, (None, ""))[0]
            if isinstance(default, float) and parameter.type_ == Parameter.Type.INTEGER:
                parameter = Parameter(parameter.name, Parameter.Type.DOUBLE, float(parameter.value))
            widened.append(parameter)
        return widened

    return callback
