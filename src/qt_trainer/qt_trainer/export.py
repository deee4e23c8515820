"""``qt export``: a trained model -> models/<name>/policy.onnx + policy.json (docs/CONTRACTS.md).

The ONNX graph is the whole greedy decode: the image and the instruction embedding go in,
the observation is encoded once, and an unrolled loop emits every action dimension (argmax,
then that bin's embedding as the next token). One ``session.run`` per control step, no Python
in the loop on the robot. Bins become physical values by a lookup table built from
``ActionSpec.bins_to_values``, so the graph cannot disagree with the action spec.

After writing, the export runs the ONNX graph on random inputs and refuses to finish if its
bins differ from the PyTorch decoder's (a broken artefact never reaches the robot).
``--quantize int8`` then quantizes that verified graph (qt_trainer.quantize) into its own model
directory; its card says ``precision: "int8"``, how often its bins match fp32, how much of the
arithmetic the int8 convolutions carry and how fast both graphs decoded on the exporting machine;
``qt export`` warns when INT8 is not faster there (it is not at the default 64 px size).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset
from qt_common.proprio import layout_for_dim
from torch import Tensor, nn

from qt_trainer.checkpoint import load_checkpoint
from qt_trainer.config import ModelConfig
from qt_trainer.model import QTransformer
from qt_trainer.onnx_util import OPSET, onnx_export
from qt_trainer.quantize import (
    DEFAULT_CALIBRATION_FRAMES,
    METHOD,
    QUANTIZED_OPS,
    WORTHWHILE_SPEEDUP,
    bin_agreement,
    conv_flop_share,
    dataset_feeds,
    decode_bins,
    decode_speed,
    quantize_int8,
    split_frames,
)
from qt_trainer.train import BEST_NAME, CHECKPOINT_NAME

CARD_FORMAT = "qt-policy"
CARD_SCHEMA_VERSION = 1
INPUTS = ("image", "instruction_embedding", "proprio")
OUTPUTS = ("bins", "q_values", "action")
DEFAULT_CONTROL_RATE_HZ = 10.0


class PolicyGraph(nn.Module):
    """What the ONNX file computes: greedy decode + bins -> physical action."""

    def __init__(self, model: QTransformer, spec: ActionSpec):
        super().__init__()
        if spec.num_dims != model.cfg.num_dims or spec.num_bins != model.cfg.num_bins:
            raise ValueError(
                f"action spec: model has {model.cfg.num_dims} dims x {model.cfg.num_bins} bins, "
                f"spec has {spec.num_dims} x {spec.num_bins}"
            )
        self.model = model
        table = spec.bins_to_values(np.tile(np.arange(spec.num_bins)[:, None], (1, spec.num_dims)))  # [N, D]
        self.register_buffer("lut", torch.tensor(table.T.copy(), dtype=torch.float32))  # [D, N]

    def forward(self, image: Tensor, instruction_embedding: Tensor, proprio: Tensor | None = None
                ) -> tuple[Tensor, Tensor, Tensor]:
        bins, q_values = self.model.greedy(image, instruction_embedding, proprio)
        action = torch.gather(self.lut.unsqueeze(0).expand(bins.shape[0], -1, -1), 2, bins.unsqueeze(-1))[..., 0]
        return bins, q_values, action


def onnx_io(cfg: ModelConfig) -> dict[str, Any]:
    inputs = [
        {"name": "image", "dtype": "uint8", "shape": ["batch", cfg.image_height, cfg.image_width, 3]},
        {"name": "instruction_embedding", "dtype": "float32", "shape": ["batch", cfg.embed_dim]},
    ]
    if cfg.proprio_dim > 0:
        inputs.append({"name": "proprio", "dtype": "float32", "shape": ["batch", cfg.proprio_dim]})
    outputs = [
        {"name": "bins", "dtype": "int64", "shape": ["batch", cfg.num_dims]},
        {"name": "q_values", "dtype": "float32", "shape": ["batch", cfg.num_dims]},
        {"name": "action", "dtype": "float32", "shape": ["batch", cfg.num_dims]},
    ]
    return {"inputs": inputs, "outputs": outputs, "opset": OPSET}


def random_inputs(cfg: ModelConfig, batch: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Random but well-formed decoder inputs (unit-norm embeddings, like the text encoder's)."""
    emb = rng.standard_normal((batch, cfg.embed_dim)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    feeds = {
        "image": rng.integers(0, 256, (batch, cfg.image_height, cfg.image_width, 3), dtype=np.uint8),
        "instruction_embedding": emb,
    }
    if cfg.proprio_dim > 0:
        feeds["proprio"] = rng.standard_normal((batch, cfg.proprio_dim)).astype(np.float32)
    return feeds


def torch_decode(model: QTransformer, spec: ActionSpec, feeds: dict[str, np.ndarray]
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PyTorch reference of the exported graph (eval mode, no grad)."""
    graph = PolicyGraph(model, spec).eval()
    with torch.no_grad():
        args = [torch.from_numpy(feeds["image"]), torch.from_numpy(feeds["instruction_embedding"])]
        if "proprio" in feeds:
            args.append(torch.from_numpy(feeds["proprio"]))
        bins, q, action = graph(*args)
    return bins.numpy(), q.numpy(), action.numpy()


def write_onnx(model: QTransformer, spec: ActionSpec, path: Path) -> None:
    cfg = model.cfg
    graph = PolicyGraph(model, spec).eval()
    feeds = random_inputs(cfg, 1, np.random.default_rng(0))
    args = tuple(torch.from_numpy(feeds[name]) for name in INPUTS if name in feeds)
    names = [name for name in INPUTS if name in feeds]
    axes = {name: {0: "batch"} for name in (*names, *OUTPUTS)}
    tmp = path.with_name(path.name + ".tmp")
    with torch.no_grad():
        onnx_export(graph, args, tmp, names, list(OUTPUTS), axes)
    os.replace(tmp, path)


def verify_onnx(model: QTransformer, spec: ActionSpec, path: Path, samples: int = 16, seed: int = 1) -> None:
    """Refuse an artefact whose decode differs from PyTorch's on random inputs."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feeds = random_inputs(model.cfg, samples, np.random.default_rng(seed))
    bins, q, action = session.run(list(OUTPUTS), feeds)
    ref_bins, ref_q, ref_action = torch_decode(model, spec, feeds)
    if not np.array_equal(bins, ref_bins):
        raise RuntimeError(f"{path}: ONNX bins differ from PyTorch greedy decoding on {samples} random inputs")
    if not np.allclose(q, ref_q, atol=1e-4) or not np.allclose(action, ref_action, atol=1e-6):
        raise RuntimeError(f"{path}: ONNX q_values/action differ from PyTorch beyond tolerance")


def build_card(model: QTransformer, spec: ActionSpec, *, model_id: str, embeddings: dict[str, list[float]],
               text_encoder_id: str, control_rate_hz: float, training: dict[str, Any],
               proprio_layout: str = "", quantization: dict[str, Any] | None = None) -> dict[str, Any]:
    cfg = model.cfg
    card = {
        "format": CARD_FORMAT,
        "schema_version": CARD_SCHEMA_VERSION,
        "model_id": model_id,
        "algorithm": cfg.algorithm,
        "action_spec": spec.to_dict(),
        "action_spec_digest": spec.digest(),
        "image": {"height": cfg.image_height, "width": cfg.image_width, "encoding": "rgb8",
                  "mean": list(cfg.image_mean), "std": list(cfg.image_std), "scale": "pixel / 255"},
        "proprio_dim": cfg.proprio_dim,
        # Which vector (qt_common.proprio), fed raw: the graph standardises it with these statistics.
        "proprio_layout": proprio_layout or layout_for_dim(cfg.proprio_dim),
        "proprio_normalisation": {"mean": model.proprio_mean.tolist(), "std": model.proprio_std.tolist(),
                                  "applied": "inside policy.onnx"},
        "text_encoder": {"id": text_encoder_id, "dim": cfg.embed_dim, "embeddings": embeddings},
        "control_rate_hz": float(control_rate_hz),
        "onnx_io": onnx_io(cfg),
        "model": cfg.to_dict(),
        "training": training,
        "evaluation": {},
        # The node reports it; "int8" graphs carry how they were calibrated and how often their
        # bins match the fp32 graph of the same weights (qt_trainer.quantize).
        "precision": "int8" if quantization else "fp32",
    }
    if quantization:
        card["quantization"] = quantization
    return card


def export_policy(model: QTransformer, spec: ActionSpec, out_dir: Path, *, name: str,
                  embeddings: dict[str, list[float]], text_encoder_id: str, control_rate_hz: float = 10.0,
                  training: dict[str, Any] | None = None, verify: bool = True, proprio_layout: str = "",
                  int8: Int8Frames | None = None) -> Path:
    """Write policy.onnx + policy.json into ``out_dir``; returns the directory.

    ``int8``: quantize the (verified) fp32 graph with these calibration frames and ship only the
    INT8 graph; the fp32 graph is an intermediate file, removed afterwards.
    """
    if model.cfg.obs_mode != "image":
        raise ValueError(f"obs_mode {model.cfg.obs_mode!r}: only image models run in the policy node; evaluate "
                         "state-mode models in process (qt train --eval-every, bench/learning_ladder.py)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for text, vector in embeddings.items():
        if len(vector) != model.cfg.embed_dim:
            raise ValueError(f"embeddings[{text!r}]: expected {model.cfg.embed_dim} values, got {len(vector)}")
    model = model.eval()
    onnx_path = out_dir / "policy.onnx"
    fp32_path = onnx_path if int8 is None else out_dir / "policy.fp32.onnx.tmp"
    write_onnx(model, spec, fp32_path)
    if verify:
        verify_onnx(model, spec, fp32_path)
    quantization = None
    if int8 is not None:
        try:
            quantization = _quantize(fp32_path, onnx_path, int8)
        finally:
            fp32_path.unlink(missing_ok=True)
    digest = hashlib.sha256(onnx_path.read_bytes()).hexdigest()[:8]
    card = build_card(model, spec, model_id=f"{name}-{digest}", embeddings=embeddings,
                      text_encoder_id=text_encoder_id, control_rate_hz=control_rate_hz, training=training or {},
                      proprio_layout=proprio_layout, quantization=quantization)
    tmp = out_dir / "policy.json.tmp"
    tmp.write_text(json.dumps(card, indent=1))
    os.replace(tmp, out_dir / "policy.json")
    return out_dir


@dataclass
class Int8Frames:
    """Dataset frames for INT8 export: ``calibration`` sets the activation ranges, ``check``
    (disjoint frames) measures bin agreement with fp32; ``source`` says where they came from."""

    calibration: dict[str, np.ndarray]
    check: dict[str, np.ndarray]
    source: dict[str, Any]


def _quantize(fp32_path: Path, out_path: Path, frames: Int8Frames) -> dict[str, Any]:
    quantize_int8(fp32_path, out_path, frames.calibration)
    agreement = bin_agreement(decode_bins(fp32_path, frames.check), decode_bins(out_path, frames.check))
    feed = {name: value[:1] for name, value in frames.check.items()}
    return {"method": METHOD, "quantized_ops": list(QUANTIZED_OPS),
            "calibration_frames": len(frames.calibration["image"]), **frames.source,
            "bin_agreement_vs_fp32": {"frames": len(frames.check["image"]), **agreement},
            "conv_flop_share": round(conv_flop_share(fp32_path, feed), 4),
            "decode_speed_at_export": decode_speed(fp32_path, out_path, feed)}


def int8_summary(quantization: dict[str, Any]) -> tuple[str, str]:
    """(one line on what INT8 gave, a warning or "") for ``qt export`` to print: whether INT8
    pays is a property of the model size and the machine, so the user sees it at export."""
    speed, agreement = quantization["decode_speed_at_export"], quantization["bin_agreement_vs_fp32"]
    share = quantization["conv_flop_share"]
    line = (f"int8: decode p50 {speed['int8_ms_p50']:.3f} ms vs fp32 {speed['fp32_ms_p50']:.3f} ms on this machine "
            f"(1 thread, x{speed['speedup']:.2f}); convolutions (quantized) hold {share:.0%} of the arithmetic; "
            f"greedy bins equal to fp32 per dimension {agreement['per_dim']} on {agreement['frames']} dataset frames")
    warning = ""
    if speed["speedup"] < WORTHWHILE_SPEEDUP:
        warning = (f"INT8 is not faster here (x{speed['speedup']:.2f} < x{WORTHWHILE_SPEEDUP:g}): this decode is "
                   f"{speed['fp32_ms_p50']:.2f} ms of many small transformer nodes, whose per-node cost int8 does not "
                   "reduce; keep the fp32 export for this model (INT8 pays for large images and convolutions, "
                   "docs/TRAINER.md \"INT8\")")
    return line, warning


def int8_frames(state: dict[str, Any], cfg: ModelConfig, calibration_frames: int, check_frames: int = 500
                ) -> Int8Frames:
    """Calibration and check frames from the checkpoint's training dataset (``data_path``),
    refused when that directory no longer holds the data the checkpoint was trained on."""
    path = state.get("data_path")
    if not path or not Path(path).is_dir():
        raise ValueError(f"--quantize int8 calibrates on the training data; checkpoint's data_path {path!r} is "
                         "not a directory")
    dataset = Dataset(path)
    if state.get("data_digest") and dataset.digest() != state["data_digest"]:
        raise ValueError(f"{path}: dataset digest {dataset.digest()} differs from the checkpoint's "
                         f"{state['data_digest']} (the data changed since training)")
    instructions, embeddings = list(state["instructions"]), np.asarray(state["embeddings"], np.float32)
    calibration, check = (dataset_feeds(dataset, instructions, embeddings, idx, proprio_dim=cfg.proprio_dim)
                          for idx in split_frames(len(dataset), calibration_frames, check_frames))
    return Int8Frames(calibration, check, {"data_path": str(path), "data_digest": dataset.digest()})


def model_from_checkpoint(state: dict[str, Any]) -> tuple[QTransformer, ActionSpec]:
    model = QTransformer(ModelConfig.from_dict(state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), ActionSpec.from_dict(state["action_spec"])


def resolve_checkpoint(checkpoint: Path, which: str = "auto") -> Path:
    """A checkpoint file, or in a run directory ``best.pt`` (highest in-training success) or
    ``checkpoint.pt`` (the last step). ``auto``: best when the run evaluated during training."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_dir():
        return checkpoint
    best, last = checkpoint / BEST_NAME, checkpoint / CHECKPOINT_NAME
    if which == "best" and not best.is_file():
        raise ValueError(f"{checkpoint}: no {BEST_NAME} (train with --eval-every to keep the best checkpoint)")
    return best if which == "best" or (which == "auto" and best.is_file()) else last


def export_checkpoint(checkpoint: Path, out_dir: Path, *, name: str | None = None,
                      control_rate_hz: float | None = None, which: str = "auto",
                      extra_instructions: tuple[str, ...] = (), with_text_encoder: bool = True,
                      quantize: str = "none", calibration_frames: int = DEFAULT_CALIBRATION_FRAMES) -> Path:
    """Checkpoint (file or run directory) -> policy artefact; optionally the ONNX text encoder too.

    ``control_rate_hz`` None: the rate recorded in the training data, else 10 Hz. ``which``: see
    :func:`resolve_checkpoint`; the card says which checkpoint and step it holds. ``quantize``
    "int8": ship the statically quantized graph, calibrated on the training dataset.
    """
    path = resolve_checkpoint(Path(checkpoint), which)
    state = load_checkpoint(path)
    model, spec = model_from_checkpoint(state)
    embeddings = {t: np.asarray(e, np.float32).tolist() for t, e in zip(state["instructions"], state["embeddings"],
                                                                         strict=True)}
    if extra_instructions:
        from qt_trainer.text import SentenceEmbedder

        vectors = SentenceEmbedder().embed(list(extra_instructions))
        embeddings.update({t: v.tolist() for t, v in zip(extra_instructions, vectors, strict=True)})
    out_dir = Path(out_dir)
    training = {
        "data_digest": state.get("data_digest", ""),
        "command": state.get("command", ""),
        "steps": int(state["step"]),
        "seed": int(state["train_config"].get("seed", 0)),
        "wall_time_s": float(state.get("wall_time_s", 0.0)),
        "config": state["train_config"],
        "checkpoint": path.name,
        "eval_during_training": {"best": state.get("best"), "history": state.get("eval_history") or []},
    }
    rate = control_rate_hz or state.get("control_rate_hz") or DEFAULT_CONTROL_RATE_HZ
    frames = int8_frames(state, model.cfg, calibration_frames) if quantize == "int8" else None
    export_policy(model, spec, out_dir, name=name or out_dir.name, embeddings=embeddings,
                  text_encoder_id=state.get("text_encoder_id", ""), control_rate_hz=rate,
                  training=training, proprio_layout=state.get("proprio_layout", ""), int8=frames)
    if with_text_encoder:
        from qt_trainer.text import export_text_encoder

        export_text_encoder()
    return out_dir


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qt export", description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", type=Path, help="checkpoint file or training run directory")
    parser.add_argument("--name", required=True, help="model name: writes <models-dir>/<name>/")
    parser.add_argument("--models-dir", type=Path, default=Path("models"))
    parser.add_argument("--control-rate-hz", type=float,
                        help="control rate written to the card (default: the training data's, else 10)")
    parser.add_argument("--checkpoint", dest="checkpoint_choice", choices=("auto", "best", "last"), default="auto",
                        help="in a run directory: best.pt (highest success during training), checkpoint.pt (last), "
                        "or auto = best when it exists")
    parser.add_argument("--instruction", action="append", default=[],
                        help="also cache this instruction's embedding in the card (repeatable)")
    parser.add_argument("--no-text-encoder", action="store_true",
                        help="skip exporting the ONNX sentence encoder to the cache (~90 MB, outside git)")
    parser.add_argument("--quantize", choices=("none", "int8"), default="none",
                        help="int8: static INT8 graph calibrated on the checkpoint's training dataset "
                        "(give it its own --name; docs/TRAINER.md, INT8)")
    parser.add_argument("--calibration-frames", type=int, default=DEFAULT_CALIBRATION_FRAMES,
                        help="dataset frames that set the INT8 activation ranges")
    args = parser.parse_args(argv)
    started = time.time()
    try:
        out = export_checkpoint(args.checkpoint, args.models_dir / args.name, name=args.name,
                                control_rate_hz=args.control_rate_hz, which=args.checkpoint_choice,
                                extra_instructions=tuple(args.instruction),
                                with_text_encoder=not args.no_text_encoder, quantize=args.quantize,
                                calibration_frames=args.calibration_frames)
    except (ValueError, RuntimeError) as exc:
        print(f"qt export: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out}/policy.onnx and policy.json in {time.time() - started:.1f} s "
          f"(command: qt export {shlex.join(argv or sys.argv[1:])})")
    quantization = json.loads((out / "policy.json").read_text()).get("quantization")
    if quantization:
        line, warning = int8_summary(quantization)
        print(line)
        if warning:
            print(f"qt export: warning: {warning}", file=sys.stderr)
    if not args.no_text_encoder:
        from qt_trainer.text import text_encoder_dir

        print(f"text encoder (for new instructions): {text_encoder_dir()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
