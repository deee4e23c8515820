"""Side by side with the public PyTorch port (PyPI ``q-transformer==0.5.0``) at equal decode FLOPs.

    python bench/peer_compare.py                          # installs the port into its own venv once
    taskset -c 0 python bench/peer_compare.py --repeats 2 --decodes 60 --train-steps 2 --json /tmp/peer.json

The port is never a dependency of this project and project code never imports it: it is
installed on demand into a separate virtual environment (``--venv``, default
``$QT_CACHE_DIR/peer-venv``): ``torch==2.13.0`` first (the only torch spec that does not pull
multi-GB CUDA wheels on the project's machine), then the port's needs pinned against that torch,
then the port and ``classifier-free-guidance-pytorch`` without their dependencies (their declared
ones pull torchvision and open_clip, which bring another torch). That venv's Python runs this
same file with ``--worker``: it builds the port's model with no hub download (T5 and open_clip
stubbed out: the instruction arrives as a 768-wide ``text_embeds``, as the port allows) and
answers timing requests over stdin/stdout, so the two sides are measured alternately in one run
(the first mover swapped every repeat) on the same core.

What is timed, batch 1, 1 thread:

* decode, torch eager: ours ``QTransformer.greedy`` (observation encoded once, cached keys and
  values); the port ``encode_state`` + ``q_head.get_optimal_actions(prob_random_action=0.)``
  (its public ``get_optimal_actions`` drops that argument and keeps re-randomising bins, see
  ../shared/FIELD-NOTES.md), with its KV cache.
* decode, ONNX Runtime: ours the exported ``policy.onnx`` through ``PolicyDecoder``; the port has
  no export of its own, so its greedy decode (the same two calls) is traced with
  ``torch.onnx.export`` at opset 17 here (a failed export is reported, not hidden).
* training, batch ``--train-batch``: ours ``qt train``'s ``Trainer.train_step`` (Q-Transformer loss:
  online pass with gradients, target passes, AdamW, Polyak); the port ``QLearner.learn`` on one
  batch + backward + clipping + its AdamAtan2 step + EMA target update, i.e. the body of its own
  training loop.

FLOPs are counted for both with ``torch.utils.flop_counter`` (matrix products and convolutions)
on a decode and on a training step. Ours is the ``peer`` model size (qt_trainer.config): conv
(148, 296, 592, 1184), d_model 512, 4 layers. The port: MaxViT dim 64, depth (1, 1, 1, 1), the
rest as in its README (one transformer layer, dueling head), 5 action dimensions x 256 bins.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
PEER_VERSION = "0.5.0"
TORCH_PIN = "torch==2.13.0"
# The port's run-time imports (its METADATA, minus torchvision/open_clip), pinned against TORCH_PIN.
PEER_NEEDS = ["accelerate", "adam-atan2-pytorch", "beartype", "einops", "ema-pytorch", "hl-gauss-pytorch",
              "hyper-connections", "jaxtyping", "numpy", "sentencepiece", "torch-einops-utils", "x-transformers",
              "transformers", "environs", "ftfy", "onnx", "onnxruntime==1.31.1"]
NO_DEPS = [f"q-transformer=={PEER_VERSION}", "classifier-free-guidance-pytorch==0.7.1"]
TEXT_DIM = 768  # T5-base width, what the port's text conditioner expects


# ---- the port, inside its own venv (no project imports below this line until "ours") ----------


def _peer_model(image: int, dims: int, bins: int):
    import types

    import torch

    sys.modules.setdefault("open_clip", types.ModuleType("open_clip"))  # never used: T5 only
    import classifier_free_guidance_pytorch.t5 as t5
    from transformers import T5Config

    t5.get_model_and_tokenizer = lambda name: (None, None)  # no hub download
    t5.T5_CONFIGS[t5.DEFAULT_T5_NAME] = {"config": T5Config(d_model=TEXT_DIM)}
    from q_transformer import QRoboticTransformer

    torch.manual_seed(0)
    model = QRoboticTransformer(
        vit=dict(num_classes=1000, dim_conv_stem=64, dim=64, dim_head=64, depth=(1, 1, 1, 1), window_size=7,
                 mbconv_expansion_rate=4, mbconv_shrinkage_rate=0.25, dropout=0.1),
        num_actions=dims, action_bins=bins, depth=1, heads=8, dim_head=64, cond_drop_prob=0.2, dueling=True)
    return model


class _PeerGreedy:
    """The port's greedy decode without random actions: encode_state + q_head greedy loop."""

    def __init__(self, model):
        self.model = model

    def __call__(self, video, text_embeds):
        encoded = self.model.encode_state(video, text_embeds=text_embeds)
        return self.model.q_head.get_optimal_actions(encoded, prob_random_action=0.0)


