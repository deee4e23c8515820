"""Goal-oriented execution without ROS: "run the policy until success, failure, time limit,
cancel or a newer goal" (the RunPolicy action's bookkeeping).

Why a plain class: which goal is active, when it ends and with which outcome must be exact and
testable with chosen clocks; the action server (run_policy_server.py) only translates between
these objects and rclpy's goal handles. The node asks :attr:`GoalTracker.holding` every tick:
once a goal has ended (or from the start with ``goal_required``) the safety layer holds the arm
(rule ``no_goal``: the stop command once, then silence) until the next goal.

Outcome numbers are those of ``qt_msgs/action/RunPolicy`` Result (kept equal by a test).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

OUTCOME_SUCCESS = 1
OUTCOME_FAILURE = 2
OUTCOME_TIME_LIMIT = 3
OUTCOME_CANCELED = 4
OUTCOME_PREEMPTED = 5
OUTCOME_ABORTED = 6
OUTCOME_NAMES = {
    OUTCOME_SUCCESS: "success", OUTCOME_FAILURE: "failure", OUTCOME_TIME_LIMIT: "time_limit",
    OUTCOME_CANCELED: "canceled", OUTCOME_PREEMPTED: "preempted", OUTCOME_ABORTED: "aborted",
}


@dataclass(frozen=True)
class GoalEnd:
    """How a goal ended: one of the OUTCOME_* numbers and the reason in words."""

    outcome: int
    reason: str

    @property
    def name(self) -> str:
        return OUTCOME_NAMES[self.outcome]


@dataclass
class GoalRun:
    """One accepted goal: its request, its progress and (once ended) its end."""

    goal_id: str
    instruction: str
    time_limit_s: float  # 0: none
    started_s: float
    steps: int = 0  # ticks in which the policy's command was sent
    ticks: int = 0
    last_command: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    holds: list[str] = field(default_factory=list)
    end: GoalEnd | None = None

    def elapsed_s(self, now_s: float) -> float:
        return max(0.0, now_s - self.started_s)

    def finish(self, outcome: int, reason: str) -> bool:
        """End the goal; False when it had already ended (the first end wins)."""
        if self.end is not None:
            return False
        self.end = GoalEnd(outcome, reason)
        return True


def check_goal(instruction: str, time_limit_s: float, max_instruction_chars: int) -> str:
    """Why a goal request cannot run ("" when it can); the text names the goal field."""
    if not math.isfinite(time_limit_s) or time_limit_s < 0:
        return f"goal field time_limit_s: expected a finite number >= 0 (0: no limit), got {time_limit_s}"
    if not instruction.strip():
        return "goal field instruction: empty; say what the robot should do"
    if len(instruction) > max_instruction_chars:
        return (f"goal field instruction: {len(instruction)} characters, more than max_instruction_chars="
                f"{max_instruction_chars}")
    return ""


class GoalTracker:
    """At most one goal runs; a newer goal preempts the running one.

    ``goal_required`` false (the default) keeps today's behaviour until the first goal: the node
    runs on the instruction topic. Once a goal has been accepted, or from the start with
    ``goal_required`` true, the arm moves only while a goal runs.
    """

    def __init__(self, goal_required: bool = False) -> None:
        self.goal_required = goal_required
        self.active: GoalRun | None = None
        self.goals_seen = 0

    def restart(self) -> None:
        """On activate: back to running on the instruction topic until the first goal (unless
        goal_required). A goal still running is kept."""
        self.goals_seen = 1 if self.active is not None else 0

    @property
    def holding(self) -> bool:
        """True when the safety layer must hold because no goal runs (rule no_goal)."""
        return self.active is None and (self.goal_required or self.goals_seen > 0)

    def start(self, goal_id: str, instruction: str, time_limit_s: float, now_s: float
              ) -> tuple[GoalRun, GoalRun | None]:
        """Make ``goal_id`` the running goal; returns it and the goal it preempted (already ended)."""
        previous = self.active
        if previous is not None:
            previous.finish(OUTCOME_PREEMPTED, f"preempted by goal {goal_id}")
        run = GoalRun(goal_id, instruction, float(time_limit_s), now_s)
        self.active = run
        self.goals_seen += 1
        return run, previous

    def end(self, outcome: int, reason: str) -> GoalRun | None:
        """End the running goal (cancel, episode end, deactivate); returns it, or None if none ran."""
        run = self.active
        if run is None:
            return None
        run.finish(outcome, reason)
        self.active = None
        return run

    def after_tick(self, now_s: float, command: np.ndarray | None, holds: list[str]) -> GoalRun | None:
        """Record one control tick (``command``: the values sent, None when nothing was sent);
        returns the goal if its time limit has now passed (it has ended with OUTCOME_TIME_LIMIT)."""
        run = self.active
        if run is None:
            return None
        run.ticks += 1
        run.holds = list(holds)
        if command is not None:
            run.last_command = np.asarray(command, dtype=np.float32).copy()
            if not holds:
                run.steps += 1
        if run.time_limit_s > 0 and run.elapsed_s(now_s) >= run.time_limit_s:
            return self.end(OUTCOME_TIME_LIMIT, f"time limit of {run.time_limit_s:g} s reached after {run.steps} "
                            "policy step(s)")
        return None

    def episode_ended(self, success: bool, detail: str) -> GoalRun | None:
        """The success topic reported the end of the task: the running goal ends with its outcome."""
        outcome = OUTCOME_SUCCESS if success else OUTCOME_FAILURE
        return self.end(outcome, detail)
