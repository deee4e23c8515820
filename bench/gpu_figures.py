"""GPU figures (issue 16): decode latency and training speed on a CUDA machine, as one JSON file.

    PYTHONPATH=src/qt_common:src/qt_trainer:src/qt_policy_node python bench/gpu_figures.py --out gpu.json
    python bench/gpu_figures.py --device cpu --quick --out /tmp/gpu.json      # the same code paths on a CPU

Meant for one short call on a lent GPU machine (bare: torch and onnxruntime as installed there,
the repository's sources on PYTHONPATH), so every section is guarded: a section that cannot run
(no CUDA in this onnxruntime build, no TensorRT, a capture that fails) records why and the
script goes on; the JSON is rewritten after every section, so a timeout still leaves the
finished ones. Sections, for the shipped default model (``models/default``: its ONNX file as
shipped, and a PyTorch model of the card's config with random weights, which costs the same)
and for the ``peer`` size at 224 px (random weights):

* ``decode_torch``: batch-1 greedy decode on the device, host image in and bins back on the host
  (what a robot pays): fp32 eager, bf16 and fp16 autocast, and fp32 replayed as one CUDA
  graph; bins agreement of each with fp32 eager on 200 random inputs.
* ``decode_onnx``: ``PolicyDecoder`` (the node's decoder) with each GPU execution provider this
  onnxruntime build has: CUDA fp32, CUDA on the graph converted to fp16 (ArgMax and the bin
  look-up kept in fp32), TensorRT fp32 and fp16; the CPU provider on 1 thread as the reference;
  bins agreement with the CPU provider.
* ``train``: ``qt train``'s own training step (``Trainer.train_step``), batch 32 (and 256 for the
  default) on synthetic
  data, Q-Transformer and BC, fp32 vs bf16 autocast (the trainer's ``amp``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))


def pct(samples_s: list[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1e3
    return {"p50_ms": round(float(np.percentile(ms, 50)), 4), "p99_ms": round(float(np.percentile(ms, 99)), 4),
            "mean_ms": round(float(ms.mean()), 4), "n": len(samples_s)}


def timed(fn, iterations: int, warmup: int) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iterations):
        started = time.perf_counter()
        fn()
        out.append(time.perf_counter() - started)
    return out


class Figures:
    """The JSON being built; written after every section."""

    def __init__(self, path: Path, budget_s: float):
        self.path, self.data, self.started, self.budget_s = path, {}, time.perf_counter(), budget_s

    def left_s(self) -> float:
        return self.budget_s - (time.perf_counter() - self.started)

    def section(self, key: str, fn, *args, need_s: float = 5.0):
        if self.left_s() < need_s:
            self.data[key] = {"skipped": f"time budget: {self.left_s():.0f} s left, section needs ~{need_s:.0f} s"}
        else:
            began = time.perf_counter()
            try:
                self.data[key] = fn(*args)
            except Exception as exc:  # a section that cannot run says why; the others go on
                self.data[key] = {"error": f"{type(exc).__name__}: {exc}",
                                  "traceback": traceback.format_exc()[-1500:]}
            if isinstance(self.data[key], dict):
                self.data[key]["section_s"] = round(time.perf_counter() - began, 1)
        print(f"[{time.perf_counter() - self.started:6.1f} s] {key}: {json.dumps(self.data[key])[:600]}", flush=True)
        self.path.write_text(json.dumps(self.data, indent=1))


def environment(device: str) -> dict:
    import onnxruntime as ort

    info = {"python": platform.python_version(), "torch": torch.__version__, "onnxruntime": ort.__version__,
            "ort_available_providers": ort.get_available_providers(), "cpu_count": os.cpu_count(),
            "cpu": platform.processor() or platform.machine(), "device": device}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
        info["cuda"] = torch.version.cuda
        info["cudnn"] = torch.backends.cudnn.version()
    try:
        import tensorrt

        info["tensorrt_python"] = tensorrt.__version__
    except Exception as exc:
        info["tensorrt_python"] = f"absent ({type(exc).__name__})"
    return info


def model_configs(quick: bool):
    """(name, ModelConfig) of the sizes measured: the shipped default (its card) and peer at 224 px."""
    from qt_trainer.config import MODEL_SIZES, ModelConfig

    card = json.loads((ROOT / "models" / "default" / "policy.json").read_text())
    default = ModelConfig.from_dict(card["model"])
    side = 96 if quick else 224
    peer = replace(ModelConfig(), image_height=side, image_width=side, **MODEL_SIZES["peer"])
    return [("default", default), ("peer", peer)]


def torch_inputs(cfg, count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    from qt_trainer.export import random_inputs

    rng = np.random.default_rng(seed)
    return [random_inputs(cfg, 1, rng) for _ in range(count)]


def decode_torch(cfg, device: str, iterations: int, agree_n: int) -> dict:
    from qt_trainer.model import QTransformer, count_parameters
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = QTransformer(cfg).eval()
    feeds = torch_inputs(cfg, agree_n)
    out: dict = {"parameters": count_parameters(model), "image": [cfg.image_height, cfg.image_width]}
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        f = feeds[0]
        model.greedy(torch.from_numpy(f["image"]), torch.from_numpy(f["instruction_embedding"]),
                     torch.from_numpy(f["proprio"]) if "proprio" in f else None)
    out["decode_gflop"] = round(counter.get_total_flops() / 1e9, 4)
    dev = torch.device(device)
    model = model.to(dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)

    def host_call(f, autocast_dtype=None):
        args = [torch.from_numpy(f["image"]).to(dev), torch.from_numpy(f["instruction_embedding"]).to(dev)]
        if "proprio" in f:
            args.append(torch.from_numpy(f["proprio"]).to(dev))
        with torch.no_grad(), torch.autocast(dev.type, dtype=autocast_dtype or torch.float32,
                                             enabled=autocast_dtype is not None):
            bins, _ = model.greedy(*args)
        return bins.cpu().numpy()

    variants = {"fp32_eager": host_call, "bf16_autocast": lambda f: host_call(f, torch.bfloat16),
                "fp16_autocast": lambda f: host_call(f, torch.float16)}
    graph_note = ""
    if dev.type == "cuda":
        try:
            variants["fp32_cuda_graph"] = cuda_graph_decoder(model, cfg, feeds[0])
        except Exception as exc:
            graph_note = f"{type(exc).__name__}: {exc}"
    reference = [variants["fp32_eager"](f) for f in feeds]
    for name, fn in variants.items():
        f0 = feeds[0]
        samples = timed(lambda fn=fn, f0=f0: (fn(f0), sync()), iterations, warmup=max(5, iterations // 10))
        bins = [fn(f) for f in feeds]
        same = np.concatenate([(a == b) for a, b in zip(bins, reference, strict=True)])
        out[name] = {**pct(samples), "bins_equal_fp32_per_dim": [round(float(v), 4) for v in same.mean(0)]}
    if graph_note:
        out["fp32_cuda_graph"] = {"error": graph_note}
    return out


def cuda_graph_decoder(model, cfg, example: dict[str, np.ndarray]):
    """The whole greedy decode captured once as a CUDA graph; replays copy the new inputs in."""
    dev = next(model.parameters()).device
    static = {k: torch.from_numpy(v).to(dev) for k, v in example.items()}
    names = ["image", "instruction_embedding"] + (["proprio"] if "proprio" in static else [])
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(3):
            model.greedy(*[static[n] for n in names])
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_bins, _ = model.greedy(*[static[n] for n in names])

    def run(f: dict[str, np.ndarray]) -> np.ndarray:
        for n in names:
            static[n].copy_(torch.from_numpy(f[n]))
        graph.replay()
        return static_bins.cpu().numpy()

    return run


def fp16_onnx(src: Path, dst: Path) -> None:
    """The graph in fp16 with fp32 inputs/outputs; ArgMax and the bin-table GatherElements stay
    fp32 (blocking Gather too makes the converter emit duplicate node names)."""
    import onnx
    from onnxruntime.transformers.float16 import convert_float_to_float16

    model = convert_float_to_float16(onnx.load(str(src)), keep_io_types=True,
                                     op_block_list=["ArgMax", "GatherElements"])
    onnx.save(model, str(dst))


def decode_onnx(model_dir: Path, iterations: int, agree_n: int, tmp: Path) -> dict:
    import onnxruntime as ort
    from qt_policy_node.decoder import PolicyDecoder
    from qt_policy_node.providers import CPU, CUDA, TENSORRT, options

    card = json.loads((model_dir / "policy.json").read_text())
    from qt_trainer.config import ModelConfig

    cfg = ModelConfig.from_dict(card["model"])
    feeds = torch_inputs(cfg, agree_n, seed=1)
    available = ort.get_available_providers()
    out: dict = {"model": str(model_dir.relative_to(ROOT)) if model_dir.is_relative_to(ROOT) else str(model_dir),
                 "available": available}

    def measure(decoder) -> dict:
        call = lambda f: decoder.decode(f["image"][0], f["instruction_embedding"][0],  # noqa: E731
                                        f["proprio"][0] if "proprio" in f else None).bins
        samples = timed(lambda: call(feeds[0]), iterations, warmup=max(10, iterations // 10))
        return {**pct(samples), "provider": decoder.provider, "bins": [call(f) for f in feeds]}

    reference = measure(PolicyDecoder(model_dir, [CPU], threads=1))
    runs = {"cpu_1thread": reference}
    half_dir = tmp / "fp16"
    variants = []
    if TENSORRT in available:
        variants += [("tensorrt_fp32", model_dir, TENSORRT, False), ("tensorrt_fp16", model_dir, TENSORRT, True)]
    if CUDA in available:
        variants += [("cuda_fp32", model_dir, CUDA, False), ("cuda_fp16_graph", half_dir, CUDA, False)]
    for name, directory, provider, fp16 in variants:
        try:
            if directory == half_dir and not half_dir.exists():
                half_dir.mkdir()
                (half_dir / "policy.json").write_text((model_dir / "policy.json").read_text())
                fp16_onnx(model_dir / "policy.onnx", half_dir / "policy.onnx")
            decoder = PolicyDecoder(directory, [provider], provider_options=options(
                [provider], fp16=fp16, cache_dir=str(tmp / "trt")))
            runs[name] = measure(decoder)
        except Exception as exc:
            runs[name] = {"error": f"{type(exc).__name__}: {exc}"[:800]}
    reference_bins = reference["bins"]
    for run in runs.values():
        if "bins" in run:
            same = np.stack([a == b for a, b in zip(run.pop("bins"), reference_bins, strict=True)])
            run["bins_equal_cpu_per_dim"] = [round(float(v), 4) for v in same.mean(0)]
    out.update(runs)
    if not variants:
        out["note"] = ("this onnxruntime build has no CUDA or TensorRT execution provider (the CPU package); "
                       "onnxruntime-gpu is needed for GPU decode through the node")
    return out


def train(cfg, device: str, steps: int, batch: int, tmp: Path) -> dict:
    from qt_trainer.synthetic import write_synthetic_dataset
    from trainer_bench import bench_training

    data = write_synthetic_dataset(tmp / f"data{cfg.image_height}", episodes=8, length=16,
                                   image_shape=(cfg.image_height, cfg.image_width, 3), proprio_dim=cfg.proprio_dim)
    out: dict = {"batch": batch, "steps": steps, "image": [cfg.image_height, cfg.image_width]}
    for algorithm in ("q_transformer", "bc"):
        for label, amp in (("fp32", False), ("bf16_amp", True)):
            if device == "cuda":
                rate, gflop = bench_training(data, cfg, algorithm, device, 0, batch, steps, "fp32", amp)
            else:  # the CPU stand-in: the same step with CPU autocast
                rate, gflop = bench_training(data, cfg, algorithm, device, 1, batch, steps,
                                             "bf16" if amp else "fp32", False)
            out[f"{algorithm}_{label}"] = {"samples_per_s": round(rate, 1), "gflop_per_sample": round(gflop, 4),
                                           "tflop_per_s": round(rate * gflop / 1e3, 3)}
        out[f"{algorithm}_bf16_vs_fp32"] = round(out[f"{algorithm}_bf16_amp"]["samples_per_s"]
                                                 / out[f"{algorithm}_fp32"]["samples_per_s"], 3)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--budget-s", type=float, default=300.0, help="skip sections once this much time is spent")
    parser.add_argument("--quick", action="store_true", help="few iterations, peer at 96 px (a local dry run)")
    args = parser.parse_args()
    if args.device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device visible to torch", file=sys.stderr)
        return 2
    torch.set_num_threads(1)
    iters, agree, steps = (20, 8, 2) if args.quick else (300, 200, 20)
    figures = Figures(args.out, args.budget_s)
    figures.section("environment", environment, args.device, need_s=0)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        figures.section("decode_onnx_default", decode_onnx, ROOT / "models" / "default", iters, agree, tmp, need_s=20)
        for name, cfg in model_configs(args.quick):
            n = iters if name == "default" else max(20, iters // 3)
            figures.section(f"decode_torch_{name}", decode_torch, cfg, args.device, n, agree, need_s=20)
        for name, cfg in model_configs(args.quick):
            figures.section(f"train_{name}", train, cfg, args.device, steps, 32, tmp, need_s=30)
        default_cfg = model_configs(args.quick)[0][1]
        figures.section("train_default_batch256", train, default_cfg, args.device, steps, 256, tmp, need_s=30)
    figures.data["total_s"] = round(time.perf_counter() - figures.started, 1)
    args.out.write_text(json.dumps(figures.data, indent=1))
    print(f"wrote {args.out} in {figures.data['total_s']} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
