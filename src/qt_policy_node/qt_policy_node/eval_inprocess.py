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
import onnxruntime
from qt_common.action_spec import ActionSpec

from qt_policy_node import providers
from qt_policy_node.controller import PolicyController, TickResult
from qt_policy_node.decoder import PolicyDecoder
from qt_policy_node.eval_plan import EpisodeSpec
from qt_policy_node.eval_report import EpisodeResult
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.proprio import ProprioAssembler, card_layout
from qt_policy_node.safety import INSTRUCTION_OK, SafetyConfig, SafetyLayer
from qt_policy_node.text_encoder import load_text_encoder


def load_spec(path: str) -> ActionSpec:
    """The node's ``action_spec_file`` parameter: empty = the default spec."""
    if not path:
        return ActionSpec.default()
    import json

    return ActionSpec.from_dict(json.loads(Path(path).read_text()))


class PolicyAgent:
    """The policy node's decision path for one process, built from the node's parameters."""

    def __init__(self, model_dir: Path, params: dict[str, Any]):
        spec = load_spec(str(params["action_spec_file"]))
        requested = providers.normalize(list(params["execution_providers"]))
        self.decoder = PolicyDecoder(model_dir, providers.usable(requested, onnxruntime.get_available_providers()),
                                     expected_action_spec_digest=spec.digest(), threads=int(params["intra_op_threads"]),
                                     allow_cpu_fallback=True)
        layout = card_layout(self.decoder.card)
        self.spec = spec
        safety = SafetyLayer(spec, SafetyConfig(
            image_timeout_s=float(params["image_timeout_s"]), heartbeat_timeout_s=float(params["heartbeat_timeout_s"]),
            require_heartbeat=False,  # no operator station in an evaluation
            proprio_timeout_s=float(params["proprio_timeout_s"]), require_proprio=self.decoder.proprio_dim > 0,
            slew_limit=tuple(float(v) for v in params["slew_limit"])))
        encoder = None
        if bool(params["use_text_encoder"]):
            encoder, _ = load_text_encoder(self.decoder.card, str(params["text_encoder_path"]))
        text = self.decoder.card["text_encoder"]
        embedder = InstructionEmbedder(text.get("embeddings", {}), int(text["dim"]), encoder)
        self.controller = PolicyController(self.decoder, safety, embedder, self.decoder.proprio_dim)
        self.proprio = None if self.controller.proprio is None else ProprioAssembler(
            layout, self.controller.proprio, list(params["finger_joints"]), float(params["finger_travel_m"]))

    def begin_episode(self, instruction: str) -> None:
        """As the ROS evaluation's activate: no old frame, the slew ramp from stop, the new goal."""
        self.controller.forget_observation()
        self.controller.safety.restart()
        embedder = self.controller.embedder
        embedder.set(instruction)
        if embedder.state != INSTRUCTION_OK:
            raise ValueError(f"instruction {instruction!r}: {embedder.problem}")

    def act(self, image: np.ndarray, ee_pos: np.ndarray, ee_quat_wxyz: np.ndarray, fingers: np.ndarray,
            now_s: float) -> tuple[np.ndarray, TickResult]:
        """One control tick on a fresh frame: the command values (after the safety layer)."""
        controller = self.controller
        controller.set_image(image, now_s)
        if self.proprio is not None:
            self.proprio.set_state(ee_pos, ee_quat_wxyz, fingers)
            controller.proprio_updated(now_s)
        result = controller.tick(now_s, None)
        # What the driver executes is what qt_msgs/ArmAction carries: float32 values.
        return result.command.values.astype(np.float32).astype(np.float64), result


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
