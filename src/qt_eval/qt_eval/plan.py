"""What an evaluation runs: the episode plan (task, held-out seed, wording), and the settings both
evaluation modes share (the policy node's parameters, the tasks a model card knows).

No ROS, no MuJoCo: ``qt eval`` builds the plan once and hands it to either mode, so the ROS and
the in-process evaluation of one command line run exactly the same episodes. The sim's task
family is imported only by the functions that plan sim episodes; the robot evaluation
(qt_eval.robot) uses :class:`EpisodeSpec` and :func:`node_parameters` without the simulator.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from qt_policy_node.instructions import normalize
from qt_policy_node.params import NODE_NAME, PARAMETERS

# Collection (qt collect) counts seeds up from 0; evaluation layouts start far above, so no
# evaluated layout was ever a training layout.
DEFAULT_SEED_BASE = 100_000


@dataclass(frozen=True)
class EpisodeSpec:
    task_id: str
    seed: int
    instruction: str
    split: str  # which wordings the instruction comes from: train | heldout


def make_plan(tasks: tuple[str, ...], split: str, seed_base: int, episodes: int) -> list[EpisodeSpec]:
    """``episodes`` episodes, tasks cycled round robin (an interrupted run covers every task),
    seeds ``seed_base, seed_base + 1, ...``; the k-th episode of a task uses its k-th wording of
    the split (cycled), so every wording is evaluated."""
    from qt_sim.tasks import SPLITS, instructions

    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    if not tasks:
        raise ValueError("tasks: expected at least one task")
    if episodes < 1:
        raise ValueError(f"episodes: expected >= 1, got {episodes}")
    if seed_base < 0:
        raise ValueError(f"seed_base: expected >= 0, got {seed_base}")
    plan = []
    for i in range(episodes):
        task_id = tasks[i % len(tasks)]
        wordings = instructions(task_id, split)
        plan.append(EpisodeSpec(task_id, seed_base + i, wordings[(i // len(tasks)) % len(wordings)], split))
    return plan


def card_tasks(card: dict[str, Any]) -> tuple[str, ...]:
    """The sim tasks whose wordings the model was trained on (from the card's embedding cache),
    in task order; all tasks when the card names none of them."""
    from qt_sim.tasks import TASK_IDS, task_for_instruction

    found = set()
    for text in card.get("text_encoder", {}).get("embeddings", {}):
        match = task_for_instruction(text)
        if match is not None:
            found.add(match[0])
    return tuple(t for t in TASK_IDS if t in found) or TASK_IDS


def missing_embeddings(plan: list[EpisodeSpec], card: dict[str, Any]) -> list[str]:
    """Wordings of the plan that the card does not cache (they need the ONNX text encoder)."""
    known = {normalize(t) for t in card.get("text_encoder", {}).get("embeddings", {})}
    return sorted({s.instruction for s in plan if normalize(s.instruction) not in known})


def node_parameters(params_file: Path | None) -> dict[str, Any]:
    """The policy node's parameters as the node sees them: the defaults of params.PARAMETERS,
    overridden by the YAML's policy_node section (``/**/policy_node``, ``policy_node`` or ``/**``)."""
    values = {name: default for name, (default, _) in PARAMETERS.items()}
    if params_file is None:
        return values
    data = yaml.safe_load(Path(params_file).read_text()) or {}
    for key in ("/**", f"/**/{NODE_NAME}", NODE_NAME, f"/{NODE_NAME}"):
        section = (data.get(key) or {}).get("ros__parameters") or {}
        unknown = sorted(set(section) - set(PARAMETERS) - {"use_sim_time"})
        if unknown and key != "/**":
            raise ValueError(f"{params_file}: {key} sets unknown policy node parameter(s) {unknown}")
        values.update({k: v for k, v in section.items() if k in PARAMETERS})
    return values
