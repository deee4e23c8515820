"""``qt train``: the training loop (Q-Transformer or the BC baseline, one code path).

AdamW with gradient clipping, warmup + cosine (or constant) learning rate, bf16 autocast on
CUDA, deterministic under a seed (the batch of step k is a function of (seed, k)), atomic
checkpoints that resume bit-exactly, TensorBoard scalars, a tqdm bar with samples/s and ETA,
and DistributedDataParallel when started by torchrun (NCCL on GPUs, gloo on CPUs):

    qt train datasets/pick --out runs/pick --steps 20000
    torchrun --standalone --nproc_per_node 2 -m qt_trainer.train datasets/pick --out runs/pick
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
from qt_common.dataset import Dataset
from qt_common.proprio import object_features
from torch import Tensor

from qt_trainer.checkpoint import load_checkpoint, save_checkpoint
from qt_trainer.config import (
    ALGORITHMS,
    MODEL_SIZES,
    OBS_MODES,
    OBS_TOKENS,
    PRECISIONS,
    Q_REGRESSIONS,
    ModelConfig,
    TrainConfig,
)
from qt_trainer.data import Batch, TransitionSampler, object_positions
from qt_trainer.losses import LossSettings, bc_loss, bellman_targets, q_transformer_loss
from qt_trainer.model import QTransformer

CHECKPOINT_NAME = "checkpoint.pt"
BEST_NAME = "best.pt"  # the checkpoint with the highest in-training success (with eval_every)
EVAL_LOG_NAME = "eval_log.jsonl"


def _distributed() -> tuple[int, int, int]:
    """(rank, world_size, local_rank) from torchrun's environment; (0, 1, 0) otherwise."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    return int(os.environ.get("RANK", "0")), world, int(os.environ.get("LOCAL_RANK", "0"))


