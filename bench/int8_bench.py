"""INT8 vs fp32 greedy decode under ONNX Runtime (CPU, batch 1, 1 thread), and why.

    python bench/int8_bench.py --model-dir /tmp/models/r2_fp32 --data runs/ladder/R2/dataset
    python bench/int8_bench.py --size peer --image 224 --variants fp32 static_qdq dynamic_matmul
    python bench/int8_bench.py --size peer --image 224 --profile          # + time per operator type
    python bench/int8_bench.py --model-dir /tmp/models/r2_fp32 --data runs/ladder/R2/dataset \
        --calibration 1000 --check 500 --variants fp32 --sweep          # agreement vs settings

Quantizes one fp32 ``policy.onnx`` several ways and times every variant through
``qt_policy_node``'s ``PolicyDecoder`` (one ``session.run`` per decode), the variants alternating
within each pass so machine drift hits them alike. ``--model-dir`` takes an exported model
(trained weights; ``--data`` gives real frames for calibration and agreement, else random
inputs); ``--size`` builds an untrained model of that size (same graph and cost as a trained
one: the speed is real, the agreement figure is not a property of a trained policy).

Variants (``--variants``):

* ``static_qdq``: what ``qt export --quantize int8`` ships (qt_trainer.quantize: static, QDQ,
  per-channel int8 weights, uint8 activations, convolutions only).
* ``static_qdq_all``: the same on MatMul/Gemm/Conv (what ``qt export --quantize int8`` shipped
  before: every quantize/dequantize pair around the transformer's small MatMuls costs more
  than the int8 arithmetic saves).
* ``static_qdq_heavy``: MatMul/Gemm/Conv restricted to the nodes that hold ``--heavy-fraction``
  of the graph's arithmetic (shapes from one real run); the one-token decode steps stay fp32.
* ``dynamic_matmul``: dynamic quantization (activation scales at run time) of the MatMuls only,
  per-channel int8 weights; convolutions and the small Gemms (FiLM, text and proprio
  projections: quantizing those dynamically breaks the graph in this onnxruntime) stay fp32.
* ``dynamic_heavy``: dynamic quantization of the heavy MatMuls only.
* ``static_qoperator``: static, QOperator format (QLinearConv/QLinearMatMul nodes).
* ``static_qoperator_conv``: the same, convolutions only.

``--profile`` runs ONNX Runtime's profiler on each variant and prints the time per operator type
(the profiler's own overhead inflates every node; compare within the table).

``--sweep`` measures greedy-bin agreement with fp32 (no timing) for the quantization settings
one might try (calibration method and frames, per-tensor weights, symmetric activations,
reduce_range, convolutions left in fp32, 16-bit activations), next to the fp32 graph's own
noise floor: its agreement with itself when the image gets +-1 grey level of noise or proprio
0.1 % (a policy whose bins flip under camera noise cannot agree with any INT8 graph more often
than that), and how far the differing bins of the shipped setting are from fp32's.
"""

from __future__ import annotations

import argparse
import collections
import json
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("fp32", "static_qdq", "static_qdq_all", "static_qdq_heavy", "dynamic_matmul", "dynamic_heavy",
            "static_qoperator", "static_qoperator_conv")


def heavy_nodes(flops: dict[str, float], fraction: float) -> list[str]:
    """The largest nodes that together hold ``fraction`` of the counted arithmetic."""
    total, kept, acc = sum(flops.values()), [], 0.0
    for name, value in sorted(flops.items(), key=lambda kv: -kv[1]):
        if acc >= fraction * total:
            break
        kept.append(name)
        acc += value
    return kept


class Reader:
    def __init__(self, feeds: dict[str, np.ndarray]):
        self.rows = iter([{k: v[i : i + 1] for k, v in feeds.items()} for i in range(len(feeds["image"]))])

    def get_next(self):
        return next(self.rows, None)


SWEEP_DIMS = ("dx", "dy", "dz", "dyaw", "gripper")


