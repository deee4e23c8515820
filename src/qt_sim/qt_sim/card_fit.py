"""What the simulated arm must be told so that a model can act in it (``run.launch.py sim:=true``, ``qt run --sim``).

Why: the sim's camera defaults to 96 px and it draws all 15 tasks, while a model card fixes the
image size it decodes and caches the embeddings of the wordings it was trained on. A frame of
another size is rejected, and without a text encoder an instruction the card does not cache
holds the arm still (``unknown_instruction``): the demo would never move. So the sim gets the
card's camera size and only the tasks whose every training wording the card caches (all tasks
when no task is fully cached, e.g. a model meant for the text encoder).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def sim_parameters(model_dir: Path) -> dict[str, Any]:
    """``image_height``, ``image_width`` and ``tasks`` for the sim driver; {} when the card is unreadable
    (the policy node then reports why and the launch stops)."""
    try:
        card = json.loads((Path(model_dir) / "policy.json").read_text())
        height, width = int(card["image"]["height"]), int(card["image"]["width"])
        cached = {text.strip().lower() for text in card["text_encoder"].get("embeddings", {})}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}
    from qt_sim.tasks import TASK_IDS, instructions

    tasks = [t for t in TASK_IDS if {w.lower() for w in instructions(t, "train")} <= cached]
    return {"image_height": height, "image_width": width, "tasks": ",".join(tasks)}


def sim_driver_node(model_dir: Path, use_sim_time: bool = False) -> Any:
    """The sim driver node fitted to the model's card (``qt run --sim``, via qt_common.components);
    it publishes /clock when the nodes run on simulated time."""
    from rclpy.parameter import Parameter

    from qt_sim.driver_node import SimDriverNode

    overrides = {**sim_parameters(model_dir), "publish_clock": use_sim_time}
    return SimDriverNode(parameter_overrides=[Parameter(name, value=value) for name, value in overrides.items()])
