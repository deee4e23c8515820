"""Gymnasium environment of the tabletop arm: image + proprio observations, language tasks.

    from qt_sim.env import TabletopEnv
    env = TabletopEnv(width=96, height=96)
    obs, info = env.reset(seed=3, options={"task_id": "place/red/yellow"})
    obs, reward, terminated, truncated, info = env.step(env.action_space.sample())

Action: Box [-1, 1]^5, normalised ``dx dy dz dyaw gripper``; converted to physical units per
control step by the shared action spec (``ActionSpec.normalized_to_values``), then executed by
qt_sim.scene for one control period. Observation: Dict with ``image`` (uint8 HxWx3 from the
fixed camera) and ``proprio`` (float32, layout in qt_sim.proprio). ``info`` carries
``task_id``, ``instruction``, ``instruction_split``, ``success``, ``seed`` and ``step``.
Reward is sparse: 1.0 on the step the task's success check first holds (the episode then
terminates), else 0.0; the episode is truncated after ``horizon`` steps.

Determinism: ``reset(seed=s)`` seeds everything random (task choice, wording, layout), and MuJoCo
is deterministic, so the same seed and actions give bit-identical episodes in any process.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from qt_common.action_spec import ActionSpec

from qt_sim import render
from qt_sim.proprio import PROPRIO_HIGH, PROPRIO_LOW, proprio_vector
from qt_sim.scene import TabletopScene
from qt_sim.tasks import SPLITS, TASK_IDS, SuccessTracker, Task, instructions, parse_task
from qt_sim.world import SceneState

DEFAULT_HORIZON = 100
DEFAULT_SIZE = 96


class TabletopEnv(gym.Env):
    """The simulated arm with one task per episode. See the module docstring."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": ["rgb_array"], "render_fps": 10}

    def __init__(
        self,
        width: int = DEFAULT_SIZE,
        height: int = DEFAULT_SIZE,
        horizon: int = DEFAULT_HORIZON,
        control_period_s: float = 0.1,
        tasks: tuple[str, ...] | None = None,
        instruction_split: str = "train",
        camera: str = "front",
        render_images: bool = True,
        action_spec: ActionSpec | None = None,
        render_mode: str | None = "rgb_array",
    ):
        if horizon < 1:
            raise ValueError(f"horizon: expected a positive number of steps, got {horizon}")
        if instruction_split not in SPLITS:
            raise ValueError(f"instruction_split: expected one of {SPLITS}, got {instruction_split!r}")
        self.tasks = tuple(tasks) if tasks else TASK_IDS
        for task_id in self.tasks:
            parse_task(task_id)
        self.action_spec = action_spec or ActionSpec.default()
        if self.action_spec.names != ["dx", "dy", "dz", "dyaw", "gripper"]:
            raise ValueError(f"action_spec: expected dimensions dx dy dz dyaw gripper, got {self.action_spec.names}")
        self.horizon = horizon
        self.instruction_split = instruction_split
        self.render_mode = render_mode
        self.scene = TabletopScene(control_period_s=control_period_s)
        self.width, self.height = width, height
        self._renderer = render.CameraRenderer(self.scene.model, camera, width, height) if render_images else None
        self.action_space = spaces.Box(-1.0, 1.0, shape=(5,), dtype=np.float32)
        self.observation_space = spaces.Dict(
            {
                "image": spaces.Box(0, 255, shape=(height, width, 3), dtype=np.uint8),
                "proprio": spaces.Box(
                    np.array(PROPRIO_LOW, np.float32), np.array(PROPRIO_HIGH, np.float32), dtype=np.float32
                ),
            }
        )
        self.task: Task | None = None
        self.instruction = ""
        self.seed_used: int | None = None
        self.split_used = instruction_split
        self.steps = 0
        self.success = False
        self._tracker: SuccessTracker | None = None
        self._state: SceneState | None = None

    # ---- gymnasium API --------------------------------------------------------------------

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        """Options: ``task_id`` (else drawn from ``tasks``), ``instruction`` (else a wording of
        the split drawn by the seed), ``instruction_split`` ("train" / "heldout")."""
        super().reset(seed=seed)
        options = dict(options or {})
        unknown = set(options) - {"task_id", "instruction", "instruction_split"}
        if unknown:
            raise ValueError(f"options: unknown keys {sorted(unknown)}")
        rng = self.np_random
        task_id = options.get("task_id") or self.tasks[int(rng.integers(len(self.tasks)))]
        self.task = parse_task(task_id)
        split = options.get("instruction_split") or self.instruction_split
        wordings = instructions(task_id, split)
        chosen = wordings[int(rng.integers(len(wordings)))]
        self.instruction = options.get("instruction") or chosen
        self.seed_used = seed
        self.split_used = split if options.get("instruction") is None else "custom"
        self.scene.reset(rng, self.task.cube, self.task.target)
        self.steps = 0
        self.success = False
        state = self._state = self.scene.state()
        self._tracker = SuccessTracker(self.task, state)
        return self._observation(state), self._info()

    def step(self, action: np.ndarray):
        """One control step of a normalised action in [-1, 1]^5 (values outside are clipped)."""
        action = np.asarray(action, dtype=np.float64)
        if action.shape != (5,) or not np.isfinite(action).all():
            raise ValueError(f"action: expected 5 finite numbers in [-1, 1], got {action!r}")
        return self.step_values(self.action_spec.normalized_to_values(action))

    def step_values(self, values: np.ndarray):
        """One control step of physical action values (the ArmAction ``values`` units)."""
        if self._tracker is None:
            raise RuntimeError("step before reset: call reset() first")
        self.scene.apply(self.action_spec.clip(values))
        self.steps += 1
        state = self._state = self.scene.state()
        terminated = self._tracker.update(state)
        self.success = self.success or terminated
        truncated = not terminated and self.steps >= self.horizon
        return self._observation(state), float(terminated), terminated, truncated, self._info()

    def render(self) -> np.ndarray | None:
        return self._renderer.render(self.scene.data) if self._renderer else None

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    # ---- helpers --------------------------------------------------------------------------

    def scene_state(self) -> SceneState:
        """Ground-truth state (for the scripted expert and tests; a policy must not use it).

        The state read at the last reset or step (reading it costs about as much as rendering a
        small frame, and nothing moves between steps); read-only by contract."""
        if self._state is None:
            self._state = self.scene.state()
        return self._state

    def _observation(self, state: SceneState) -> dict[str, np.ndarray]:
        image = self.render() if self._renderer else np.zeros((self.height, self.width, 3), dtype=np.uint8)
        return {"image": image, "proprio": proprio_vector(state.ee_pos, state.ee_yaw, state.gripper_opening)}

    def _info(self) -> dict[str, Any]:
        assert self.task is not None
        return {
            "task_id": self.task.task_id,
            "instruction": self.instruction,
            "instruction_split": self.split_used,
            "success": self.success,
            "seed": self.seed_used,
            "step": self.steps,
        }