def agreement_sweep(fp32: Path, tmp: Path, calib: dict[str, np.ndarray], check: dict[str, np.ndarray],
                    flops: dict[str, float]) -> dict[str, dict]:
    """Per-dimension agreement with fp32 bins for each setting (see the module docstring)."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from qt_trainer.quantize import bin_agreement, decode_bins

    ref = decode_bins(fp32, check)
    convs = [n for n in flops if n.endswith("/Conv")]
    rng = np.random.default_rng(0)
    shipped = dict(per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                   calibrate_method=CalibrationMethod.MinMax, op_types_to_quantize=["Conv"])
    settings = {f"shipped (MinMax, {len(calib['image'])} frames)": {}}
    settings.update({f"MinMax, {n} frames": {"frames": n} for n in (100, 300) if n < len(calib["image"])})
    settings.update({
        "Entropy": {"calibrate_method": CalibrationMethod.Entropy},
        "Percentile 99.999": {"calibrate_method": CalibrationMethod.Percentile},
        "Percentile 99.99": {"calibrate_method": CalibrationMethod.Percentile,
                             "extra_options": {"CalibPercentile": 99.99}},
        "per-tensor weights": {"per_channel": False},
        "symmetric int8 activations": {"activation_type": QuantType.QInt8,
                                       "extra_options": {"ActivationSymmetric": True}},
        "reduce_range (7-bit weights)": {"reduce_range": True},
        "first conv kept fp32": {"nodes_to_quantize": convs[1:]},
        f"only {convs[-1]} quantized": {"nodes_to_quantize": convs[-1:]},
        "uint16 activations (weights alone)": {"activation_type": QuantType.QUInt16},
    })
    rows: dict[str, dict] = {}
    shipped_bins = None
    for name, change in settings.items():
        options = {**shipped, **change}
        frames = options.pop("frames", len(calib["image"]))
        out = tmp / "sweep.onnx"
        quantize_static(str(fp32), str(out), Reader({k: v[:frames] for k, v in calib.items()}),
                        quant_format=QuantFormat.QDQ, **options)
        bins = decode_bins(out, check)
        shipped_bins = bins if shipped_bins is None else shipped_bins
        rows[name] = bin_agreement(ref, bins)
    noisy_image = np.clip(check["image"].astype(np.int16) + rng.integers(-1, 2, check["image"].shape), 0, 255)
    rows["fp32 itself, image +-1 grey level"] = bin_agreement(
        ref, decode_bins(fp32, {**check, "image": noisy_image.astype(np.uint8)}))
    if "proprio" in check:
        noisy = check["proprio"] * (1 + 1e-3 * rng.standard_normal(check["proprio"].shape))
        rows["fp32 itself, proprio x (1 + 0.1 % noise)"] = bin_agreement(
            ref, decode_bins(fp32, {**check, "proprio": noisy.astype(np.float32)}))
    print(f"\ngreedy-bin agreement with fp32 on {len(ref)} frames, per dim {SWEEP_DIMS[:ref.shape[1]]}:")
    for name, row in rows.items():
        print(f"  {name:<42} {row['per_dim']}  min {min(row['per_dim']):.3f}  all dims {row['all_dims']:.3f}")
    distance = np.abs(shipped_bins - ref)
    earlier_agree = np.cumprod(shipped_bins == ref, axis=1)
    print("shipped setting, where bins differ: |bin - fp32 bin| p50, share within 1 bin, agreement when the "
          "earlier dims agree:")
    for k in range(ref.shape[1]):
        differ = distance[:, k][distance[:, k] > 0]
        given = earlier_agree[:, k - 1].astype(bool) if k else np.ones(len(ref), bool)
        conditional = float((shipped_bins[given, k] == ref[given, k]).mean())
        rows.setdefault("shipped_detail", {})[SWEEP_DIMS[k]] = {
            "differ": int(differ.size), "median_distance": float(np.median(differ)) if differ.size else 0.0,
            "within_1_bin": round(float((distance[:, k] <= 1).mean()), 3),
            "agreement_given_earlier_dims": round(conditional, 3), "earlier_agree_frames": int(given.sum())}
        print(f"  {SWEEP_DIMS[k]:<8} {rows['shipped_detail'][SWEEP_DIMS[k]]}")
    return rows


def make_variant(name: str, fp32: Path, out: Path, calib: dict[str, np.ndarray], heavy: list[str],
                 flops: dict[str, float]) -> None:
    from onnxruntime.quantization import (
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_dynamic,
        quantize_static,
    )

    static = dict(per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                  calibrate_method=CalibrationMethod.MinMax)
    matmuls = [n for n in flops if n.endswith("/MatMul")]  # node names end in their op type
    if name == "static_qdq":
        from qt_trainer.quantize import quantize_int8

        quantize_int8(fp32, out, calib)
    elif name == "static_qdq_heavy":
        quantize_static(str(fp32), str(out), Reader(calib), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul", "Gemm", "Conv"], nodes_to_quantize=heavy, **static)
    elif name == "static_qdq_all":
        quantize_static(str(fp32), str(out), Reader(calib), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["MatMul", "Gemm", "Conv"], **static)
    elif name == "static_qoperator":
        quantize_static(str(fp32), str(out), Reader(calib), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["MatMul", "Gemm", "Conv"], **static)
    elif name == "static_qoperator_conv":
        quantize_static(str(fp32), str(out), Reader(calib), quant_format=QuantFormat.QOperator,
                        op_types_to_quantize=["Conv"], **static)
    elif name == "dynamic_matmul":
        quantize_dynamic(str(fp32), str(out), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8)
    elif name == "dynamic_heavy":
        quantize_dynamic(str(fp32), str(out), op_types_to_quantize=["MatMul"], per_channel=True,
                         weight_type=QuantType.QInt8, nodes_to_quantize=[n for n in heavy if n in matmuls])
    else:
        raise ValueError(f"unknown variant {name!r}; known {VARIANTS}")


def op_profile(path: Path, feed: dict[str, np.ndarray], runs: int) -> tuple[dict[str, tuple[float, int]], float]:
    """ms per decode and node count per operator type, from ONNX Runtime's profiler."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    options.enable_profiling = True
    options.profile_file_prefix = str(Path(tempfile.gettempdir()) / "qt_int8_profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for _ in range(runs):
        session.run(None, feed)
    events = json.loads(Path(session.end_profiling()).read_text())
    times, counts, total = collections.Counter(), collections.Counter(), 0.0
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            times[event["args"]["op_name"]] += event["dur"]
            counts[event["args"]["op_name"]] += 1
        elif event.get("cat") == "Session" and event["name"] == "model_run":
            total += event["dur"]
    return {op: (times[op] / runs / 1e3, counts[op] // runs) for op in times}, total / runs / 1e3


def build_model(args, tmp: Path) -> tuple[Path, dict[str, np.ndarray]]:
    """(model dir with an fp32 policy, a pool of feeds)."""
    from qt_trainer.export import random_inputs

    if args.model_dir:
        model_dir = args.model_dir
        card = json.loads((model_dir / "policy.json").read_text())
        from qt_trainer.config import ModelConfig

        cfg = ModelConfig.from_dict(card["model"])
        if args.data:
            from qt_common.dataset import Dataset
            from qt_trainer.quantize import dataset_feeds

            dataset = Dataset(args.data)
            embeddings = card["text_encoder"]["embeddings"]
            texts = list(embeddings)
            idx = np.sort(np.random.default_rng(0).permutation(len(dataset))[: args.calibration + args.check])
            feeds = dataset_feeds(dataset, texts, np.asarray([embeddings[t] for t in texts], np.float32), idx,
                                  proprio_dim=cfg.proprio_dim)
            perm = np.random.default_rng(1).permutation(len(idx))  # calibration / check split, shuffled
            return model_dir, {k: v[perm] for k, v in feeds.items()}
    else:
        import torch
        from qt_common.action_spec import ActionSpec
        from qt_trainer.config import MODEL_SIZES, ModelConfig
        from qt_trainer.export import export_policy
        from qt_trainer.model import QTransformer

        cfg = replace(ModelConfig(), image_height=args.image, image_width=args.image, proprio_dim=6,
                      **MODEL_SIZES[args.size])
        torch.manual_seed(0)
        model = QTransformer(cfg).eval()
        with torch.no_grad():  # zero-initialised layers (FiLM) would be shared initializers in the ONNX
            for param in model.parameters():  # file, which a trained model never has; give them weights
                if not param.abs().max():
                    param.normal_(0.0, 0.02)
        model_dir = export_policy(model, ActionSpec.default(), tmp / "fp32", name="int8bench", embeddings={},
                                  text_encoder_id="none")
    feeds = random_inputs(cfg, args.calibration + args.check, np.random.default_rng(0))
    return model_dir, feeds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path, help="an exported fp32 model (policy.onnx + policy.json)")
    parser.add_argument("--data", type=Path, help="its training dataset: real frames for calibration and agreement")
    parser.add_argument("--size", default="small", help="without --model-dir: an untrained model of this size")
    parser.add_argument("--image", type=int, default=64)
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    parser.add_argument("--calibration", type=int, default=100, help="calibration frames")
    parser.add_argument("--check", type=int, default=100, help="other frames: bin agreement with fp32")
    parser.add_argument("--iterations", type=int, default=100, help="timed decodes per variant and pass")
    parser.add_argument("--passes", type=int, default=2, help="timed passes (a discarded warm-up pass first)")
    parser.add_argument("--heavy-fraction", type=float, default=0.9)
    parser.add_argument("--profile", action="store_true", help="time per operator type (ONNX Runtime profiler)")
    parser.add_argument("--sweep", action="store_true", help="agreement vs quantization settings (no timing)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    from qt_policy_node.decoder import PolicyDecoder
    from qt_trainer.quantize import node_flops

    results: dict = {"args": {k: str(v) for k, v in vars(args).items()}}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model_dir, feeds = build_model(args, tmp)
        calib = {k: v[: args.calibration] for k, v in feeds.items()}
        check = {k: v[args.calibration :] for k, v in feeds.items()}
        fp32 = model_dir / "policy.onnx"
        flops = node_flops(fp32, {k: v[:1] for k, v in feeds.items()})
        heavy = heavy_nodes(flops, args.heavy_fraction)
        results["counted_gflop_matmul_conv"] = round(sum(flops.values()) / 1e9, 4)
        results["matmul_gemm_conv_nodes"] = len(flops)
        results["heavy_nodes"] = len(heavy)
        share = sum(v for n, v in flops.items() if n.endswith("/Conv")) / sum(flops.values())
        results["conv_flop_share"] = round(share, 4)
        print(f"{len(flops)} MatMul/Gemm/Conv nodes, {sum(flops.values()) / 1e9:.3f} GFLOP ({share:.1%} in "
              f"convolutions); {len(heavy)} hold {args.heavy_fraction:.0%} of it", flush=True)
        decoders = {}
        for name in args.variants:
            directory = model_dir
            if name != "fp32":
                directory = tmp / name
                directory.mkdir()
                (directory / "policy.json").write_text((model_dir / "policy.json").read_text())
                started = time.perf_counter()
                make_variant(name, fp32, directory / "policy.onnx", calib, heavy, flops)
                print(f"  {name}: quantized in {time.perf_counter() - started:.0f} s", flush=True)
            decoders[name] = PolicyDecoder(directory, threads=1)
        rows = [{k: v[i] for k, v in check.items()} for i in range(len(check["image"]))]

        def decode(decoder, row):
            return decoder.decode(row["image"], row["instruction_embedding"], row.get("proprio"))

        bins = {name: np.stack([decode(d, r).bins for r in rows]) for name, d in decoders.items()}
        samples: dict[str, list[float]] = {name: [] for name in decoders}
        for pass_index in range(args.passes + 1):
            order = list(decoders) if pass_index % 2 == 0 else list(decoders)[::-1]
            for name in order:
                decoder = decoders[name]
                for i in range(args.iterations):
                    started = time.perf_counter()
                    decode(decoder, rows[i % len(rows)])
                    if pass_index:  # the first pass warms up
                        samples[name].append(time.perf_counter() - started)
        base = float(np.median(samples[args.variants[0]]))
        for name in decoders:
            p50 = float(np.median(samples[name])) * 1e3
            same = bins[name] == bins["fp32"] if "fp32" in bins else np.ones_like(bins[name], bool)
            size = (tmp / name / "policy.onnx" if name != "fp32" else fp32).stat().st_size / 1e6
            results[name] = {"p50_ms": round(p50, 3), "p99_ms": round(float(np.percentile(samples[name], 99)) * 1e3, 3),
                             "vs_first": round(p50 / (base * 1e3), 3), "size_mb": round(size, 2),
                             "agreement_per_dim": [round(float(v), 3) for v in same.mean(0)],
                             "all_dims": round(float(same.all(1).mean()), 3)}
            r = results[name]
            print(f"{name:<18} p50 {r['p50_ms']:8.3f} ms  p99 {r['p99_ms']:8.3f}  x{r['vs_first']:5.2f} of "
                  f"{args.variants[0]}  {r['size_mb']:6.2f} MB  agreement {r['agreement_per_dim']} "
                  f"(all dims {r['all_dims']})", flush=True)
        if args.profile:
            feed = {k: v[:1] for k, v in check.items()}
            profiles = {}
            for name in decoders:
                path = tmp / name / "policy.onnx" if name != "fp32" else fp32
                profiles[name] = op_profile(path, feed, max(10, args.iterations // 5))
            ops = sorted({op for p, _ in profiles.values() for op in p},
                         key=lambda op: -max(p.get(op, (0, 0))[0] for p, _ in profiles.values()))
            print("\nms per decode by operator type under the profiler (nodes run in brackets):")
            print(f"{'op':<26}" + "".join(f"{name:>22}" for name in profiles))
            for op in ops[:18]:
                cells = "".join(f"{p.get(op, (0, 0))[0]:>15.3f} [{p.get(op, (0, 0))[1]:>4}]"
                                for p, _ in profiles.values())
                print(f"{op:<26}{cells}")
            print(f"{'model_run (profiled)':<26}" + "".join(f"{total:>22.3f}" for _, total in profiles.values()))
            results["profile_ms"] = {name: {"ops": {op: list(v) for op, v in p.items()}, "model_run": total}
                                     for name, (p, total) in profiles.items()}
        if args.sweep:
            results["sweep"] = agreement_sweep(fp32, tmp, calib, check, flops)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
