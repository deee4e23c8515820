"""Run the scripted expert in the env: one episode, or a success table over tasks and seeds."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from qt_sim.env import TabletopEnv
from qt_sim.expert import ExpertKnobs, ScriptedExpert, WorldView


@dataclass
class EpisodeResult:
    task_id: str
    seed: int
    success: bool
    steps: int
    wrong_object: bool
    frames: list[np.ndarray] = field(default_factory=list)


def run_episode(
    env: TabletopEnv,
    expert: ScriptedExpert,
    task_id: str,
    seed: int,
    keep_frames: bool = False,
) -> EpisodeResult:
    """One episode of ``task_id`` with layout seed ``seed`` (the expert's knobs use it too)."""
    obs, info = env.reset(seed=seed, options={"task_id": task_id})
    expert.reset(task_id, seed=seed)
    frames = [obs["image"]] if keep_frames else []
    terminated = truncated = False
    while not (terminated or truncated):
        action = expert.act(WorldView.from_scene(env.scene_state()))
        obs, _, terminated, truncated, info = env.step(action)
        if keep_frames:
            frames.append(obs["image"])
    return EpisodeResult(task_id, seed, bool(info["success"]), env.steps, expert.wrong_object, frames)


def success_table(
    env: TabletopEnv, knobs: ExpertKnobs, task_ids: Iterable[str], seeds: Iterable[int]
) -> dict[str, list[EpisodeResult]]:
    """task id -> the episode results for every seed."""
    expert = ScriptedExpert(knobs, env.action_spec)
    seeds = list(seeds)
    return {t: [run_episode(env, expert, t, s) for s in seeds] for t in task_ids}