def _lr_factor(step: int, cfg: TrainConfig, time_progress: float = 0.0) -> float:
    """Warmup, then cosine over the run; with a time budget the run's progress is whichever of
    steps and wall time is further along, so a budgeted run still anneals before it stops."""
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    if cfg.lr_schedule == "constant":
        return 1.0
    progress = min(1.0, max((step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps), time_progress))
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """Owns the networks, optimiser, sampler and logs of one training run.

    ``embedder`` maps instruction strings to frozen embeddings (default: all-MiniLM-L6-v2 via
    qt_trainer.text). ``out_dir`` None keeps everything in memory (tests).
    """

    def __init__(self, config: TrainConfig, data: str | Path | Dataset, out_dir: str | Path | None = None, *,
                 embedder: Any = None, resume: bool = False, progress: bool = True, command: str = ""):
        self.rank, self.world_size, local_rank = _distributed()
        if self.world_size > 1 and not dist.is_initialized():
            dist.init_process_group("nccl" if config.device != "cpu" and torch.cuda.is_available() else "gloo")
        if config.device == "cuda" and not torch.cuda.is_available():
            raise RuntimeError("device: 'cuda' requested but torch sees no CUDA device")
        use_cuda = config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available())
        self.device = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
        if use_cuda:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # deterministic cuBLAS
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = False
        if config.num_threads > 0 and not use_cuda:
            torch.set_num_threads(config.num_threads)
        torch.use_deterministic_algorithms(True, warn_only=True)
        if config.batch_size % self.world_size:
            raise ValueError(f"batch_size: {config.batch_size} is not divisible by the {self.world_size} DDP ranks")

        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.dataset = data if isinstance(data, Dataset) else Dataset(data)
        self.spec = self.dataset.action_spec
        state = load_checkpoint(self.out_dir / CHECKPOINT_NAME) if resume and self.out_dir else None
        if resume and state is None:
            raise ValueError("resume: needs an output directory holding checkpoint.pt")
        if state is not None:
            saved = TrainConfig.from_dict(state["train_config"])
            config = replace(saved, steps=config.steps, log_every=config.log_every,
                             checkpoint_every=config.checkpoint_every)
            if state.get("data_digest") != self.dataset.digest():
                raise ValueError(
                    f"resume: checkpoint was trained on data {state.get('data_digest')!r}, this dataset is "
                    f"{self.dataset.digest()!r}"
                )
        self.config = config
        self.gamma = float(config.gamma if config.gamma is not None else self.dataset.gamma)
        self.settings = LossSettings(n_step=config.n_step, alpha=config.alpha,
                                     use_conservative=config.use_conservative, use_mc_bound=config.use_mc_bound,
                                     bin_sigma=config.q_bin_sigma, regression=config.q_regression)
        image_mode = config.model.obs_mode == "image"
        self.sampler = TransitionSampler(self.dataset, self.gamma, config.n_step, config.seed, config.augment_shift,
                                         images=image_mode)
        self.state_features = self._state_features(image_mode)
        self.aux_targets = self._aux_targets(image_mode, config.aux_weight, config.model.obs_tokens != "keypoints")

        if state is not None:
            self.instructions = list(state["instructions"])
            embeddings = np.asarray(state["embeddings"], np.float32)
            self.text_encoder_id = state.get("text_encoder_id", "")
        else:
            if embedder is None:
                from qt_trainer.text import SentenceEmbedder

                embedder = SentenceEmbedder()
            self.instructions = list(self.dataset.instructions)
            embeddings = np.asarray(embedder.embed(self.instructions), np.float32)
            self.text_encoder_id = getattr(embedder, "id", "")
        self.embeddings = torch.from_numpy(embeddings).to(self.device)

        h, w, _ = self.dataset.image_shape
        model_cfg = replace(config.model, image_height=h, image_width=w, num_dims=self.spec.num_dims,
                            num_bins=self.spec.num_bins, embed_dim=int(embeddings.shape[1]),
                            proprio_dim=int(self.dataset.proprio.shape[1]),
                            state_dim=0 if self.state_features is None else int(self.state_features.shape[1]),
                            aux_dim=0 if self.aux_targets is None else int(self.aux_targets.shape[1]),
                            action_aux=config.model.algorithm == "q_transformer" and config.action_aux_weight > 0)
        if state is not None and ModelConfig.from_dict(state["model_config"]) != model_cfg:
            raise ValueError("resume: the checkpoint's model config differs from this dataset's shapes")
        torch.manual_seed(config.seed)
        self.model = QTransformer(model_cfg).to(self.device)
        self._set_input_statistics()
        # names of the weights taken from config.init_from (a resume loads its own instead)
        self.initialised_from = self._initialise_from(Path(config.init_from)) if config.init_from and not state else []
        self.is_q = model_cfg.algorithm == "q_transformer"
        self.target = copy.deepcopy(self.model).requires_grad_(False).eval() if self.is_q else None
        self.net: torch.nn.Module = self.model
        if self.world_size > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[self.device.index] if use_cuda else None)
        decay = [p for n, p in self.model.named_parameters() if p.ndim >= 2 and "embed" not in n and "pos" not in n]
        no_decay = [p for n, p in self.model.named_parameters() if not (p.ndim >= 2 and "embed" not in n
                                                                       and "pos" not in n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=config.lr, betas=(0.9, 0.99))
        self.wall_time_s = 0.0  # read by the LR lambda, which LambdaLR calls at construction
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: _lr_factor(s, self.config, self._time_progress()))
        self.amp = bool(config.amp and use_cuda)
        self.cpu_bf16 = config.precision == "bf16" and not use_cuda  # CPU autocast (--precision bf16)
        self.step = 0
        self.command = command
        self.eval_history: list[dict[str, Any]] = []
        self.best: dict[str, Any] | None = None  # {"step", "success_rate", ...} of best.pt
        if state is not None:
            self._load_state(state)
        self.progress = progress and self.rank == 0
        self._writer = None
        self._evaluator: Any = None

    # ---- observations beyond the image ----------------------------------------------------

    def _state_features(self, image_mode: bool) -> np.ndarray | None:
        """State mode: object features of every frame, computed once (qt_common.proprio)."""
        if image_mode:
            return None
        poses = self.dataset.object_poses
        if poses is None:
            raise ValueError(f"obs_mode 'state': dataset {self.dataset.path} has no object_poses "
                             "(bags recorded without /sim/object_poses)")
        return object_features(np.asarray(poses).reshape(len(self.dataset), -1, 7))

    def _aux_targets(self, image_mode: bool, weight: float, object_tokens: bool) -> np.ndarray | None:
        """Standardised object positions [N, K * 3] for the auxiliary loss, if the data has poses."""
        positions = object_positions(self.dataset) if image_mode and weight > 0 else None
        if positions is None:
            if object_tokens:
                raise ValueError(f"obs_tokens: object tokens need obs_mode 'image', aux_weight > 0 and a dataset "
                                 f"with object_poses ({self.dataset.path})")
            return None
        xyz, mean, std = positions
        return ((xyz - mean) / std).astype(np.float32)

    def _set_input_statistics(self) -> None:
        """Proprio (and state) standardisation from the training data, stored in the model."""
        with torch.no_grad():
            if self.model.cfg.proprio_dim:
                values = np.asarray(self.dataset.proprio, np.float64)
                self.model.proprio_mean.copy_(torch.from_numpy(values.mean(0)))
                self.model.proprio_std.copy_(torch.from_numpy(np.maximum(values.std(0), 1e-3)))
            if self.state_features is not None:
                self.model.state_mean.copy_(torch.from_numpy(self.state_features.mean(0)))
                self.model.state_std.copy_(torch.from_numpy(np.maximum(self.state_features.std(0), 1e-3)))

    def _initialise_from(self, path: Path) -> list[str]:
        """Copy the weights of ``path``'s model whose name and shape match this model's; returns
        their names. The input statistics stay this dataset's.

        The prefix's position embeddings are copied row by row when the source has fewer prefix
        tokens (a model without object tokens, which come last): the tokens both have keep theirs."""
        source = load_checkpoint(path)["model"]
        own = self.model.state_dict()
        statistics = {"proprio_mean", "proprio_std", "state_mean", "state_std"}
        taken = [k for k, v in source.items() if k in own and k not in statistics and own[k].shape == v.shape]
        if not taken:
            raise ValueError(f"init_from: {path} has no weights of this model's names and shapes")
        weights = {**own, **{k: source[k] for k in taken}}
        rows = source.get("prefix_pos")
        if rows is not None and "prefix_pos" not in taken and rows.shape[1:] == own["prefix_pos"].shape[1:] \
                and rows.shape[0] < own["prefix_pos"].shape[0]:
            weights["prefix_pos"] = torch.cat([rows, own["prefix_pos"][rows.shape[0]:]])
            taken.append("prefix_pos")
        self.model.load_state_dict(weights)
        return taken

    def _time_progress(self) -> float:
        budget = self.config.time_budget_s
        return self.wall_time_s / budget if budget > 0 else 0.0

    # ---- state ---------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "train_config": self.config.to_dict(),
            "model_config": self.model.cfg.to_dict(),
            "model": self.model.state_dict(),
            "target": self.target.state_dict() if self.target is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "action_spec": self.spec.to_dict(),
            "data_digest": self.dataset.digest(),
            "data_path": str(self.dataset.path),
            "instructions": self.instructions,
            "embeddings": self.embeddings.cpu().numpy(),
            "text_encoder_id": self.text_encoder_id,
            "command": self.command,
            "wall_time_s": self.wall_time_s,
            "world_size": self.world_size,
            "control_rate_hz": self._control_rate_hz(),
            "proprio_layout": self.dataset.proprio_layout,
            "eval_history": self.eval_history,
            "best": self.best,
        }

    def _control_rate_hz(self) -> float | None:
        """The recording's control rate (bags carry it; the converter copies it per episode)."""
        rates = [float(e.get("control_rate_hz") or 0) for e in self.dataset.episodes]
        rates = [r for r in rates if r > 0]
        return float(np.median(rates)) if rates else None

    def _load_state(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        self.step = int(state["step"])
        self.wall_time_s = float(state.get("wall_time_s", 0.0))
        self.eval_history = list(state.get("eval_history") or [])
        self.best = state.get("best")

    def save(self, path: Path | None = None) -> Path | None:
        """Write the checkpoint (rank 0 only); returns its path."""
        if self.rank != 0:
            return None
        if path is None:
            if self.out_dir is None:
                raise ValueError("save: no out_dir and no path given")
            path = self.out_dir / CHECKPOINT_NAME
        return save_checkpoint(path, self.state_dict())

    # ---- one step ------------------------------------------------------------------------

    def _tensors(self, batch: Batch) -> dict[str, Tensor]:
        dev = self.device
        out = {name: torch.from_numpy(np.ascontiguousarray(getattr(batch, name))).to(dev)
               for name in ("image", "next_image", "bins", "reward", "discount", "return_to_go")}
        if self.state_features is not None:  # state mode: the observation is the object features
            out["image"] = torch.from_numpy(self.state_features[batch.index]).to(dev)
            out["next_image"] = torch.from_numpy(self.state_features[batch.next_index]).to(dev)
        out["aux"] = torch.from_numpy(self.aux_targets[batch.index]).to(dev) if self.aux_targets is not None else None
        out["embedding"] = self.embeddings[torch.from_numpy(batch.instruction).to(dev)]
        has_proprio = self.model.cfg.proprio_dim > 0
        out["proprio"] = torch.from_numpy(batch.proprio).to(dev) if has_proprio else None
        out["next_proprio"] = torch.from_numpy(batch.next_proprio).to(dev) if has_proprio else None
        return out

    def train_step(self) -> dict[str, float]:
        """One optimiser step on this rank's share of the step's global batch."""
        idx = self.sampler.indices(self.step, self.config.batch_size, self.rank, self.world_size)
        t = self._tensors(self.sampler.batch(idx, self.step))
        self.net.train()
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp or self.cpu_bf16):
            if t["aux"] is not None or self.model.cfg.action_aux:
                logits, aux, action_logits = self.net(t["image"], t["embedding"], t["bins"], t["proprio"],
                                                      with_aux=True)
            else:
                logits, aux, action_logits = self.net(t["image"], t["embedding"], t["bins"], t["proprio"]), None, None
            if self.is_q:
                assert self.target is not None
                with torch.no_grad():
                    same = (torch.sigmoid(self.target(t["image"], t["embedding"], t["bins"], t["proprio"]).float())
                            if self.settings.n_step == 1 else None)
                    nxt = torch.sigmoid(self.target.first_dim_logits(
                        t["next_image"], t["embedding"], t["next_proprio"]).float())
                targets, td = bellman_targets(same, nxt, t["reward"], t["discount"], t["return_to_go"],
                                              self.model.cfg.num_dims, self.settings)
                loss, parts = q_transformer_loss(logits, t["bins"], targets, self.settings)
                parts["target/td_mean"] = td.mean()
                parts["target/mc_bound_active"] = (t["return_to_go"][:, None] > td).float().mean()
            else:
                loss, parts = bc_loss(logits, t["bins"], self.config.bc_label_sigma)
            if aux is not None:
                aux_loss = torch.nn.functional.mse_loss(aux.float(), t["aux"])
                loss = loss + self.config.aux_weight * aux_loss
                parts["loss/aux"] = aux_loss.detach()
            if action_logits is not None:
                action_loss, action_parts = bc_loss(action_logits, t["bins"], self.config.bc_label_sigma)
                loss = loss + self.config.action_aux_weight * action_loss
                parts["loss/action_aux"] = action_loss.detach()
                parts["action_aux/accuracy"] = action_parts["bc/accuracy"]
            parts["loss/total"] = loss.detach()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.step += 1
        self._update_target()
        parts["grad_norm"] = grad_norm
        parts["lr"] = torch.tensor(self.optimizer.param_groups[0]["lr"])
        return {k: float(v) for k, v in parts.items()}

    @torch.no_grad()
    def _update_target(self) -> None:
        if self.target is None:
            return
        online, target = list(self.model.parameters()), list(self.target.parameters())
        if self.config.target_update == "polyak":
            torch._foreach_lerp_(target, online, self.config.tau)
        elif self.step % self.config.target_copy_every == 0:
            torch._foreach_copy_(target, online)

    # ---- the loop ------------------------------------------------------------------------

    def _tb(self):  # -> SummaryWriter | None
        if self._writer is None and self.rank == 0 and self.out_dir is not None:
            from torch.utils.tensorboard import SummaryWriter

            self._writer = SummaryWriter(str(self.out_dir / "tensorboard"))
        return self._writer

    def run(self, steps: int | None = None) -> dict[str, Any]:
        """Train until ``steps`` (default: config.steps) total steps or the time budget; checkpoint
        on the way; with ``eval_every``, check success on held-out layouts and keep the best."""
        from tqdm import tqdm

        total = self.config.steps if steps is None else steps
        batch = self.config.batch_size
        budget = self.config.time_budget_s
        start_step, base_wall = self.step, self.wall_time_s
        started, eval_s = time.perf_counter(), 0.0
        bar = tqdm(total=total * batch, initial=self.step * batch, unit="sample", unit_scale=True,
                   disable=not self.progress, dynamic_ncols=True, mininterval=1.0,
                   desc=f"train {self.model.cfg.algorithm}")
        last: dict[str, float] = {}
        try:
            while self.step < total and not (budget > 0 and self.wall_time_s >= budget):
                last = self.train_step()
                bar.update(batch)
                elapsed = time.perf_counter() - started - eval_s  # training time, evaluations excluded
                self.wall_time_s = base_wall + elapsed
                if self.step % self.config.log_every == 0 or self.step == total:
                    last["samples_per_s"] = (self.step - start_step) * batch / max(elapsed, 1e-9)
                    self._log(last)
                    bar.set_postfix(loss=f"{last['loss/total']:.4f}", refresh=False)
                if self.config.eval_every and self.step % self.config.eval_every == 0:
                    eval_s += self.evaluate_now(bar.write)
                if self.out_dir is not None and self.step % self.config.checkpoint_every == 0:
                    self.save()
            if self.config.eval_every and (not self.eval_history or self.eval_history[-1]["step"] != self.step):
                self.evaluate_now(bar.write)
        finally:
            bar.close()
            if self._evaluator is not None:
                self._evaluator.close()
                self._evaluator = None
        if self.out_dir is not None:
            self.save()
        if self._writer is not None:
            self._writer.flush()
        return {"step": self.step, "wall_time_s": self.wall_time_s, **last}

    # ---- success during training -----------------------------------------------------------

    def evaluator(self):  # -> RolloutEvaluator
        """Held-out layouts of the dataset's tasks, each with a wording the dataset has."""
        if self._evaluator is None:
            from qt_trainer.rollouts import RolloutEvaluator, task_wordings

            tasks = sorted({str(r["task_id"]) for r in self.dataset.episodes if r.get("task_id")})
            if not tasks:
                raise ValueError(f"eval_every: dataset {self.dataset.path} names no task ids (not sim data)")
            wordings = task_wordings(tasks, self.instructions)
            vectors = self.embeddings.cpu().numpy()
            embeddings = {text: vectors[i] for i, text in enumerate(self.instructions)}
            h, w, _ = self.dataset.image_shape
            rate = self._control_rate_hz() or 10.0
            self._evaluator = RolloutEvaluator(
                tasks=sorted(wordings), wordings=wordings, embeddings=embeddings, image_hw=(h, w),
                proprio_layout=self.dataset.proprio_layout, obs_mode=self.model.cfg.obs_mode, spec=self.spec,
                control_period_s=1.0 / rate, episodes_per_task=self.config.eval_episodes_per_task,
                horizon=self.config.eval_horizon, seed_base=self.config.eval_seed_base)
        return self._evaluator

    def evaluate_now(self, write=print) -> float:
        """One success check; logs it, keeps best.pt. Returns the seconds it took."""
        if self.rank != 0:
            return 0.0
        report = self.evaluator().evaluate(self.model, self.device)
        entry = {"step": self.step, "train_wall_s": round(self.wall_time_s, 1), **report.to_dict()}
        self.eval_history.append(entry)
        write(f"eval @ step {self.step} ({self.wall_time_s / 60:.1f} train-min): {report.line()} "
              f"in {report.wall_s:.0f} s")
        writer = self._tb()
        if writer is not None:
            writer.add_scalar("eval/success_rate", report.rate, self.step)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            with open(self.out_dir / EVAL_LOG_NAME, "a") as log:
                log.write(json.dumps(entry) + "\n")
        if self.best is None or report.rate >= self.best["success_rate"]:
            self.best = {"step": self.step, "success_rate": report.rate, "successes": report.successes,
                         "episodes": report.episodes, "train_wall_s": self.wall_time_s}
            if self.out_dir is not None:
                self.save(self.out_dir / BEST_NAME)
        return report.wall_s

    def _log(self, metrics: dict[str, float]) -> None:
        writer = self._tb()
        if writer is None:
            return
        for key, value in metrics.items():
            writer.add_scalar(key, value, self.step)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


