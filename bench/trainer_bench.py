"""Trainer and decoder speed, measured in one run so the ratios are comparable.

    python bench/trainer_bench.py                      # default model, 64x64, CPU
    python bench/trainer_bench.py --co-tenant          # training at 1 and 2 threads next to a busy process
    python bench/trainer_bench.py --model-size base --device cuda
    python bench/trainer_bench.py --threads 1 --precisions fp32 bf16 --repeats 3 --no-decode   # bf16 on CPU

Reports training samples/s (Q-Transformer loss with target network, and BC) and batch-1 greedy
decode latency p50/p99 of: the exported ONNX graph through qt_policy_node's PolicyDecoder; the
same PyTorch model decoding eagerly (observation encoded once, cached keys/values); and naive
decoding that re-runs the whole network (image encoder included) for every action dimension.
Also the FLOPs of one decode, to compare with other implementations at equal work.

``--co-tenant`` starts one busy process (a spinning Python loop, ended by its pid afterwards)
for the training measurements: the situation of a shared 2-core machine where another job uses
a core, which is why ``qt train`` defaults to 1 thread (docs/TRAINER.md has the figures).
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from qt_common.action_spec import ActionSpec
from qt_trainer.config import MODEL_SIZES, ModelConfig, TrainConfig
from qt_trainer.export import export_policy, random_inputs
from qt_trainer.model import QTransformer, count_parameters
from qt_trainer.synthetic import write_synthetic_dataset
from qt_trainer.train import Trainer


class RandomEmbedder:
    """Unit vectors per instruction: the bench measures speed, not language."""

    id = "bench-random"

    def embed(self, texts: list[str]) -> np.ndarray:
        rng = np.random.default_rng(0)
        v = rng.standard_normal((len(texts), 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def percentiles(samples_s: list[float]) -> tuple[float, float]:
    ms = np.asarray(samples_s) * 1e3
    return float(np.percentile(ms, 50)), float(np.percentile(ms, 99))


def time_calls(fn, iterations: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    for _ in range(iterations):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return out


def naive_decode(model: QTransformer, image: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
    """Greedy decoding without caching: the full network (encoder included) once per dimension."""
    bins = torch.zeros(image.shape[0], model.cfg.num_dims, dtype=torch.long)
    for dim in range(model.cfg.num_dims):
        bins[:, dim] = model(image, emb, bins)[:, dim].argmax(dim=-1)
    return bins


def decode_flops(model: QTransformer, image: torch.Tensor, emb: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model.greedy(image, emb)
    return int(counter.get_total_flops())


def bench_training(data, model_cfg: ModelConfig, algorithm: str, device: str, threads: int, batch: int,
                   steps: int, precision: str = "fp32", amp: bool = True) -> tuple[float, float]:
    """(samples/s, GFLOP per training sample incl. target-network passes and backward).

    ``precision`` is the CPU autocast choice (``qt train --precision``), ``amp`` the CUDA one."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = TrainConfig(model=replace(model_cfg, algorithm=algorithm), steps=steps + 3, batch_size=batch,
                      device=device, num_threads=threads, warmup_steps=1, checkpoint_every=10**9, log_every=10**9,
                      precision=precision, amp=amp)
    trainer = Trainer(cfg, data, None, embedder=RandomEmbedder(), progress=False)
    with FlopCounterMode(display=False) as counter:
        trainer.train_step()
    for _ in range(2):
        trainer.train_step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    started = time.perf_counter()
    for _ in range(steps):
        trainer.train_step()
    if trainer.device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch / (time.perf_counter() - started), counter.get_total_flops() / batch / 1e9


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-size", choices=sorted(MODEL_SIZES), default="small")
    parser.add_argument("--image", type=int, default=64, help="square image side")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--train-steps", type=int, default=15)
    parser.add_argument("--iterations", type=int, default=300, help="timed decodes per method")
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="CPU thread counts for training")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    parser.add_argument("--co-tenant", action="store_true",
                        help="measure training with one other busy process on the machine")
    parser.add_argument("--precisions", nargs="+", choices=("fp32", "bf16"), default=["fp32"],
                        help="training arithmetic to compare (qt train --precision); with several, each repeat "
                        "measures all of them, first mover swapped every repeat")
    parser.add_argument("--repeats", type=int, default=1, help="interleaved repeats of the training measurement")
    parser.add_argument("--no-decode", action="store_true", help="training figures only")
    args = parser.parse_args()

    spec = ActionSpec.default()
    model_cfg = replace(ModelConfig(), image_height=args.image, image_width=args.image, **MODEL_SIZES[args.model_size])
    results: dict = {"model_size": args.model_size, "image": args.image, "device": args.device,
                     "machine": platform.processor() or platform.machine()}
    with tempfile.TemporaryDirectory() as tmp:
        data = write_synthetic_dataset(Path(tmp) / "data", episodes=8, length=16,
                                       image_shape=(args.image, args.image, 3))
        train = {}
        tenant = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if args.co_tenant else None
        try:
            runs: dict[str, list[float]] = {}
            for repeat in range(args.repeats):
                order = args.precisions if repeat % 2 == 0 else args.precisions[::-1]
                for threads in args.threads if args.device == "cpu" else [0]:
                    for algorithm in ("q_transformer", "bc"):
                        for precision in order:
                            key = f"{algorithm}_threads{threads}" if args.device == "cpu" else algorithm
                            key += "" if args.precisions == ["fp32"] else f"_{precision}"
                            rate, gflop = bench_training(data, model_cfg, algorithm, args.device, threads,
                                                         args.batch, args.train_steps, precision)
                            runs.setdefault(key, []).append(rate)
                            results["train_gflop_per_sample_" + algorithm] = gflop
            train = {key: float(np.median(rates)) for key, rates in runs.items()}
            results["train_samples_per_s_each_repeat"] = runs
        finally:
            if tenant is not None:
                tenant.terminate()
                tenant.wait()
        results["train_samples_per_s"] = train
        results["co_tenant"] = bool(args.co_tenant)
        if args.no_decode:
            for key, value in train.items():
                ratio = ""
                if key.endswith("_bf16") and key[:-5] + "_fp32" in train:
                    ratio = f"  bf16/fp32 {value / train[key[:-5] + '_fp32']:.2f}x"
                print(f"train {key:<30} {value:8.1f} samples/s (median of {len(runs[key])}: "
                      f"{', '.join(f'{r:.1f}' for r in runs[key])}){ratio}")
            if args.json:
                args.json.write_text(json.dumps(results, indent=1))
            return 0

        torch.set_num_threads(1)
        torch.manual_seed(0)
        model = QTransformer(model_cfg).eval()
        results["parameters"] = count_parameters(model)
        feeds = random_inputs(model_cfg, 1, np.random.default_rng(0))
        image, emb = torch.from_numpy(feeds["image"]), torch.from_numpy(feeds["instruction_embedding"])
        results["decode_gflop"] = decode_flops(model, image, emb) / 1e9
        from qt_policy_node.decoder import PolicyDecoder

        out = export_policy(model, spec, Path(tmp) / "policy", name="bench", embeddings={}, text_encoder_id="none")
        decoder = PolicyDecoder(out, threads=1)
        with torch.no_grad():
            reference = model.greedy(image, emb)[0][0].numpy()
            assert np.array_equal(naive_decode(model, image, emb)[0].numpy(), reference)
            assert np.array_equal(decoder.decode(feeds["image"][0], feeds["instruction_embedding"][0]).bins, reference)
            latency = {
                "onnx_decoder": percentiles(time_calls(
                    lambda: decoder.decode(feeds["image"][0], feeds["instruction_embedding"][0]), args.iterations)),
                "torch_eager_cached": percentiles(time_calls(lambda: model.greedy(image, emb), args.iterations)),
                "torch_naive_reencode": percentiles(time_calls(lambda: naive_decode(model, image, emb),
                                                               args.iterations)),
            }
    results["decode_ms_p50_p99_1thread"] = latency
    onnx_p50 = latency["onnx_decoder"][0]
    results["ratios_vs_onnx_p50"] = {k: v[0] / onnx_p50 for k, v in latency.items()}

    print(f"model {args.model_size}, {results['parameters'] / 1e6:.2f} M parameters, image {args.image}x{args.image}, "
          f"{results['decode_gflop']:.3f} GFLOP per decode")
    for key, value in train.items():
        algorithm = key.split("_threads")[0].removesuffix("_fp32").removesuffix("_bf16")
        gflop = results["train_gflop_per_sample_" + algorithm]
        print(f"train {key:<24} {value:8.1f} samples/s (batch {args.batch}, {gflop:.3f} GFLOP/sample, "
              f"{value * gflop:.1f} GFLOP/s)")
    for key, (p50, p99) in latency.items():
        print(f"decode {key:<22} p50 {p50:7.3f} ms  p99 {p99:7.3f} ms  ({p50 / onnx_p50:5.1f}x onnx; "
              f"{results['decode_gflop'] / p50 * 1e3:.1f} GFLOP/s)")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
