"""Model and training configuration as plain dataclasses (JSON round-trip, validated).

Why dataclasses and not a config framework: checkpoints and policy cards store the config as
JSON and rebuild the exact same network from it; a flat dataclass is all that needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

ALGORITHMS = ("q_transformer", "bc")
OBS_MODES = ("image", "state")
OBS_TOKENS = ("keypoints", "objects", "both")
PRECISIONS = ("fp32", "bf16")  # TrainConfig.precision (CPU; CUDA uses amp)
Q_REGRESSIONS = ("mse", "bce")  # TrainConfig.q_regression


def _from_dict(cls: type, data: dict[str, Any], where: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown field(s) {unknown}; known: {sorted(known)}")
    values = dict(data)
    for f in fields(cls):
        if f.name in values and isinstance(values[f.name], list):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


@dataclass(frozen=True)
class ModelConfig:
    """Network shape. Image size, action dims and bins come from the dataset at train time.

    The default is small on purpose: it trains on a CPU and decodes far faster than 100 Hz on
    one core (bench/trainer_bench.py measures it).
    """

    algorithm: str = "q_transformer"
    image_height: int = 96
    image_width: int = 96
    num_dims: int = 5
    num_bins: int = 256
    embed_dim: int = 384  # instruction embedding size (all-MiniLM-L6-v2: 384)
    proprio_dim: int = 0
    # "image": the camera (policies for the robot). "state": object poses + proprio instead of
    # the image (debugging, users with a state estimator; not runnable in the policy node).
    obs_mode: str = "image"
    state_dim: int = 0  # state mode: object feature size (qt_common.proprio.object_features)
    # Two stride-2 stages then stride 1: a 64 px image keeps a 16x16 map, fine enough for the
    # ~1 cm a grasp needs (four stride-2 stages left 3x3 at 48 px and the policy could not
    # localise the cube). Empty = stride 2 everywhere (models trained before this change).
    conv_channels: tuple[int, ...] = (16, 32, 32)
    conv_strides: tuple[int, ...] = (2, 2, 1)
    coord_channels: bool = True  # x/y coordinate planes appended to the pixels (CoordConv)
    num_obs_tokens: int = 16  # spatial-softmax keypoints, each a token with its coordinates
    aux_dim: int = 0  # auxiliary head: object positions predicted from the keypoints (training only)
    # Image mode, what the transformer's prefix holds of the observation: "keypoints" (the
    # spatial-softmax tokens), "objects" (one token per object built from the positions the
    # auxiliary head reads off the keypoints: the low-dim model's structure, fed from pixels) or
    # "both" (docs/TRAINER.md, "Object tokens").
    obs_tokens: str = "keypoints"
    # Q-T: a second head on the action tokens predicts the recorded action (training only,
    # TrainConfig.action_aux_weight); greedy decoding never reads it.
    action_aux: bool = False
    d_model: int = 128
    num_layers: int = 2
    num_heads: int = 4
    ff_mult: int = 2
    image_mean: tuple[float, float, float] = (0.5, 0.5, 0.5)
    image_std: tuple[float, float, float] = (0.25, 0.25, 0.25)

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"model config: 'algorithm' must be one of {ALGORITHMS}, got {self.algorithm!r}")
        for name in ("image_height", "image_width", "num_dims", "embed_dim", "num_obs_tokens", "d_model",
                     "num_layers", "num_heads", "ff_mult"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"model config: {name!r} must be >= 1, got {getattr(self, name)}")
        if self.num_bins < 2:
            raise ValueError(f"model config: 'num_bins' must be >= 2, got {self.num_bins}")
        if self.proprio_dim < 0:
            raise ValueError(f"model config: 'proprio_dim' must be >= 0, got {self.proprio_dim}")
        if not self.conv_channels:
            raise ValueError("model config: 'conv_channels' must not be empty")
        if self.conv_strides and (len(self.conv_strides) != len(self.conv_channels)
                                  or min(self.conv_strides) < 1):
            raise ValueError(f"model config: 'conv_strides' must give one stride >= 1 per conv stage "
                             f"({len(self.conv_channels)}), got {self.conv_strides}")
        if self.obs_mode not in OBS_MODES:
            raise ValueError(f"model config: 'obs_mode' must be one of {OBS_MODES}, got {self.obs_mode!r}")
        if self.aux_dim < 0 or self.state_dim < 0:
            raise ValueError("model config: 'aux_dim' and 'state_dim' must be >= 0")
        if self.obs_tokens not in OBS_TOKENS:
            raise ValueError(f"model config: 'obs_tokens' must be one of {OBS_TOKENS}, got {self.obs_tokens!r}")
        if self.obs_tokens != "keypoints" and self.obs_mode != "image":
            raise ValueError("model config: 'obs_tokens' is for obs_mode 'image' (state mode has object tokens)")
        if self.d_model % self.num_heads:
            raise ValueError(
                f"model config: 'd_model' ({self.d_model}) must be divisible by 'num_heads' ({self.num_heads})"
            )
        if len(self.image_mean) != 3 or len(self.image_std) != 3 or min(self.image_std) <= 0:
            raise ValueError("model config: 'image_mean'/'image_std' must be 3 values, std > 0")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        return _from_dict(cls, data, "model config")


# Named sizes for `qt train --model-size`; anything else goes through a JSON config file.
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"conv_channels": (8, 16), "conv_strides": (2, 2), "num_obs_tokens": 2, "d_model": 32, "num_layers": 1,
             "num_heads": 2},
    "small": {},
    "base": {"conv_channels": (32, 64, 128, 192), "conv_strides": (2, 2, 1, 1), "num_obs_tokens": 16, "d_model": 256,
             "num_layers": 4, "num_heads": 8},
    # The public port's decode FLOPs at 224 px (bench/peer_compare.py counts both): for speed comparisons only.
    "peer": {"conv_channels": (148, 296, 592, 1184), "conv_strides": (2, 2, 2, 2), "num_obs_tokens": 16,
             "d_model": 512, "num_layers": 4, "num_heads": 8},
}


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation and loss settings; every paper ablation is a switch here."""

    model: ModelConfig = field(default_factory=ModelConfig)
    steps: int = 2000
    batch_size: int = 32  # global batch (split across DDP ranks)
    lr: float = 3e-4
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    lr_schedule: str = "cosine"  # or "constant"
    warmup_steps: int = 100
    gamma: float | None = None  # None: the dataset's gamma
    # n-step returns and the conservative weight: chosen by the R4 sweep (bench/qt_sweep.py,
    # docs/TRAINER.md). 1-step targets left failed episodes' Q near 0.5 after 6000 steps (zeros
    # crawl back one step per backup along 70-step failure tails); alpha 1 let greedy leave the
    # data's bins. 10 and 10: 19/30 validation layouts on mixed data vs 0-2/30.
    n_step: int = 10
    alpha: float = 10.0  # weight of the conservative term
    use_conservative: bool = True
    use_mc_bound: bool = True
    # Q-T: neighbouring bins share the data bin's target, Gaussian of this width in bins
    # (losses.q_transformer_loss; 0: the paper's one-hot objective).
    q_bin_sigma: float = 0.0
    # Q-T: "mse" (the paper's squared error) or "bce" (cross-entropy on the logits: the same
    # fixed point, no sigmoid saturation; losses.q_transformer_loss).
    q_regression: str = "mse"
    # Q-T: weight of the action-prediction auxiliary (cross-entropy of the recorded bins, all
    # transitions, soft targets of bc_label_sigma) on a head of its own; 0: off. Why: from
    # pixels, Q-learning alone leaves the state representation blurred where the value hardly
    # changes (4 cm from the cube or above it, both lead to success) and greedy then stalls next
    # to the cube; predicting the operator's next move forces the trunk to resolve those states.
    # Reward-free (successes and failures alike): selecting actions stays the Q head's job.
    action_aux_weight: float = 0.0
    # A checkpoint (run dir or .pt) whose weights of matching name and shape start this run,
    # e.g. a BC run under a Q-T (heads of the same shape are copied too and re-learned under
    # the new loss); "" starts from scratch.
    init_from: str = ""
    target_update: str = "polyak"  # or "copy"
    tau: float = 0.005  # Polyak rate per step
    target_copy_every: int = 500  # steps between copies when target_update == "copy"
    augment_shift: int = 0  # random-shift augmentation in pixels (0: off)
    # Auxiliary loss weight: predict the objects' positions from the keypoints, when the dataset
    # has object poses (sim data); a localisation signal, never a model input.
    aux_weight: float = 1.0
    bc_label_sigma: float = 2.0  # BC only: soft target over neighbouring bins (losses.bc_loss)
    time_budget_s: float = 0.0  # stop at this wall time (0: off); the LR schedule follows the budget
    eval_every: int = 0  # steps between in-process success checks on held-out layouts (0: off)
    eval_episodes_per_task: int = 10
    eval_horizon: int = 0  # 0: the sim's default horizon
    eval_seed_base: int = 200_000  # validation layouts (qt eval's test layouts start at 100000)
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    amp: bool = True  # bf16 autocast, on CUDA only
    # CPU arithmetic: "fp32", or "bf16" (torch CPU autocast: matmuls/convs in bfloat16, weights,
    # optimiser and losses in fp32). docs/TRAINER.md "bf16 on CPU" has the measurement.
    precision: str = "fp32"
    # torch intra-op threads. 1 by default: on a shared 2-core machine 2 threads next to another
    # busy process ran over 10x slower than 1 (bench/trainer_bench.py --threads-compare).
    num_threads: int = 1
    log_every: int = 20
    checkpoint_every: int = 500

    def __post_init__(self) -> None:
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(f"train config: need steps >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}")
        if self.lr_schedule not in ("cosine", "constant"):
            raise ValueError(f"train config: 'lr_schedule' must be cosine or constant, got {self.lr_schedule!r}")
        if self.target_update not in ("polyak", "copy"):
            raise ValueError(f"train config: 'target_update' must be polyak or copy, got {self.target_update!r}")
        if self.gamma is not None and not 0.0 < self.gamma <= 1.0:
            raise ValueError(f"train config: 'gamma' must be in (0, 1], got {self.gamma}")
        if self.n_step < 1:
            raise ValueError(f"train config: 'n_step' must be >= 1, got {self.n_step}")
        if not 0.0 < self.tau <= 1.0 or self.target_copy_every < 1:
            raise ValueError("train config: need 0 < tau <= 1 and target_copy_every >= 1")
        if min(self.alpha, self.augment_shift, self.aux_weight, self.bc_label_sigma, self.q_bin_sigma,
               self.action_aux_weight) < 0:
            raise ValueError("train config: 'alpha', 'augment_shift', 'aux_weight', 'bc_label_sigma', 'q_bin_sigma' "
                             "and 'action_aux_weight' must be >= 0")
        if self.time_budget_s < 0 or self.eval_every < 0 or self.eval_episodes_per_task < 1 or self.eval_horizon < 0:
            raise ValueError("train config: need time_budget_s >= 0, eval_every >= 0, eval_episodes_per_task >= 1, "
                             "eval_horizon >= 0")
        if self.num_threads < 0:
            raise ValueError(f"train config: 'num_threads' must be >= 0 (0: torch's default), got {self.num_threads}")
        if self.q_regression not in Q_REGRESSIONS:
            raise ValueError(f"train config: 'q_regression' must be one of {Q_REGRESSIONS}, got {self.q_regression!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"train config: 'precision' must be one of {PRECISIONS}, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ValueError(f"train config: 'device' must be auto, cpu or cuda, got {self.device!r}")

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["model"] = self.model.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        values = dict(data)
        if "model" in values and isinstance(values["model"], dict):
            values["model"] = ModelConfig.from_dict(values["model"])
        return _from_dict(cls, values, "train config")
