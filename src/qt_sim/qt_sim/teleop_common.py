"""Pieces of the scripted expert's teleop node that need no ROS: episode plans, tick grouping.

Kept free of rclpy so tests exercise them directly; the nodes only move data in and out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from qt_sim.tasks import TASK_IDS, parse_task

TICK_PARTS = ("ee_pose", "joint_states", "object_poses")


@dataclass
class EpisodePlan:
    """Which task and seed the n-th episode uses: tasks cycled in order (or shuffled per
    round with ``shuffle``), seeds ``seed, seed + 1, ...``. ``count`` 0 means unlimited."""

    tasks: tuple[str, ...] = TASK_IDS
    seed: int = 0
    count: int = 0
    shuffle: bool = False

    def __post_init__(self) -> None:
        self.tasks = tuple(self.tasks) or TASK_IDS
        for task_id in self.tasks:
            parse_task(task_id)
        if self.count < 0:
            raise ValueError(f"count: expected >= 0 (0 = unlimited), got {self.count}")
        if self.seed < 0:
            raise ValueError(f"seed: expected >= 0, got {self.seed}")

    def episode(self, index: int) -> tuple[str, int]:
        """(task id, seed) of episode ``index`` (0-based)."""
        n = len(self.tasks)
        order = list(range(n))
        if self.shuffle:
            np.random.default_rng(self.seed + index // n).shuffle(order)
        return self.tasks[order[index % n]], self.seed + index

    def finished(self, done: int) -> bool:
        return self.count > 0 and done >= self.count


def parse_task_list(text: str) -> tuple[str, ...]:
    """'pick/red, push/red/yellow' -> ids (validated); empty -> all tasks."""
    tasks = tuple(t.strip() for t in text.split(",") if t.strip())
    for task_id in tasks:
        parse_task(task_id)
    return tasks or TASK_IDS


class TickAssembler:
    """Groups the driver's /ee_pose, /joint_states and /sim/object_poses of one control tick.

    The driver stamps all three with the same time; :meth:`add` returns the complete set once
    the last part of a stamp has arrived (any order), so the expert acts exactly once per tick.
    """

    def __init__(self, keep: int = 8):
        self._parts: dict[int, dict[str, Any]] = {}
        self._keep = keep

    def add(self, part: str, stamp_ns: int, payload: Any) -> dict[str, Any] | None:
        if part not in TICK_PARTS:
            raise ValueError(f"part: expected one of {TICK_PARTS}, got {part!r}")
        parts = self._parts.setdefault(stamp_ns, {})
        parts[part] = payload
        if len(self._parts) > self._keep:
            for old in sorted(self._parts)[: len(self._parts) - self._keep]:
                del self._parts[old]
        if len(parts) == len(TICK_PARTS):
            del self._parts[stamp_ns]
            return parts
        return None
