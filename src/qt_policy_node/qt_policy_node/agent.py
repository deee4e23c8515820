"""The policy node's decision path in one process, without ROS: :class:`PolicyAgent`.

Why it is part of the runtime: evaluators (qt_eval: in process, and policy-rollout collection)
must decide exactly as the node does. So the agent is built from the node's own parameters and
parts: :class:`PolicyController` (newest image -> PolicyDecoder -> SafetyLayer, with the slew
limit and every hold rule) and, for models with proprio, the node's :class:`ProprioAssembler`.
The command it returns is what qt_msgs/ArmAction carries (float32 values). No simulator here:
callers bring the observations.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from qt_common.action_spec import ActionSpec

from qt_policy_node import providers
from qt_policy_node.controller import PolicyController, TickResult
from qt_policy_node.decoder import PolicyDecoder
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.proprio import ProprioAssembler, card_layout
from qt_policy_node.safety import INSTRUCTION_OK, SafetyConfig, SafetyLayer
from qt_policy_node.text_encoder import load_text_encoder


def load_spec(path: str) -> ActionSpec:
    """The node's ``action_spec_file`` parameter: empty = the default spec."""
    if not path:
        return ActionSpec.default()
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