# ---- command line --------------------------------------------------------------------------


def _config_from_args(args: argparse.Namespace) -> TrainConfig:
    base = TrainConfig.from_dict(json.loads(Path(args.config).read_text())) if args.config else TrainConfig()
    model = base.model
    if args.model_size:
        model = replace(ModelConfig(), **MODEL_SIZES[args.model_size])
    if args.algorithm:
        model = replace(model, algorithm=args.algorithm)
    if args.obs_mode:
        model = replace(model, obs_mode=args.obs_mode)
    if args.obs_tokens:
        model = replace(model, obs_tokens=args.obs_tokens)
    overrides = {
        "steps": args.steps, "batch_size": args.batch_size, "lr": args.lr, "lr_schedule": args.lr_schedule,
        "warmup_steps": args.warmup_steps, "gamma": args.gamma, "n_step": args.n_step, "alpha": args.alpha,
        "target_update": args.target_update, "tau": args.tau, "target_copy_every": args.target_copy_every,
        "augment_shift": args.augment_shift, "seed": args.seed, "device": args.device,
        "num_threads": args.threads, "log_every": args.log_every, "checkpoint_every": args.checkpoint_every,
        "aux_weight": args.aux_weight, "bc_label_sigma": args.bc_label_sigma, "q_bin_sigma": args.q_bin_sigma,
        "q_regression": args.q_regression, "action_aux_weight": args.action_aux_weight,
        "init_from": None if args.init_from is None else str(args.init_from),
        "eval_every": args.eval_every,
        "eval_episodes_per_task": args.eval_episodes_per_task, "eval_horizon": args.eval_horizon,
        "eval_seed_base": args.eval_seed_base,
        "time_budget_s": None if args.time_budget_min is None else 60.0 * args.time_budget_min,
    }
    values = {k: v for k, v in overrides.items() if v is not None}
    if args.no_conservative:
        values["use_conservative"] = False
    if args.no_mc_bound:
        values["use_mc_bound"] = False
    if args.no_amp:
        values["amp"] = False
    if args.precision:
        values["precision"] = args.precision
    return replace(base, model=model, **values)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qt train", description="Train a Q-Transformer or BC policy on a dataset.")
    parser.add_argument("data", type=Path, help="dataset directory (qt convert output)")
    parser.add_argument("--out", type=Path, required=True, help="run directory: checkpoint.pt, tensorboard/")
    parser.add_argument("--config", type=Path, help="TrainConfig JSON (flags below override it)")
    parser.add_argument("--algorithm", choices=ALGORITHMS)
    parser.add_argument("--model-size", choices=sorted(MODEL_SIZES))
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--lr", type=float)
    parser.add_argument("--lr-schedule", choices=("cosine", "constant"))
    parser.add_argument("--warmup-steps", type=int)
    parser.add_argument("--gamma", type=float, help="discount (default: the dataset's)")
    parser.add_argument("--n-step", type=int)
    parser.add_argument("--alpha", type=float, help="conservative term weight")
    parser.add_argument("--no-conservative", action="store_true", help="ablation: drop the conservative term")
    parser.add_argument("--no-mc-bound", action="store_true", help="ablation: drop the Monte Carlo lower bound")
    parser.add_argument("--target-update", choices=("polyak", "copy"))
    parser.add_argument("--tau", type=float)
    parser.add_argument("--target-copy-every", type=int)
    parser.add_argument("--augment-shift", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"))
    parser.add_argument("--no-amp", action="store_true")
    parser.add_argument("--precision", choices=PRECISIONS,
                        help="CPU arithmetic: fp32 (default) or bf16 autocast (docs/TRAINER.md)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default 1: see docs/TRAINER.md)")
    parser.add_argument("--obs-mode", choices=OBS_MODES,
                        help="image (default) or state: object poses + proprio instead of the image (sim data)")
    parser.add_argument("--obs-tokens", choices=OBS_TOKENS,
                        help="image mode: the prefix holds keypoints (default), objects (one token per object "
                             "from the predicted positions; training needs object poses) or both (docs/TRAINER.md)")
    parser.add_argument("--bc-label-sigma", type=float,
                        help="BC: Gaussian soft target over neighbouring bins, in bins (default 2; 0: one-hot)")
    parser.add_argument("--q-bin-sigma", type=float,
                        help="Q-T: neighbouring bins share the data bin's target, Gaussian width in bins (0: one-hot)")
    parser.add_argument("--q-regression", choices=Q_REGRESSIONS,
                        help="Q-T: squared error (mse, the paper's) or cross-entropy on the logits (bce)")
    parser.add_argument("--action-aux-weight", type=float,
                        help="Q-T: weight of the action-prediction auxiliary head (0: off; docs/TRAINER.md)")
    parser.add_argument("--init-from", type=Path,
                        help="checkpoint whose weights of matching name and shape start this run (e.g. a BC run)")
    parser.add_argument("--aux-weight", type=float, help="object-position auxiliary loss weight (default 1; 0: off)")
    parser.add_argument("--time-budget-min", type=float, help="stop after this many minutes of training")
    parser.add_argument("--eval-every", type=int,
                        help="steps between success checks on held-out sim layouts (keeps best.pt; 0: off)")
    parser.add_argument("--eval-episodes-per-task", type=int)
    parser.add_argument("--eval-seed-base", type=int,
                        help="first layout seed of those checks (default 200000: validation layouts, kept apart from "
                        "qt eval's test layouts at 100000)")
    parser.add_argument("--eval-horizon", type=int, help="episode length of those checks (default: the sim's)")
    parser.add_argument("--log-every", type=int)
    parser.add_argument("--checkpoint-every", type=int)
    parser.add_argument("--resume", action="store_true", help="continue from <out>/checkpoint.pt")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    if args.resume and args.steps is None and (args.out / CHECKPOINT_NAME).is_file():
        args.steps = int(load_checkpoint(args.out / CHECKPOINT_NAME)["train_config"]["steps"])
    command = "qt train " + shlex.join(sys.argv[1:] if argv is None else argv)
    try:
        config = _config_from_args(args)
        trainer = Trainer(config, args.data, args.out, resume=args.resume, progress=not args.no_progress,
                          command=command)
    except (ValueError, RuntimeError, OSError) as exc:
        print(f"qt train: {exc}", file=sys.stderr)
        return 1
    if trainer.rank == 0:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "train_config.json").write_text(json.dumps(trainer.config.to_dict(), indent=1))
    summary = trainer.run()
    trainer.close()
    if trainer.rank == 0:
        shown = {k: round(v, 5) if isinstance(v, float) else v for k, v in summary.items()}
        print(f"done: {json.dumps(shown)}")
        print(f"checkpoint: {args.out / CHECKPOINT_NAME}")
    if trainer.world_size > 1:
        dist.destroy_process_group()
    return 0


if __name__ == "__main__":
    sys.exit(main())
