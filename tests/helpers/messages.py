"""Deterministic sample messages for any ROS interface type, and a plain-dict view of them.

Sample values are chosen to survive the wire exactly (float32-representable floats, ASCII
strings), so a message that crossed DDS can be compared field by field with ``==``.
"""

from __future__ import annotations

import importlib
import random
import re
from typing import Any

_INT_RANGES = {
    "int8": (-128, 127), "uint8": (0, 255), "byte": (0, 255), "char": (0, 127),
    "int16": (-(2**15), 2**15 - 1), "uint16": (0, 2**16 - 1),
    "int32": (-(2**31), 2**31 - 1), "uint32": (0, 2**32 - 1),
    "int64": (-(2**63), 2**63 - 1), "uint64": (0, 2**64 - 1),
    "octet": (0, 255),
}
_FLOATS = {"float", "double"}
_SEQUENCE = re.compile(r"^sequence<(?P<inner>[^,>]+)(?:,\s*(?P<bound>\d+))?>$")
_ARRAY = re.compile(r"^(?P<inner>.+)\[(?P<size>\d+)\]$")


def import_interface(name: str) -> type:
    """'qt_msgs/msg/ArmAction' or 'qt_msgs/ArmAction' -> the generated Python class."""
    parts = name.split("/")
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    package, kind, type_name = parts
    return getattr(importlib.import_module(f"{package}.{kind}"), type_name)


def _value(type_name: str, rng: random.Random) -> Any:
    seq = _SEQUENCE.match(type_name)
    if seq:
        bound = int(seq["bound"]) if seq["bound"] else 4
        return [_value(seq["inner"], rng) for _ in range(rng.randint(1, max(1, min(bound, 4))))]
    arr = _ARRAY.match(type_name)
    if arr:
        return [_value(arr["inner"], rng) for _ in range(int(arr["size"]))]
    if type_name in _INT_RANGES:
        low, high = _INT_RANGES[type_name]
        return rng.randint(low, high)
    if type_name in _FLOATS:
        return rng.randint(-4096, 4096) / 64.0  # exact in float32
    if type_name == "boolean":
        return rng.random() < 0.5
    if type_name.startswith(("string", "wstring")):
        return "".join(rng.choice("abcdefghijklmnopqrstuvwxyz _-0123456789") for _ in range(rng.randint(1, 24)))
    return sample_message(import_interface(type_name), rng)


def sample_message(cls: type, rng: random.Random | int) -> Any:
    """Fill every field of ``cls`` with deterministic values from ``rng`` (or a seed)."""
    if isinstance(rng, int):
        rng = random.Random(rng)
    msg = cls()
    for field, type_name in cls.get_fields_and_field_types().items():
        setattr(msg, field, _value(type_name, rng))
    return msg


def message_to_dict(msg: Any) -> Any:
    """Nested plain Python (dicts, lists, numbers, strings) view of a message, for ``==``."""
    if hasattr(msg, "get_fields_and_field_types"):
        return {field: message_to_dict(getattr(msg, field)) for field in msg.get_fields_and_field_types()}
    if isinstance(msg, (list, tuple)) or hasattr(msg, "tolist"):
        return [message_to_dict(v) for v in (msg.tolist() if hasattr(msg, "tolist") else msg)]
    if isinstance(msg, (bytes, bytearray)):
        return list(msg)
    return msg
