"""Runs an exported policy (models/<name>/policy.onnx + policy.json) with ONNX Runtime.

numpy + onnxruntime only: no torch, no rclpy, so the robot runtime stays small and this class
can be tested and benchmarked without ROS. The ONNX graph already contains the whole greedy
autoregressive decode (docs/CONTRACTS.md "Policy artefact"), so one ``decode`` is one
``session.run``.

Why the checks: a card whose action spec or image size differs from the node's configuration
would silently drive the arm with wrongly scaled commands, so it is refused with an error that
names the field and both values. ONNX Runtime quietly falls back to CPU when CUDA libraries
are missing (../shared/FIELD-NOTES.md), so a requested GPU provider that is not the one
running raises unless the caller explicitly allows the fallback, and ``provider`` always says
which provider runs. The graph's own input and output shapes and dtypes are checked against
the card, and the card's action-spec digest is recomputed, at load: an edited card or a graph
exported for another configuration fails before activation, with the field named, instead of
at the first decode (or never, for an edited action range).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from qt_common.action_spec import ActionSpec

from qt_policy_node.instructions import vector_problem

CARD_FORMAT = "qt-policy"
CARD_SCHEMA_VERSION = 1
CPU = "CPUExecutionProvider"
_REQUIRED = ("model_id", "algorithm", "action_spec", "action_spec_digest", "image", "proprio_dim",
             "text_encoder", "control_rate_hz", "onnx_io")

# ONNX Runtime's type names of the graph's tensors.
_ONNX_TYPES = {np.dtype(np.uint8): "tensor(uint8)", np.dtype(np.float32): "tensor(float)",
               np.dtype(np.int64): "tensor(int64)"}

log = logging.getLogger(__name__)


class PolicyCardError(ValueError):
    """The artefact is malformed or does not match what the caller is configured for."""


class ProviderError(RuntimeError):
    """The requested execution provider is not the one ONNX Runtime actually runs."""


@dataclass(frozen=True)
class DecodeResult:
    bins: np.ndarray  # int64 [D]
    q_values: np.ndarray  # float32 [D], Q of each chosen bin (probability for a BC model)
    action: np.ndarray  # float32 [D], physical units of the action spec
    latency_ms: float  # wall time of session.run plus input copies


def load_card(model_dir: Path) -> dict[str, Any]:
    """Read and structurally check policy.json; raises PolicyCardError naming the field."""
    path = Path(model_dir) / "policy.json"
    if not path.is_file():
        raise PolicyCardError(f"{model_dir}: no policy.json (expected models/<name>/policy.json + policy.onnx)")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise PolicyCardError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(card, dict) or card.get("format") != CARD_FORMAT:
        got = card.get("format") if isinstance(card, dict) else type(card).__name__
        raise PolicyCardError(f"{path}: field 'format' must be {CARD_FORMAT!r}, got {got!r}")
    if card.get("schema_version") != CARD_SCHEMA_VERSION:
        raise PolicyCardError(
            f"{path}: field 'schema_version' is {card.get('schema_version')!r}; "
            f"this decoder reads {CARD_SCHEMA_VERSION}"
        )
    missing = [k for k in _REQUIRED if k not in card]
    if missing:
        raise PolicyCardError(f"{path}: missing field(s) {missing}")
    return card


class PolicyDecoder:
    """Greedy decoding of an exported policy with preallocated batch-1 buffers.

    ``expected_action_spec_digest`` / ``expected_image_size`` (height, width) are what the
    node is configured for; None skips that check. ``allow_cpu_fallback`` turns the
    provider mismatch error into a logged error plus ``fallback = True``. One instance is not
    thread-safe (``decode`` reuses its buffers): call it from one thread or callback group.
    """

    def __init__(
        self,
        model_dir: str | Path,
        providers: list[str] | tuple[str, ...] = (CPU,),
        *,
        expected_action_spec_digest: str | None = None,
        expected_image_size: tuple[int, int] | None = None,
        threads: int = 1,
        allow_cpu_fallback: bool = False,
        provider_options: dict[str, dict[str, str]] | None = None,
    ):
        self.model_dir = Path(model_dir)
        self.card = load_card(self.model_dir)
        self._check_expectations(expected_action_spec_digest, expected_image_size)
        onnx_path = self.model_dir / "policy.onnx"
        if not onnx_path.is_file():
            raise PolicyCardError(f"{self.model_dir}: policy.json present but policy.onnx missing")
        requested = list(providers)
        if not requested:
            raise ValueError("providers: expected at least one execution provider name")
        available = ort.get_available_providers()
        unknown = [p for p in requested if p not in available]
        if unknown and not allow_cpu_fallback:
            raise ProviderError(
                f"providers: {unknown} not available in this onnxruntime build (available: {available}); "
                "install onnxruntime-gpu (never together with onnxruntime) or request CPUExecutionProvider"
            )
        options = ort.SessionOptions()
        options.intra_op_num_threads = max(1, int(threads))
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        chosen = [p for p in requested if p in available] or [CPU]
        extra = provider_options or {}  # e.g. TensorRT fp16 (providers.options)
        self.session = ort.InferenceSession(
            str(onnx_path), options, providers=[(p, extra[p]) if p in extra else p for p in chosen]
        )
        self.provider: str = self.session.get_providers()[0]
        self.fallback = self.provider != requested[0]
        if self.fallback:
            message = (f"policy decoder: requested provider {requested[0]} but ONNX Runtime runs {self.provider} "
                       f"(session providers: {self.session.get_providers()})")
            if not allow_cpu_fallback:
                raise ProviderError(message)
            log.error("%s; continuing because allow_cpu_fallback=True", message)
        self._bind_io()

    # ---- card ----------------------------------------------------------------------------

    def _check_expectations(self, digest: str | None, image_size: tuple[int, int] | None) -> None:
        card = self.card
        try:
            own_digest = ActionSpec.from_dict(card["action_spec"]).digest()
        except (ValueError, TypeError) as exc:
            raise PolicyCardError(f"policy.json field 'action_spec': {exc}") from None
        if own_digest != card["action_spec_digest"]:
            raise PolicyCardError(
                f"policy.json field 'action_spec_digest': card says {card['action_spec_digest']!r} but its "
                f"action_spec hashes to {own_digest!r} (the action spec was edited after export)"
            )
        if digest is not None and card["action_spec_digest"] != digest:
            raise PolicyCardError(
                f"policy.json field 'action_spec_digest': model has {card['action_spec_digest']!r}, "
                f"node is configured for {digest!r} (the model was trained with another action spec)"
            )
        image = card["image"]
        have = (int(image["height"]), int(image["width"]))
        if image_size is not None and have != tuple(int(v) for v in image_size):
            raise PolicyCardError(
                f"policy.json field 'image' (height, width): model has {have}, node is configured for "
                f"{tuple(image_size)}"
            )
        if image.get("encoding", "rgb8") != "rgb8":
            raise PolicyCardError(f"policy.json field 'image.encoding': expected 'rgb8', got {image.get('encoding')!r}")

    @property
    def image_size(self) -> tuple[int, int]:
        return int(self.card["image"]["height"]), int(self.card["image"]["width"])

    @property
    def embed_dim(self) -> int:
        return int(self.card["text_encoder"]["dim"])

    @property
    def proprio_dim(self) -> int:
        return int(self.card["proprio_dim"])

    @property
    def num_dims(self) -> int:
        return len(self.card["action_spec"]["dimensions"])

    @property
    def precision(self) -> str:
        """"fp32" or "int8" (``qt export --quantize int8``); cards written before the field are fp32."""
        return str(self.card.get("precision", "fp32"))

    @property
    def dim_names(self) -> list[str]:
        return [d["name"] for d in self.card["action_spec"]["dimensions"]]

    # ---- running -------------------------------------------------------------------------

    def _check_graph(self, buffers: dict[str, np.ndarray]) -> None:
        """The graph's inputs and outputs have the names, dtypes and shapes the card implies."""
        names = {i.name for i in self.session.get_inputs()}
        expected = {"image", "instruction_embedding"} | ({"proprio"} if self.proprio_dim > 0 else set())
        if names != expected:
            raise PolicyCardError(
                f"policy.onnx inputs {sorted(names)} do not match the card (proprio_dim={self.proprio_dim}): "
                f"expected {sorted(expected)}"
            )
        outputs = [o.name for o in self.session.get_outputs()]
        if outputs[:3] != ["bins", "q_values", "action"]:
            raise PolicyCardError(f"policy.onnx outputs: expected ['bins', 'q_values', 'action'], got {outputs}")
        card_field = {"image": "image", "instruction_embedding": "text_encoder.dim", "proprio": "proprio_dim",
                      "bins": "action_spec.dimensions", "q_values": "action_spec.dimensions",
                      "action": "action_spec.dimensions"}
        for arg in [*self.session.get_inputs(), *self.session.get_outputs()]:
            if arg.name not in buffers:
                continue
            want = buffers[arg.name]
            # A dimension given as a name (or None) is free in the graph; a number must match, and
            # the batch dimension must admit batch 1.
            shape_ok = len(arg.shape) == want.ndim and all(
                not isinstance(have, int) or have == size for have, size in zip(arg.shape, want.shape, strict=True)
            )
            if arg.type != _ONNX_TYPES[want.dtype] or not shape_ok:
                expected_shape = ["batch", *want.shape[1:]]
                raise PolicyCardError(
                    f"policy.onnx tensor {arg.name!r}: graph has {arg.type} {list(arg.shape)}, policy.json field "
                    f"{card_field[arg.name]!r} implies {_ONNX_TYPES[want.dtype]} {expected_shape}"
                )

    def _bind_io(self) -> None:
        h, w = self.image_size
        d = self.num_dims
        self._image = np.zeros((1, h, w, 3), np.uint8)
        self._embedding = np.zeros((1, self.embed_dim), np.float32)
        self._proprio = np.zeros((1, self.proprio_dim), np.float32)
        self._bins = np.zeros((1, d), np.int64)
        self._q = np.zeros((1, d), np.float32)
        self._action = np.zeros((1, d), np.float32)
        self._check_graph({"image": self._image, "instruction_embedding": self._embedding, "proprio": self._proprio,
                           "bins": self._bins, "q_values": self._q, "action": self._action})
        self._binding = self.session.io_binding()
        self._binding.bind_cpu_input("image", self._image)
        self._binding.bind_cpu_input("instruction_embedding", self._embedding)
        if self.proprio_dim > 0:
            self._binding.bind_cpu_input("proprio", self._proprio)
        for name, array in (("bins", self._bins), ("q_values", self._q), ("action", self._action)):
            self._binding.bind_output(name, "cpu", 0, array.dtype, list(array.shape), array.ctypes.data)

    def _check_inputs(self, image: np.ndarray, embedding: np.ndarray, proprio: np.ndarray | None) -> None:
        h, w = self.image_size
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.shape != (h, w, 3):
            got = f"{image.dtype} {image.shape}" if isinstance(image, np.ndarray) else type(image).__name__
            raise ValueError(f"image: expected uint8 [{h}, {w}, 3] RGB, got {got}")
        problem = vector_problem("embedding", embedding, self.embed_dim)
        if self.proprio_dim > 0:
            if proprio is None:
                raise ValueError(f"proprio: this model needs {self.proprio_dim} values, got None")
            problem = problem or vector_problem("proprio", proprio, self.proprio_dim)
        if problem:
            raise ValueError(problem)

    def decode(self, image: np.ndarray, embedding: np.ndarray, proprio: np.ndarray | None = None, *,
               copy: bool = True) -> DecodeResult:
        """One greedy decode of one observation (uint8 HxWx3 RGB at the card's size).

        ``copy=False`` returns views of the bound output buffers (no allocation; the next decode
        overwrites them): the policy node's control loop uses that.
        """
        self._check_inputs(image, embedding, proprio)
        started = time.perf_counter()
        self._image[0] = image
        self._embedding[0] = embedding
        if self.proprio_dim > 0:
            self._proprio[0] = proprio
        self.session.run_with_iobinding(self._binding)
        latency_ms = (time.perf_counter() - started) * 1e3
        if not copy:
            return DecodeResult(self._bins[0], self._q[0], self._action[0], latency_ms)
        return DecodeResult(self._bins[0].copy(), self._q[0].copy(), self._action[0].copy(), latency_ms)

    def decode_batch(self, images: np.ndarray, embeddings: np.ndarray, proprio: np.ndarray | None = None
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Batched decode for offline evaluation: (bins [B, D], q_values [B, D], action [B, D])."""
        h, w = self.image_size
        if images.dtype != np.uint8 or images.ndim != 4 or images.shape[1:] != (h, w, 3):
            raise ValueError(f"images: expected uint8 [B, {h}, {w}, 3], got {images.dtype} {images.shape}")
        feeds = {"image": images, "instruction_embedding": np.asarray(embeddings, np.float32)}
        if self.proprio_dim > 0:
            if proprio is None:
                raise ValueError(f"proprio: this model needs [B, {self.proprio_dim}] values, got None")
            feeds["proprio"] = np.asarray(proprio, np.float32)
        bins, q, action = self.session.run(["bins", "q_values", "action"], feeds)
        return bins, q, action

    def known_embedding(self, instruction: str) -> np.ndarray | None:
        """The card's cached embedding of an instruction it was trained or evaluated on, if any."""
        vector = self.card["text_encoder"].get("embeddings", {}).get(instruction)
        return None if vector is None else np.asarray(vector, np.float32)
