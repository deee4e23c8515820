"""The task family: ids, language instructions (training and held-out) and success checks.

Task ids (15 tasks):

    pick/<cube>               pick up a cube                      (3: red, green, blue)
    push/<cube>/<target>      push a cube onto a target           (6: x yellow, purple)
    place/<cube>/<target>     pick a cube up, set it on a target  (6)

Every task has three training wordings and two held-out wordings (``instructions(task_id,
"heldout")``) that training data never uses, for generalisation evaluation.

Success checks are geometric (all thresholds below, metres):

* pick:  the cube's bottom face is at least ``LIFT_HEIGHT`` above the table.
* push:  the cube's centre is within ``ON_TARGET_RADIUS`` (horizontal distance) of the target's
         centre, the cube rests on the table (bottom within ``RESTING_TOLERANCE``), and the cube
         never rose more than ``PUSH_MAX_LIFT`` during the episode (pushed, not carried).
* place: on target and resting as for push, no finger touches the cube (released), and the cube
         was lifted at least ``PLACE_MIN_LIFT`` at some point in the episode (carried, not pushed).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from qt_sim.world import CUBE_COLOURS, CUBE_HALF, TARGET_COLOURS, SceneState

LIFT_HEIGHT = 0.05
ON_TARGET_RADIUS = 0.04
RESTING_TOLERANCE = 0.01
PUSH_MAX_LIFT = 0.015
PLACE_MIN_LIFT = 0.03

KINDS = ("pick", "push", "place")
SPLITS = ("train", "heldout")

_WORDINGS: dict[str, dict[str, tuple[str, ...]]] = {
    "train": {
        "pick": ("pick up the {cube} cube", "lift the {cube} block", "pick the {cube} cube up off the table"),
        "push": (
            "push the {cube} cube onto the {target} target",
            "slide the {cube} block onto the {target} pad",
            "push the {cube} block to the {target} target without lifting it",
        ),
        "place": (
            "put the {cube} cube on the {target} target",
            "place the {cube} block onto the {target} pad",
            "pick up the {cube} cube and put it on the {target} target",
        ),
    },
    "heldout": {
        "pick": ("raise the {cube} cube into the air", "grab the {cube} box and hold it up"),
        "push": ("shove the {cube} box along the table onto the {target} disc",
                 "nudge the {cube} cube until it sits on the {target} circle"),
        "place": ("carry the {cube} box over and set it down on the {target} disc",
                  "move the {cube} cube by hand onto the {target} circle"),
    },
}


@dataclass(frozen=True)
class Task:
    kind: str
    cube: str
    target: str | None = None

    @property
    def task_id(self) -> str:
        return f"{self.kind}/{self.cube}" if self.target is None else f"{self.kind}/{self.cube}/{self.target}"


def _all_tasks() -> tuple[Task, ...]:
    tasks = [Task("pick", c) for c in CUBE_COLOURS]
    for kind in ("push", "place"):
        tasks += [Task(kind, c, t) for c in CUBE_COLOURS for t in TARGET_COLOURS]
    return tuple(tasks)


TASKS = _all_tasks()
TASK_IDS = tuple(t.task_id for t in TASKS)
_BY_ID = {t.task_id: t for t in TASKS}


def parse_task(task_id: str) -> Task:
    """'push/red/yellow' -> Task; a clear error naming the valid ids otherwise."""
    try:
        return _BY_ID[task_id]
    except KeyError:
        raise ValueError(f"task_id: unknown task {task_id!r}; expected one of {', '.join(TASK_IDS)}") from None


def instructions(task_id: str, split: str = "train") -> tuple[str, ...]:
    """The wordings of one task for a split ("train" or "heldout")."""
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    task = parse_task(task_id)
    return tuple(w.format(cube=task.cube, target=task.target) for w in _WORDINGS[split][task.kind])


def select_tasks(text: str) -> tuple[str, ...]:
    """Task ids from a comma-separated selection of ids and prefixes, in TASK_IDS order.

    ``"pick/,place/red/yellow"`` -> the three pick tasks and one place task; ``"push/red/"`` ->
    both push tasks of the red cube; ``""`` or ``"all"`` -> every task. An entry that matches no
    task is an error naming it (a typo must not silently shrink a data set or an evaluation).
    """
    entries = [e.strip() for e in text.split(",") if e.strip()]
    if not entries or entries == ["all"]:
        return TASK_IDS
    chosen: set[str] = set()
    for entry in entries:
        matches = [t for t in TASK_IDS if t == entry or (entry.endswith("/") and t.startswith(entry))]
        if not matches:
            raise ValueError(f"tasks: {entry!r} matches no task; give ids or prefixes ending in '/' "
                             f"(pick/, push/red/), from: {', '.join(TASK_IDS)}")
        chosen.update(matches)
    return tuple(t for t in TASK_IDS if t in chosen)


def all_instructions(split: str = "train") -> dict[str, tuple[str, ...]]:
    """task id -> its wordings for the split."""
    return {task_id: instructions(task_id, split) for task_id in TASK_IDS}


def task_for_instruction(text: str) -> tuple[str, str] | None:
    """(task id, split) of a known wording (whitespace and case ignored), else None."""
    key = " ".join(text.lower().split())
    for split in SPLITS:
        for task_id, wordings in all_instructions(split).items():
            if key in wordings:
                return task_id, split
    return None


# ---- success checks (pure functions of a SceneState, plus the episode's lift history) ------

def cube_lift(state: SceneState, cube: str) -> float:
    """Height of the cube's centre above its resting height on the table, metres."""
    return float(state.cube_pos[cube][2] - CUBE_HALF)


def is_lifted(state: SceneState, cube: str) -> bool:
    return cube_lift(state, cube) >= LIFT_HEIGHT


def is_on_target(state: SceneState, cube: str, target: str) -> bool:
    offset = state.cube_pos[cube][:2] - state.target_pos[target][:2]
    return float(np.hypot(*offset)) <= ON_TARGET_RADIUS


def is_resting(state: SceneState, cube: str) -> bool:
    return abs(cube_lift(state, cube)) <= RESTING_TOLERANCE


def is_released(state: SceneState, cube: str) -> bool:
    return state.finger_contacts.get(cube, 0) == 0


def is_success(task: Task, state: SceneState, max_lift: float) -> bool:
    """The task's geometric success check; ``max_lift`` is the cube's highest lift so far."""
    if task.kind == "pick":
        return is_lifted(state, task.cube)
    assert task.target is not None
    placed = is_on_target(state, task.cube, task.target) and is_resting(state, task.cube)
    if task.kind == "push":
        return placed and max_lift <= PUSH_MAX_LIFT
    return placed and is_released(state, task.cube) and max_lift >= PLACE_MIN_LIFT


class SuccessTracker:
    """Follows one episode: remembers the task cube's highest lift and evaluates success."""

    def __init__(self, task: Task, state: SceneState):
        self.task = task
        self.max_lift = cube_lift(state, task.cube)

    def update(self, state: SceneState) -> bool:
        self.max_lift = max(self.max_lift, cube_lift(state, self.task.cube))
        return is_success(self.task, state, self.max_lift)
