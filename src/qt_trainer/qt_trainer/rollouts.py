"""Success on held-out layouts, measured in process while a model trains (torch, MuJoCo, no ROS).

Why here and not only in ``qt eval``: a learning run is judged by success, never by its loss, and
checking every few thousand steps picks the checkpoint to ship and shows the learning curve.
The episode follows the sim driver's semantics as the policy node's in-process evaluation does
(reset with task, seed and wording; one tick that executes nothing; then one greedy decision per
frame, executed as float32 values, until the success check or the horizon), so the figures
compare with ``qt eval``. What differs: the PyTorch model instead of the ONNX graph (parity is
tested in tests/trainer/test_export.py) and no safety-layer slew limit.

Layouts are seeds from ``VALIDATION_SEED_BASE`` up while training (they choose the checkpoint)
and from ``TEST_SEED_BASE`` (``qt eval``'s held-out layouts) for the figure reported; collection
stays below both by default.
The observation is built from the simulator state exactly as the dataset was from the bags:
the camera at the dataset's image size, the proprio layout named by the dataset
(qt_common.proprio) and, in state mode, the object features (qt_common.proprio.object_features).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from qt_common.action_spec import ActionSpec
from qt_common.stats import wilson_interval

from qt_common import proprio as proprio_layouts
from qt_trainer.model import QTransformer

TEST_SEED_BASE = 100_000  # qt eval's held-out layouts: the reported figures
VALIDATION_SEED_BASE = 200_000  # success checks during training (they pick best.pt)


def task_wordings(tasks: Sequence[str], instructions: Sequence[str]) -> dict[str, str]:
    """task id -> one of ``instructions`` (the model's known wordings) that names it."""
    from qt_sim.tasks import task_for_instruction

    wordings: dict[str, str] = {}
    for text in instructions:
        found = task_for_instruction(text)
        if found and found[0] in tasks:
            wordings.setdefault(found[0], text)
    missing = [t for t in tasks if t not in wordings]
    if missing:
        raise ValueError(f"tasks {missing}: none of the model's instructions names them")
    return wordings


@dataclass
class RolloutReport:
    per_task: dict[str, tuple[int, int]] = field(default_factory=dict)  # task -> (successes, episodes)
    wall_s: float = 0.0

    @property
    def successes(self) -> int:
        return sum(k for k, _ in self.per_task.values())

    @property
    def episodes(self) -> int:
        return sum(n for _, n in self.per_task.values())

    @property
    def rate(self) -> float:
        return self.successes / self.episodes if self.episodes else 0.0

    def to_dict(self) -> dict[str, Any]:
        low, high = wilson_interval(self.successes, self.episodes)
        return {"successes": self.successes, "episodes": self.episodes, "success_rate": self.rate,
                "ci95": [low, high], "per_task": {t: list(v) for t, v in self.per_task.items()},
                "wall_s": self.wall_s}

    def line(self) -> str:
        low, high = wilson_interval(self.successes, self.episodes)
        return f"{self.successes}/{self.episodes} = {self.rate:.0%} (95 % CI {low:.0%}-{high:.0%})"


class RolloutEvaluator:
    """Runs a model greedily on held-out layouts of the dataset's tasks.

    ``wordings`` maps each task id to the instruction used for it and ``embeddings`` each
    instruction to its vector (the trainer's frozen embeddings of the dataset's wordings).
    """

    def __init__(self, *, tasks: Sequence[str], wordings: dict[str, str], embeddings: dict[str, np.ndarray],
                 image_hw: tuple[int, int], proprio_layout: str, obs_mode: str, spec: ActionSpec,
                 control_period_s: float, episodes_per_task: int, horizon: int = 0,
                 seed_base: int = VALIDATION_SEED_BASE):
        from qt_sim.env import DEFAULT_HORIZON, TabletopEnv  # lazily: training without evaluation needs no sim

        self.tasks = list(tasks)
        self.wordings, self.embeddings = wordings, embeddings
        self.proprio_layout, self.obs_mode, self.spec = proprio_layouts.layout(proprio_layout).name, obs_mode, spec
        self.episodes_per_task, self.seed_base = episodes_per_task, seed_base
        self.env = TabletopEnv(width=image_hw[1], height=image_hw[0], horizon=horizon or DEFAULT_HORIZON,
                               control_period_s=control_period_s, tasks=tuple(self.tasks), action_spec=spec,
                               render_images=obs_mode == "image")

    def close(self) -> None:
        self.env.close()

    @torch.no_grad()
    def evaluate(self, model: QTransformer, device: torch.device | str = "cpu") -> RolloutReport:
        was_training = model.training
        model.eval()
        report = RolloutReport()
        started = time.perf_counter()
        try:
            for task_id in self.tasks:
                wins = sum(self._episode(model, device, task_id, self.seed_base + i)
                           for i in range(self.episodes_per_task))
                report.per_task[task_id] = (wins, self.episodes_per_task)
        finally:
            model.train(was_training)
        report.wall_s = time.perf_counter() - started
        return report

    def _observation(self, image: np.ndarray, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor | None]:
        from qt_sim.world import object_poses

        state = self.env.scene_state()
        if self.obs_mode == "image":
            obs = torch.from_numpy(np.ascontiguousarray(image))[None]
        else:
            obs = torch.from_numpy(proprio_layouts.object_features(object_poses(state)[None]))
        proprio = None
        if self.proprio_layout != "none":
            fingers = state.joint_positions[-2:]
            vector = proprio_layouts.build(self.proprio_layout, state.ee_pos, state.ee_quat, fingers)
            proprio = torch.from_numpy(vector)[None].to(device)
        return obs.to(device), proprio

    def _episode(self, model: QTransformer, device: torch.device | str, task_id: str, seed: int) -> bool:
        instruction = self.wordings[task_id]
        embedding = torch.from_numpy(np.asarray(self.embeddings[instruction], np.float32))[None].to(device)
        self.env.reset(seed=seed, options={"task_id": task_id, "instruction": instruction})
        obs, _, terminated, truncated, _ = self.env.step_values(np.zeros(self.spec.num_dims))  # the driver's first tick
        while not (terminated or truncated):
            observation, proprio = self._observation(obs["image"], device)
            bins, _ = model.greedy(observation, embedding, proprio)
            values = self.spec.bins_to_values(bins[0].cpu().numpy()).astype(np.float32).astype(np.float64)
            obs, _, terminated, truncated, _ = self.env.step_values(values)
        return bool(terminated)