def _flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def worker(argv: list[str]) -> int:
    """Answer JSON requests on stdin, one per line, with JSON lines on stdout."""
    import torch

    args = json.loads(argv[0])
    torch.set_num_threads(int(args.get("threads", 1)))
    image, dims, bins = int(args["image"]), int(args["dims"]), int(args["bins"])
    model = _peer_model(image, dims, bins).eval()
    greedy = _PeerGreedy(model)
    rng = np.random.default_rng(0)
    video = torch.from_numpy(rng.standard_normal((1, 3, 1, image, image)).astype(np.float32))
    text = torch.from_numpy(rng.standard_normal((1, TEXT_DIM)).astype(np.float32))
    out = sys.stdout
    sys.stdout = sys.stderr  # library prints must not corrupt the protocol
    state: dict = {}

    def answer(obj) -> None:
        out.write(json.dumps(obj) + "\n")
        out.flush()

    for line in sys.stdin:
        request = json.loads(line)
        cmd = request["cmd"]
        try:
            if cmd == "info":
                with torch.no_grad():
                    flops = _flops(lambda: greedy(video, text))
                    a = greedy(video, text)
                    b = greedy(video, text)
                answer({"parameters": sum(p.numel() for p in model.parameters()), "decode_flops": flops,
                        "deterministic": bool(torch.equal(a, b)), "bins": a.tolist(),
                        "torch": torch.__version__})
            elif cmd == "decode_torch":
                samples = []
                with torch.no_grad():
                    for _i in range(int(request["n"]) + int(request.get("warmup", 3))):
                        started = time.perf_counter()
                        greedy(video, text)
                        samples.append(time.perf_counter() - started)
                answer({"samples": samples[int(request.get("warmup", 3)):]})
            elif cmd == "decode_onnx":
                answer(_peer_onnx(state, greedy, video, text, int(request["n"]), int(request.get("warmup", 3)),
                                  request["path"]))
            elif cmd == "train":
                answer(_peer_train(state, model, image, dims, bins, int(request["batch"]), int(request["steps"])))
            else:
                answer({"error": f"unknown command {cmd!r}"})
        except Exception as exc:  # report, keep serving
            import traceback

            answer({"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-2000:]})
    return 0


def _peer_onnx(state: dict, greedy, video, text, n: int, warmup: int, path: str) -> dict:
    import onnxruntime as ort
    import torch

    if "onnx" not in state:
        class Graph(torch.nn.Module):
            def __init__(self, model):
                super().__init__()
                self.model = model

            def forward(self, video, text_embeds):
                return greedy(video, text_embeds)

        with torch.no_grad():
            reference = greedy(video, text).numpy()
            torch.onnx.export(Graph(greedy.model).eval(), (video, text), path, input_names=["video", "text_embeds"],
                              output_names=["bins"], opset_version=17, dynamo=False)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
        session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        feeds = {"video": video.numpy(), "text_embeds": text.numpy()}
        same = bool(np.array_equal(session.run(None, feeds)[0], reference))
        state["onnx"] = (session, feeds, same)
    session, feeds, same = state["onnx"]
    samples = []
    for _ in range(n + warmup):
        started = time.perf_counter()
        session.run(None, feeds)
        samples.append(time.perf_counter() - started)
    return {"samples": samples[warmup:], "bins_equal_torch": same}


def _peer_train(state: dict, model, image: int, dims: int, bins: int, batch: int, steps: int) -> dict:
    import torch
    from q_transformer import QLearner

    if "learner" not in state:
        class Empty(torch.utils.data.Dataset):
            def __len__(self):
                return 1

            def __getitem__(self, i):
                raise IndexError(i)

        learner = QLearner(model, dataset=Empty(), batch_size=batch, num_train_steps=10**9, learning_rate=3e-4,
                           checkpoint_folder=os.path.join(os.environ.get("TMPDIR", "/tmp"), "qt_peer_ckpt"),
                           accelerator_kwargs={"cpu": True})
        g = torch.Generator().manual_seed(1)
        data = (torch.randn(batch, TEXT_DIM, generator=g),  # text_embeds
                torch.randn(batch, 3, 1, image, image, generator=g),  # states
                torch.randint(0, bins, (batch, dims), generator=g),  # actions
                torch.randn(batch, 3, 1, image, image, generator=g),  # next_states
                torch.randn(batch, TEXT_DIM, generator=g),  # next_text_embed
                torch.rand(batch, generator=g),  # rewards
                torch.zeros(batch, dtype=torch.bool))  # dones
        state["learner"], state["data"] = learner, data

    learner, data = state["learner"], state["data"]

    def step() -> None:  # the body of QLearner.forward's loop, one batch, no accumulation
        learner.optimizer.zero_grad()
        with learner.accelerator.autocast():
            loss, _ = learner.learn(*data, min_reward=0.0, monte_carlo_return=-1e4)
            learner.accelerator.backward(loss)
        learner.accelerator.clip_grad_norm_(learner.model.parameters(), learner.max_grad_norm)
        learner.optimizer.step()
        learner.ema_model.update()

    model.train()
    flops = _flops(step) if "train_flops" not in state else state["train_flops"]
    state["train_flops"] = flops
    step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = time.perf_counter() - started
    model.eval()
    return {"samples_per_s": steps * batch / elapsed, "flops_per_sample": flops / batch}


# ---- the peer venv ------------------------------------------------------------------------------


def ensure_venv(venv: Path) -> Path:
    """The venv's python, with the port importable; created (a few minutes) when missing."""
    python = venv / "bin" / "python"
    # open_clip is stubbed as the worker does (classifier_free_guidance_pytorch imports it; unused)
    probe = [str(python), "-c", "import sys, types; sys.modules['open_clip'] = types.ModuleType('open_clip'); "
             "import q_transformer, torch; print(torch.__version__)"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing q-transformer=={PEER_VERSION} into {venv} (separate venv; never a project dependency)",
          flush=True)
    # run from the project's venv, venv builds on the interpreter that venv was made from
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    constraints = venv / "constraints.txt"
    constraints.write_text(TORCH_PIN + "\n")
    subprocess.run([*pip, TORCH_PIN], check=True)
    subprocess.run([*pip, "-c", str(constraints), *PEER_NEEDS], check=True)
    subprocess.run([*pip, "--no-deps", *NO_DEPS], check=True)
    subprocess.run(probe, check=True)
    return python


class Peer:
    def __init__(self, python: Path, setup: dict, taskset: str | None):
        cmd = [str(python), str(Path(__file__).resolve()), "--worker", json.dumps(setup)]
        if taskset:
            cmd = ["taskset", "-c", taskset, *cmd]
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
        env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
                                     cwd=str(ROOT))

    def ask(self, **request) -> dict:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"peer worker exited ({self.proc.wait()})")
        reply = json.loads(line)
        if "error" in reply:
            print(f"peer {request['cmd']}: {reply['error']}\n{reply.get('traceback', '')}", file=sys.stderr)
        return reply

    def close(self) -> None:
        if self.proc.stdin:
            self.proc.stdin.close()
        self.proc.wait(timeout=60)


