"""In-process evaluation: the MuJoCo env and the policy node's own decision path, no ROS.

Fast enough to run during training (no processes, no DDS, no wall-clock rate), and built to
decide exactly as the ROS path does on the same seed:

* the decision path is the node's: :class:`PolicyController` (newest image -> PolicyDecoder ->
  SafetyLayer, including the slew limit and every hold rule) built from the same parameters
  (config/run.yaml) and restarted at each episode start as ``qt eval --mode ros`` reactivates
  the node;
* the command is what the sim driver executes: the ArmAction values, which travel as float32;
* the observation is what the sim driver publishes: the env's camera frame, and for models
  with proprio the card's layout built by the node's own :class:`ProprioAssembler` from the
  end-effector pose and finger joints the driver publishes on ``ee_pose`` / ``joint_states``;
* the episode is the driver's: reset with the task, seed and wording, then one tick before
  any command (the driver's first tick executes nothing: no decision on this episode exists
  yet), then one decision per frame, executed on the next tick, until the success check or
  the horizon (which counts that first tick, as the driver's does).

tests/e2e/test_eval_parity.py runs both modes on the same seed and compares every command.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from qt_policy_node.agent import PolicyAgent

from qt_eval.plan import EpisodeSpec
from qt_eval.report import EpisodeResult


def run_inprocess(model_dir: Path, params: dict[str, Any], plan: list[EpisodeSpec], *, horizon: int = 100,
                  keep_frames: Callable[[int, EpisodeSpec], bool] = lambda i, s: False,
                  keep_executed: bool = False,
                  progress: Callable[[int, EpisodeResult], None] = lambda i, r: None) -> list[EpisodeResult]:
    from qt_sim.env import TabletopEnv

    agent = PolicyAgent(model_dir, params)
    height, width = agent.decoder.image_size
    period = 1.0 / float(agent.decoder.card["control_rate_hz"])
    env = TabletopEnv(width=width, height=height, horizon=horizon, control_period_s=period,
                      tasks=tuple(sorted({s.task_id for s in plan})), action_spec=agent.spec)
    results = []
    try:
        for index, spec in enumerate(plan):
            result = _episode(env, agent, spec, period, keep_frames(index, spec), keep_executed)
            results.append(result)
            progress(index, result)
    finally:
        env.close()
    return results


def _episode(env: Any, agent: PolicyAgent, spec: EpisodeSpec, period: float, keep_frames: bool,
             keep_executed: bool) -> EpisodeResult:
    started = time.perf_counter()
    env.reset(seed=spec.seed, options={"task_id": spec.task_id, "instruction": spec.instruction})
    agent.begin_episode(spec.instruction)
    obs, _, terminated, truncated, _ = env.step_values(np.zeros(agent.spec.num_dims))  # the driver's first tick
    result = EpisodeResult(spec.task_id, spec.seed, spec.instruction, spec.split, "failure", 0, 0.0, 0.0)
    if keep_frames:
        result.frames.append(obs["image"])
    while not (terminated or truncated):
        state = env.scene_state()
        values, tick = agent.act(obs["image"], state.ee_pos, state.ee_quat, state.joint_positions[-2:],
                                 result.steps * period)
        if tick.decoded:
            result.decode_ms.append(tick.inference_latency_ms)
        if keep_executed:
            result.executed.append(values)
        obs, _, terminated, truncated, _ = env.step_values(values)
        result.steps += 1
        if keep_frames:
            result.frames.append(obs["image"])
    result.outcome = "success" if terminated else "failure"
    result.wall_s = time.perf_counter() - started
    result.control_rate_hz = (result.steps + 1) / result.wall_s if result.wall_s > 0 else 0.0
    return result
