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
can differ from the fp32 graph where two bins are nearly tied (often far apart: two near-equal
peaks; the fp32 graph itself flips there under one grey level of camera noise, so no
quantization setting brings agreement above that floor); :func:`bin_agreement` measures how
often (the exporter records it in the card).

Whether INT8 pays depends on the model size, so the exporter measures it instead of promising
it: :func:`conv_flop_share` says how much of the arithmetic the int8 convolutions carry and
:func:`decode_speed` times both graphs on the exporting machine. At the default 64 px size a
decode runs some 580 small nodes (0.02 GFLOP) whose dispatch, not arithmetic, sets the time (the 4
convolutions take about 0.1 of 0.64 ms), so the int8 graph is no faster there and the exporter says so.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.dataset import Dataset

QUANTIZED_OPS = ("Conv",)
METHOD = "onnxruntime static, QDQ, convolutions only, per-channel int8 weights, uint8 activations, MinMax"
DEFAULT_CALIBRATION_FRAMES = 300
# Below this measured speed-up (fp32 p50 / int8 p50) the exporter warns that INT8 does not pay.
WORTHWHILE_SPEEDUP = 1.2


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


def node_flops(path: Path, feed: dict[str, np.ndarray]) -> dict[str, float]:
    """2 x multiply-adds of every MatMul/Gemm/Conv node of one batch-1 decode, by node name.

    Shapes come from one real run with every such node's output exposed as a graph output:
    static shape inference leaves the decode loop's shapes unknown.
    """
    import onnx
    import onnxruntime as ort

    model = onnx.load(str(path))
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    nodes = [n for n in model.graph.node if n.op_type in ("MatMul", "Gemm", "Conv")]
    known = {o.name for o in model.graph.output}
    for name in sorted({t for n in nodes for t in (n.input[0], n.output[0])} - set(feed) - known):
        model.graph.output.append(onnx.helper.make_empty_tensor_value_info(name))
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    shapes = {name: list(value.shape) for name, value in zip(names, session.run(names, feed), strict=True)}
    shapes.update({k: list(v.shape) for k, v in feed.items()})
    out: dict[str, float] = {}
    for node in nodes:
        y = shapes[node.output[0]]
        w = weights.get(node.input[1]) or shapes.get(node.input[1])
        if node.op_type == "Conv":  # per output element: C_in/groups x kh x kw multiply-adds
            out[node.name] = 2.0 * float(np.prod(y)) * float(np.prod(w[1:]))
        else:
            out[node.name] = 2.0 * float(np.prod(y)) * float(shapes[node.input[0]][-1])
    return out


def conv_flop_share(path: Path, feed: dict[str, np.ndarray]) -> float:
    """Fraction of a decode's MatMul/Gemm/Conv arithmetic in the convolutions (the part INT8 speeds up)."""
    flops = node_flops(path, feed)
    convs = sum(v for name, v in flops.items() if name.endswith("/Conv"))  # node names end in their op type
    return convs / max(sum(flops.values()), 1.0)


def decode_speed(fp32_path: Path, int8_path: Path, feed: dict[str, np.ndarray], budget_s: float = 2.0
                 ) -> dict[str, float]:
    """p50 ms of one batch-1 decode of each graph on this machine (1 thread, alternating runs
    within ``budget_s`` after one warm-up run each), and fp32 / int8."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    sessions = [ort.InferenceSession(str(p), options, providers=["CPUExecutionProvider"])
                for p in (fp32_path, int8_path)]
    samples: list[list[float]] = [[], []]
    for session in sessions:
        session.run(["bins"], feed)
    end = time.perf_counter() + budget_s
    while time.perf_counter() < end or len(samples[1]) < 3:
        for session, times in zip(sessions, samples, strict=True):
            started = time.perf_counter()
            session.run(["bins"], feed)
            times.append(time.perf_counter() - started)
    fp32_ms, int8_ms = (float(np.median(t)) * 1e3 for t in samples)
    return {"fp32_ms_p50": round(fp32_ms, 3), "int8_ms_p50": round(int8_ms, 3),
            "speedup": round(fp32_ms / int8_ms, 2), "decodes": len(samples[1]), "threads": 1}