# ---- ours ---------------------------------------------------------------------------------------


class Ours:
    def __init__(self, image: int, tmp: Path):
        import torch
        from qt_common.action_spec import ActionSpec
        from qt_policy_node.decoder import PolicyDecoder
        from qt_trainer.config import MODEL_SIZES, ModelConfig
        from qt_trainer.export import export_policy, random_inputs
        from qt_trainer.model import QTransformer, count_parameters

        self.cfg = ModelConfig(image_height=image, image_width=image, **MODEL_SIZES["peer"])
        torch.manual_seed(0)
        self.model = QTransformer(self.cfg).eval()
        self.parameters = count_parameters(self.model)
        feeds = random_inputs(self.cfg, 1, np.random.default_rng(0))
        self.image, self.emb = torch.from_numpy(feeds["image"]), torch.from_numpy(feeds["instruction_embedding"])
        with torch.no_grad():
            self.decode_flops = _flops(lambda: self.model.greedy(self.image, self.emb))
        out = export_policy(self.model, ActionSpec.default(), tmp / "ours", name="peer", embeddings={},
                            text_encoder_id="none")
        self.decoder = PolicyDecoder(out, threads=1)
        self.feeds = feeds
        self.tmp = tmp
        self._trainer = None

    def decode_torch(self, n: int, warmup: int = 3) -> list[float]:
        import torch

        samples = []
        with torch.no_grad():
            for _ in range(n + warmup):
                started = time.perf_counter()
                self.model.greedy(self.image, self.emb)
                samples.append(time.perf_counter() - started)
        return samples[warmup:]

    def decode_onnx(self, n: int, warmup: int = 3) -> list[float]:
        samples = []
        image, emb = self.feeds["image"][0], self.feeds["instruction_embedding"][0]
        for _ in range(n + warmup):
            started = time.perf_counter()
            self.decoder.decode(image, emb)
            samples.append(time.perf_counter() - started)
        return samples[warmup:]

    def train(self, batch: int, steps: int) -> dict:
        from dataclasses import replace

        from qt_trainer.config import TrainConfig
        from qt_trainer.synthetic import write_synthetic_dataset
        from qt_trainer.train import Trainer
        from trainer_bench import RandomEmbedder

        if self._trainer is None:
            data = write_synthetic_dataset(self.tmp / "data", episodes=4, length=16,
                                           image_shape=(self.cfg.image_height, self.cfg.image_width, 3))
            cfg = TrainConfig(model=replace(self.cfg, algorithm="q_transformer"), steps=10**9, batch_size=batch,
                              device="cpu", num_threads=1, warmup_steps=1, checkpoint_every=10**9, log_every=10**9)
            self._trainer = Trainer(cfg, data, None, embedder=RandomEmbedder(), progress=False)
            self._train_flops = _flops(self._trainer.train_step) / batch
        self._trainer.train_step()
        started = time.perf_counter()
        for _ in range(steps):
            self._trainer.train_step()
        return {"samples_per_s": steps * batch / (time.perf_counter() - started), "flops_per_sample": self._train_flops}


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        return worker(sys.argv[2:])
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path,
                        default=Path(os.environ.get("QT_CACHE_DIR", Path.home() / ".cache" / "qt-robot")) / "peer-venv")
    parser.add_argument("--image", type=int, default=224)
    parser.add_argument("--repeats", type=int, default=2, help="interleaved repeats (first mover swapped each)")
    parser.add_argument("--decodes", type=int, default=60, help="timed decodes per side, metric and repeat")
    parser.add_argument("--train-steps", type=int, default=2, help="timed training steps per side and repeat")
    parser.add_argument("--train-batch", type=int, default=32)
    parser.add_argument("--taskset", help="CPU list for the peer worker (run this script itself under taskset)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    import tempfile

    import torch

    torch.set_num_threads(1)
    sys.path.insert(0, str(ROOT / "bench"))
    python = ensure_venv(args.venv)
    results: dict = {"image": args.image, "dims": 5, "bins": 256, "threads": 1, "train_batch": args.train_batch}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        peer = Peer(python, {"image": args.image, "dims": 5, "bins": 256, "threads": 1}, args.taskset)
        try:
            ours = Ours(args.image, tmp)
            info = peer.ask(cmd="info")
            results["peer_info"] = info
            results["ours_info"] = {"parameters": ours.parameters, "decode_flops": ours.decode_flops}
            cells: dict[str, dict[str, list]] = {k: {"ours": [], "peer": []} for k in
                                                  ("decode_torch", "decode_onnx", "train")}
            onnx_path = str(tmp / "peer.onnx")
            for repeat in range(args.repeats):
                sides = ("ours", "peer") if repeat % 2 == 0 else ("peer", "ours")
                for metric in cells:
                    for side in sides:
                        print(f"repeat {repeat + 1}/{args.repeats}: {metric} {side}", flush=True)
                        if side == "ours":
                            value = (ours.train(args.train_batch, args.train_steps) if metric == "train" else
                                     getattr(ours, metric)(args.decodes))
                        elif metric == "train":
                            value = peer.ask(cmd="train", batch=args.train_batch, steps=args.train_steps)
                        else:
                            value = peer.ask(cmd=metric, n=args.decodes, path=onnx_path)
                        cells[metric][side].append(value)
        finally:
            peer.close()
    table = summarise(cells, results)
    print("\n" + table)
    results["table"] = table
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


def summarise(cells: dict, results: dict) -> str:
    def p50(runs: list) -> float | None:
        values = [s for run in runs for s in (run.get("samples", []) if isinstance(run, dict) else run)]
        return float(np.median(values)) * 1e3 if values else None

    ours, peer = results["ours_info"], results["peer_info"]
    rows = [
        "| metric (batch 1 decode; 1 thread) | this project (`peer` size) | public port 0.5.0 | ratio |",
        "|---|---|---|---|",
        f"| parameters | {ours['parameters'] / 1e6:.1f} M | {peer.get('parameters', 0) / 1e6:.1f} M | |",
        f"| GFLOP per greedy decode (counted) | {ours['decode_flops'] / 1e9:.2f} | "
        f"{peer.get('decode_flops', 0) / 1e9:.2f} | |",
    ]
    for metric, label in (("decode_torch", "greedy decode, torch eager, p50"),
                          ("decode_onnx", "greedy decode, ONNX Runtime fp32, p50")):
        a = p50(cells[metric]["ours"])
        b = p50([r for r in cells[metric]["peer"] if "error" not in r])
        note = ""
        if metric == "decode_onnx" and cells[metric]["peer"]:
            first = cells[metric]["peer"][0]
            note = (f" (its graph exported here at opset 17; bins equal torch: {first.get('bins_equal_torch')})"
                    if "error" not in first else f" (export failed: {first['error'][:80]})")
        rows.append(f"| {label} | {a:.1f} ms | " + (f"{b:.1f} ms{note} | {b / a:.2f}x |" if b else f"-{note} | |"))
        results[f"{metric}_p50_ms"] = {"ours": a, "peer": b}
    train_ours = [r["samples_per_s"] for r in cells["train"]["ours"]]
    train_peer = [r["samples_per_s"] for r in cells["train"]["peer"] if "error" not in r]
    if train_ours and train_peer:
        a, b = float(np.median(train_ours)), float(np.median(train_peer))
        fa = cells["train"]["ours"][0]["flops_per_sample"] / 1e9
        fb = next(r for r in cells["train"]["peer"] if "error" not in r)["flops_per_sample"] / 1e9
        rows.append(f"| training, batch {results.get('train_batch', 32)}, samples/s (GFLOP per sample) | {a:.2f} "
                    f"({fa:.1f}) | {b:.3f} ({fb:.1f}) | {a / b:.1f}x |")
        results["train_samples_per_s"] = {"ours": train_ours, "peer": train_peer}
    return "\n".join(rows)


if __name__ == "__main__":
    raise SystemExit(main())
