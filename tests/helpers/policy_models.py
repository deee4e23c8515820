"""Real exported policies for tests: the tiny model plus broken variants (NaN output, edited card).

Builds on tiny_policy.export_tiny_policy (the real exporter, random weights). The variants are
still real artefacts that ONNX Runtime runs, so a consumer meets a fault exactly where a broken
export would put it. Imports onnx (training dependencies): test code only.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from helpers.tiny_policy import DEFAULT_INSTRUCTIONS

TINY_IMAGE_SIZE = (48, 64)  # (height, width); non-square on purpose
KNOWN_INSTRUCTION = DEFAULT_INSTRUCTIONS[0]
SIM_TASK = "pick/red"  # the simulator task whose wordings a sim test model caches


def make_nan_model(source: Path, target: Path) -> Path:
    """Copy of ``source`` whose ``action`` output is multiplied by NaN (a model gone bad)."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    target.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "policy.json", target / "policy.json")
    model = onnx.load(str(source / "policy.onnx"))
    for node in model.graph.node:
        node.output[:] = ["action_finite" if name == "action" else name for name in node.output]
    model.graph.initializer.append(numpy_helper.from_array(np.array([np.nan], dtype=np.float32), "nan_scale"))
    model.graph.node.append(helper.make_node("Mul", ["action_finite", "nan_scale"], ["action"], name="poison"))
    onnx.checker.check_model(model)
    onnx.save(model, str(target / "policy.onnx"))
    return target


def edit_card(source: Path, target: Path, **changes: object) -> Path:
    """Copy of ``source`` with top-level fields of policy.json replaced."""
    shutil.copytree(source, target)
    card = json.loads((target / "policy.json").read_text())
    card.update(changes)
    (target / "policy.json").write_text(json.dumps(card))
    return target
