"""INT8 policies: ONNX Runtime static quantization of an exported fp32 ``policy.onnx``.

Static (not dynamic) quantization, because the robot decodes at batch 1 on a CPU where the
per-call cost of computing activation scales at run time eats most of the INT8 gain; the
scales are fixed once from real frames of the training dataset instead. QDQ format with
per-channel weights keeps one graph that every execution provider reads. Only the
convolutions are quantized: they hold the arithmetic of a decode at camera resolution (95 % of
the FLOPs of the 224 px ``peer`` model; 150 of 202 ms under ONNX Runtime's profiler), while the
transformer is some 150 small MatMuls, mostly one token wide, whose quantize/dequantize pairs
cost more than the int8 arithmetic saves (quantizing them too made the decode 1.15-1.6x slower
at the peer size, where convolutions alone make it 2.1-2.45x faster, and 3.5-23x slower at the
default size, and lowered the bin agreement; bench/int8_bench.py, docs/TRAINER.md "INT8").
ArgMax, Gather and the bin look-up table stay in float/int64, so the greedy decode is still
one ``session.run`` and a bin is always a valid index. INT8 changes Q-values slightly, so bins
can differ from the fp32 graph where two bins are nearly tied; :func:`bin_agreement` measures
how often (the exporter records it in the card).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.dataset import Dataset

QUANTIZED_OPS = ("Conv",)
METHOD = "onnxruntime static, QDQ, convolutions only, per-channel int8 weights, uint8 activations, MinMax"
DEFAULT_CALIBRATION_FRAMES = 300


def split_frames(num_frames: int, calibration: int, check: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint random frame indices (each sorted, for memory-mapped reads): calibration, check.
    Disjoint so the agreement figure is measured on frames that did not set the ranges."""
    order = np.random.default_rng(seed).permutation(num_frames)
    return np.sort(order[:calibration]), np.sort(order[calibration : calibration + check])


def dataset_feeds(dataset: Dataset, instructions: list[str], embeddings: np.ndarray, idx: np.ndarray, *,
                  proprio_dim: int) -> dict[str, np.ndarray]:
    """Decoder inputs for the frames ``idx`` of ``dataset``.

    Each frame's instruction is looked up by text in the checkpoint's instruction list, so a
    dataset whose instruction order differs from the checkpoint's still gets the right vector.
    """
    rows = {text: i for i, text in enumerate(instructions)}
    missing = sorted(set(dataset.instructions) - set(rows))
    if missing:
        raise ValueError(f"{dataset.path}: instructions not in the checkpoint's embeddings: {missing[:3]}")
    to_row = np.array([rows[text] for text in dataset.instructions], dtype=np.int64)
    feeds = {
        "image": np.ascontiguousarray(dataset.images[idx]),
        "instruction_embedding": np.asarray(embeddings, np.float32)[to_row[dataset.instruction_index[idx]]],
    }
    if proprio_dim > 0:
        feeds["proprio"] = np.asarray(dataset.proprio[idx], dtype=np.float32)
    return feeds


class _FrameReader:
    """ONNX Runtime CalibrationDataReader over batch-1 slices of prepared feeds."""

    def __init__(self, feeds: dict[str, np.ndarray]):
        count = len(feeds["image"])
        self._rows: Iterator[dict[str, np.ndarray]] = (
            {name: value[i : i + 1] for name, value in feeds.items()} for i in range(count))

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._rows, None)


def quantize_int8(fp32_path: Path, out_path: Path, calibration: dict[str, np.ndarray]) -> None:
    """Write the static INT8 version of ``fp32_path`` to ``out_path`` (settings: :data:`METHOD`)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    tmp = out_path.with_name(out_path.name + ".int8.tmp")
    quantize_static(str(fp32_path), str(tmp), _FrameReader(calibration), quant_format=QuantFormat.QDQ,
                    per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                    op_types_to_quantize=list(QUANTIZED_OPS), calibrate_method=CalibrationMethod.MinMax)
    os.replace(tmp, out_path)


def decode_bins(path: Path, feeds: dict[str, np.ndarray]) -> np.ndarray:
    """Greedy bins of ``feeds`` from the graph at ``path`` (CPU, one run over the batch)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["bins"], feeds)[0]


def bin_agreement(reference: np.ndarray, other: np.ndarray) -> dict[str, Any]:
    """Fraction of frames whose bin matches the reference, per dimension, and all dims at once."""
    same = reference == other
    return {"per_dim": [round(float(v), 4) for v in same.mean(axis=0)],
            "mean": round(float(same.mean()), 4), "all_dims": round(float(same.all(axis=1).mean()), 4)}
