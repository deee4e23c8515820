"""The Q-Transformer network: FiLM conv encoder -> observation tokens -> causal transformer.

Sequence layout (one sample):

    [text, obs_1 .. obs_K, (proprio), (object_1 .. object_N)]  [act_0, act_1, .., act_{D-1}]

``obs_k`` are spatial-softmax keypoints of the conv feature map (image mode: a >= 16x16 map at
64 px, coordinates kept), or one token per object from its features (state mode, for
debugging). Image mode with object tokens (``ModelConfig.obs_tokens`` "objects" or "both") adds
one token per object built from the positions the auxiliary head reads off the keypoints, the
state mode's structure fed from pixels; "objects" leaves the keypoints out of the prefix. The
proprio vector is standardised inside the network with the training data's statistics
(buffers saved with the weights and exported into the ONNX graph), so callers feed raw values.
     \\______ prefix, bidirectional __/  \\____ causal, one token per action dimension ____/

``act_0``'s input is a learned start vector; ``act_d``'s input (d >= 1) is the embedding of the
bin chosen for dimension d-1 (each dimension has its own bin table). The output at ``act_d``
goes through dimension d's head: one logit per bin. For the Q-Transformer, Q = sigmoid(logit),
so Q lies in [0, 1] as the binary-reward Bellman targets do; for the behaviour-cloning
baseline the same logits feed a softmax.

Two forward paths share every weight:

* :meth:`QTransformer.forward` (training) is teacher-forced: the data's bins feed the tokens,
  one pass gives the logits of every dimension under the data prefix.
* :meth:`QTransformer.greedy` (acting, ONNX export) encodes the observation once, caches the
  prefix keys/values, then runs one token per dimension, feeding back the argmax. Greedy is
  taken on logits (sigmoid is monotonic; logits do not saturate to equal float values).

Because action tokens only attend to the prefix and to earlier action tokens, both paths
compute the same function: tests/trainer/test_decoding.py pins that the training forward and
the decoder agree on the chosen bins (the off-by-one class of bug).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from qt_trainer.config import ModelConfig

KVCache = list[tuple[Tensor, Tensor]]


def _groups(channels: int) -> int:
    for g in (8, 4, 2):
        if channels % g == 0:
            return g
    return 1


def _strides(cfg: ModelConfig) -> tuple[int, ...]:
    return cfg.conv_strides or (2,) * len(cfg.conv_channels)


def _coordinate_planes(h: int, w: int) -> Tensor:
    """[1, 2, h, w]: x then y, each in [-1, 1]."""
    xs, ys = torch.linspace(-1.0, 1.0, w), torch.linspace(-1.0, 1.0, h)
    return torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=0).unsqueeze(0)


class FiLMConvEncoder(nn.Module):
    """Conv stages; after each, FiLM scales and shifts channels from the instruction.

    FiLM layers start at identity (zero-initialised), so early training sees a plain CNN. With
    ``coord_channels`` the pixels get two coordinate planes (CoordConv), so the filters can
    respond to *where* as well as *what*.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.convs = nn.ModuleList()
        self.norms = nn.ModuleList()
        self.films = nn.ModuleList()
        c_in = 3
        if cfg.coord_channels:
            self.register_buffer("coords", _coordinate_planes(cfg.image_height, cfg.image_width), persistent=False)
            c_in += 2
        else:
            self.coords = None
        for c_out, stride in zip(cfg.conv_channels, _strides(cfg), strict=True):
            self.convs.append(nn.Conv2d(c_in, c_out, 3, stride=stride, padding=1))
            self.norms.append(nn.GroupNorm(_groups(c_out), c_out))
            film = nn.Linear(cfg.embed_dim, 2 * c_out)
            nn.init.zeros_(film.weight)
            nn.init.zeros_(film.bias)
            self.films.append(film)
            c_in = c_out
        self.out_channels = c_in

    def forward(self, x: Tensor, embedding: Tensor) -> Tensor:
        if self.coords is not None:
            x = torch.cat([x, self.coords.expand(x.shape[0], -1, -1, -1)], dim=1)
        for conv, norm, film in zip(self.convs, self.norms, self.films, strict=True):
            x = norm(conv(x))
            gamma, beta = film(embedding).chunk(2, dim=-1)
            x = F.relu(x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None])
        return x


class TokenLearner(nn.Module):
    """K spatial attention maps over the feature grid, each pooling the features into a token.

    Every token also carries the attention-weighted mean of the cell coordinates (x, y in
    [-1, 1]). Conv features are translation-equivariant and softmax pooling alone would discard
    *where* something is, which a reaching policy needs (without them the policy learned the
    motion pattern of a grasp but not where the cube was).
    """

    def __init__(self, channels: int, num_tokens: int, d_model: int, grid_hw: tuple[int, int]):
        super().__init__()
        self.attend = nn.Conv2d(channels, num_tokens, 1)
        self.proj = nn.Linear(channels + 2, d_model)
        h, w = grid_hw
        self.register_buffer("coords", _coordinate_planes(h, w).reshape(1, 2, h * w), persistent=False)

    def forward(self, features: Tensor) -> Tensor:
        b, c = features.shape[0], features.shape[1]
        flat = features.reshape(b, c, -1)  # [B, C, N]
        weights = self.attend(features).reshape(b, -1, flat.shape[-1]).softmax(dim=-1)  # [B, K, N]
        flat = torch.cat([flat, self.coords.expand(b, -1, -1)], dim=1)  # [B, C + 2, N]
        tokens = torch.matmul(weights, flat.transpose(1, 2))  # [B, K, C + 2]
        return self.proj(tokens)


def feature_grid(cfg: ModelConfig) -> tuple[int, int]:
    """Height and width of the encoder's last feature map (3x3 convs, stride 2, padding 1)."""
    h, w = cfg.image_height, cfg.image_width
    for stride in _strides(cfg):
        h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
    return h, w


class ObjectEncoder(nn.Module):
    """One token per object, so attention can pick the object the instruction names.

    A shared MLP reads each object's features, the standardised proprio (so a token already
    relates its object to the gripper) and the object's one-hot identity; its hidden layer is
    FiLM-modulated by the instruction (zero-initialised), so "is this the cube I was asked for"
    can be computed inside the token. Without that the policy grasped well but went for a
    random cube (measured: 30 % on pick, one in three).

    State mode feeds it the true object features; image mode with object tokens feeds it the
    positions the auxiliary head reads off the keypoints, so a pixel policy gets the same
    structure as the low-dim one without seeing the state.
    """

    def __init__(self, num_objects: int, features_per_object: int, proprio_dim: int, embed_dim: int, d_model: int):
        super().__init__()
        self.num_objects, self.features_per_object = num_objects, features_per_object
        hidden = 2 * d_model
        self.inp = nn.Linear(features_per_object + proprio_dim + num_objects, hidden)
        self.film = nn.Linear(embed_dim, 2 * hidden)
        nn.init.zeros_(self.film.weight)
        nn.init.zeros_(self.film.bias)
        self.out = nn.Linear(hidden, d_model)
        self.register_buffer("identity", torch.eye(num_objects), persistent=False)

    def forward(self, features: Tensor, proprio: Tensor | None, embedding: Tensor) -> Tensor:
        b = features.shape[0]
        parts = [features.reshape(b, self.num_objects, self.features_per_object)]
        if proprio is not None:
            parts.append(proprio.unsqueeze(1).expand(-1, self.num_objects, -1))
        parts.append(self.identity.expand(b, -1, -1))
        gamma, beta = self.film(embedding).unsqueeze(1).chunk(2, dim=-1)
        return self.out(F.gelu(self.inp(torch.cat(parts, dim=-1)) * (1.0 + gamma) + beta))


STATE_FEATURES_PER_OBJECT = 7  # qt_common.proprio.object_features
# image mode with object tokens: the auxiliary head's targets per object (Trainer._aux_targets):
# x y z. Adding the sin and cos of 4 x yaw was measured worse: at 64 px the yaw was not learnt
# (RMS 0.38 against a spread of 0.7) and the positions came out 12-15 mm off instead of 5 mm.
AUX_FEATURES_PER_OBJECT = 3


class Attention(nn.Module):
    def __init__(self, d_model: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = d_model // num_heads
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        """``mask``: additive [T, S] (0 or -inf). ``cache``: keys/values of earlier tokens."""
        b, t, d = x.shape
        qkv = self.qkv(x).reshape(b, t, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, H, T, hd]
        if cache is not None:
            k = torch.cat([cache[0], k], dim=2)
            v = torch.cat([cache[1], v], dim=2)
        scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(self.head_dim))
        if mask is not None:
            scores = scores + mask
        y = torch.matmul(scores.softmax(dim=-1), v).transpose(1, 2).reshape(b, t, d)
        return self.out(y), (k, v)


class Block(nn.Module):
    """Pre-LayerNorm transformer block."""

    def __init__(self, d_model: int, num_heads: int, ff_mult: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = Attention(d_model, num_heads)
        self.ln2 = nn.LayerNorm(d_model)
        hidden = ff_mult * d_model
        self.mlp = nn.Sequential(nn.Linear(d_model, hidden), nn.GELU(), nn.Linear(hidden, d_model))

    def forward(self, x: Tensor, mask: Tensor | None = None, cache: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        a, kv = self.attn(self.ln1(x), mask, cache)
        x = x + a
        return x + self.mlp(self.ln2(x)), kv


class QTransformer(nn.Module):
    """Per-dimension autoregressive Q-function (or BC policy) over discretised actions."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d, dm, nb = cfg.num_dims, cfg.d_model, cfg.num_bins
        self.image_mode = cfg.obs_mode == "image"
        # tokens the auxiliary head reads (keypoints in image mode, objects in state mode)
        num_obs = cfg.num_obs_tokens if self.image_mode else cfg.state_dim // STATE_FEATURES_PER_OBJECT
        # the observation tokens (keypoints, or state mode's objects) are in the prefix unless
        # obs_tokens is "objects", where the keypoints only feed the aux head
        self.observed_in_prefix = cfg.obs_tokens in ("keypoints", "both")
        self.object_encoder: ObjectEncoder | None = None
        if self.image_mode:
            self.encoder = FiLMConvEncoder(cfg)
            self.token_learner = TokenLearner(self.encoder.out_channels, cfg.num_obs_tokens, dm, feature_grid(cfg))
            if cfg.obs_tokens != "keypoints":
                if cfg.aux_dim < 1 or cfg.aux_dim % AUX_FEATURES_PER_OBJECT:
                    raise ValueError(f"model config: obs_tokens {cfg.obs_tokens!r} needs 'aux_dim' a multiple of "
                                     f"{AUX_FEATURES_PER_OBJECT} >= 1 (a dataset with object poses), got {cfg.aux_dim}")
                self.object_encoder = ObjectEncoder(cfg.aux_dim // AUX_FEATURES_PER_OBJECT, AUX_FEATURES_PER_OBJECT,
                                                    cfg.proprio_dim, cfg.embed_dim, dm)
        else:
            if cfg.state_dim < 1 or cfg.state_dim % STATE_FEATURES_PER_OBJECT:
                raise ValueError(f"model config: obs_mode 'state' needs 'state_dim' a multiple of "
                                 f"{STATE_FEATURES_PER_OBJECT} >= 1 (a dataset with object poses), got {cfg.state_dim}")
            self.state_encoder = ObjectEncoder(cfg.state_dim // STATE_FEATURES_PER_OBJECT, STATE_FEATURES_PER_OBJECT,
                                               cfg.proprio_dim, cfg.embed_dim, dm)
        self.aux_head = nn.Linear(num_obs * dm, cfg.aux_dim) if cfg.aux_dim > 0 else None
        num_objects = 0 if self.object_encoder is None else self.object_encoder.num_objects
        self.text_proj = nn.Linear(cfg.embed_dim, dm)
        self.proprio_proj = nn.Linear(cfg.proprio_dim, dm) if cfg.proprio_dim > 0 else None
        self.num_obs = num_obs
        self.num_prefix = (1 + (num_obs if self.observed_in_prefix else 0) + (1 if cfg.proprio_dim > 0 else 0)
                           + num_objects)
        # Input standardisation from the training data (Trainer.set_input_statistics); saved with
        # the weights, applied inside the exported graph.
        self.register_buffer("proprio_mean", torch.zeros(cfg.proprio_dim))
        self.register_buffer("proprio_std", torch.ones(cfg.proprio_dim))
        self.register_buffer("state_mean", torch.zeros(cfg.state_dim))
        self.register_buffer("state_std", torch.ones(cfg.state_dim))
        self.prefix_pos = nn.Parameter(torch.randn(self.num_prefix, dm) * 0.02)
        self.action_pos = nn.Parameter(torch.randn(d, dm) * 0.02)
        self.start = nn.Parameter(torch.randn(dm) * 0.02)
        # Bin tables of dims 0..D-2 only: the last dimension's bin is never an input.
        self.bin_embed = nn.Parameter(torch.randn(max(d - 1, 0) * nb, dm) * 0.02)
        self.blocks = nn.ModuleList(Block(dm, cfg.num_heads, cfg.ff_mult) for _ in range(cfg.num_layers))
        self.ln_out = nn.LayerNorm(dm)
        self.head_weight = nn.Parameter(torch.randn(d, dm, nb) * 0.02)
        self.head_bias = nn.Parameter(torch.zeros(d, nb))
        if cfg.action_aux:  # training-only action-prediction head (TrainConfig.action_aux_weight)
            self.action_aux_weight = nn.Parameter(torch.randn(d, dm, nb) * 0.02)
            self.action_aux_bias = nn.Parameter(torch.zeros(d, nb))
        mean = torch.tensor(cfg.image_mean, dtype=torch.float32).view(1, 3, 1, 1)
        std = torch.tensor(cfg.image_std, dtype=torch.float32).view(1, 3, 1, 1)
        self.register_buffer("pixel_scale", 1.0 / (255.0 * std), persistent=False)
        self.register_buffer("pixel_shift", -mean / std, persistent=False)
        self.register_buffer("mask", self._attention_mask(), persistent=False)

    # ---- pieces --------------------------------------------------------------------------

    def _attention_mask(self) -> Tensor:
        p, d = self.num_prefix, self.cfg.num_dims
        allowed = torch.zeros(p + d, p + d, dtype=torch.bool)
        allowed[:, :p] = True  # everyone sees the whole prefix
        allowed[p:, p:] = torch.tril(torch.ones(d, d, dtype=torch.bool))  # actions: causal
        return torch.zeros(p + d, p + d).masked_fill(~allowed, float("-inf"))

    def encode(self, obs: Tensor, embedding: Tensor, proprio: Tensor | None = None) -> Tensor:
        """Observation (uint8 images [B, H, W, 3], or float state [B, S] in state mode) + instruction
        embedding + raw proprio -> prefix tokens [B, P, dm]."""
        return self._encode(obs, embedding, proprio, with_aux=False)[0]

    def object_positions(self, obs: Tensor, embedding: Tensor, proprio: Tensor | None = None) -> Tensor:
        """The auxiliary head's standardised object positions [B, aux_dim] (what object tokens
        read; bench/rollout_trace.py compares them with the sim's)."""
        if self.aux_head is None:
            raise ValueError("object_positions: this model has no auxiliary head (aux_dim 0)")
        positions = self._encode(obs, embedding, proprio, with_aux=True)[1]
        assert positions is not None
        return positions

    def _encode(self, obs: Tensor, embedding: Tensor, proprio: Tensor | None, with_aux: bool
                ) -> tuple[Tensor, Tensor | None]:
        """(prefix tokens, the auxiliary head's standardised object positions if asked for or
        needed by object tokens)."""
        if self.proprio_proj is not None:
            if proprio is None:
                raise ValueError(f"proprio: this model expects [B, {self.cfg.proprio_dim}] proprioception")
            proprio = (proprio - self.proprio_mean) / self.proprio_std
        if self.image_mode:
            x = obs.permute(0, 3, 1, 2).float() * self.pixel_scale + self.pixel_shift
            observed = self.token_learner(self.encoder(x, embedding))
        else:
            observed = self.state_encoder((obs.float() - self.state_mean) / self.state_std, proprio, embedding)
        # With object tokens the aux head reads the bare keypoints (they may not be in the prefix);
        # without, the keypoint tokens of the prefix (as models trained before object tokens).
        positions = self.aux_head(observed.flatten(1)) if self.object_encoder is not None else None
        tokens = [self.text_proj(embedding).unsqueeze(1)]
        if self.observed_in_prefix:
            tokens.append(observed)
        if self.proprio_proj is not None:
            tokens.append(self.proprio_proj(proprio).unsqueeze(1))
        if self.object_encoder is not None:
            # Last in the prefix, so a keypoints-only model lines up with this one's first tokens
            # (Trainer._initialise_from). Stop-gradient: the positions stay what the auxiliary
            # loss teaches, not whatever helps the action loss.
            tokens.append(self.object_encoder(positions.detach(), proprio, embedding))
        prefix = torch.cat(tokens, dim=1) + self.prefix_pos
        if with_aux and positions is None and self.aux_head is not None:
            positions = self.aux_head(prefix[:, 1 : 1 + self.num_obs].flatten(1))
        return prefix, positions

    def _bin_tokens(self, bins: Tensor) -> Tensor:
        """Data bins [B, D] -> action-token inputs [B, D, dm] (start, then previous bins)."""
        b, d, nb = bins.shape[0], self.cfg.num_dims, self.cfg.num_bins
        start = self.start.expand(b, 1, -1)
        if d == 1:
            return start + self.action_pos
        offsets = torch.arange(d - 1, device=bins.device) * nb
        prev = F.embedding(bins[:, : d - 1].long() + offsets, self.bin_embed)
        return torch.cat([start, prev], dim=1) + self.action_pos

    def _head(self, h: Tensor, dim: int) -> Tensor:
        return torch.matmul(h, self.head_weight[dim]) + self.head_bias[dim]

    # ---- training forward ----------------------------------------------------------------

    def forward(self, image: Tensor, embedding: Tensor, bins: Tensor, proprio: Tensor | None = None,
                with_aux: bool = False) -> Tensor | tuple[Tensor, Tensor | None, Tensor | None]:
        """Teacher-forced logits [B, D, num_bins]: dim d's logits given the data's bins < d. With
        ``with_aux``: (logits, object-position prediction or None, action-prediction logits or
        None), the training-only heads the config has."""
        prefix, objects = self._encode(image, embedding, proprio, with_aux)
        x = torch.cat([prefix, self._bin_tokens(bins)], dim=1)
        for block in self.blocks:
            x, _ = block(x, self.mask)
        h = self.ln_out(x[:, self.num_prefix:])  # [B, D, dm]
        logits = torch.einsum("bdh,dhn->bdn", h, self.head_weight) + self.head_bias
        if not with_aux:
            return logits
        actions = (torch.einsum("bdh,dhn->bdn", h, self.action_aux_weight) + self.action_aux_bias
                   if self.cfg.action_aux else None)
        return logits, objects, actions

    def first_dim_logits(self, image: Tensor, embedding: Tensor, proprio: Tensor | None = None) -> Tensor:
        """Logits of the first dimension only [B, num_bins] (the bootstrap at the next state)."""
        p = self.num_prefix
        x = torch.cat([self.encode(image, embedding, proprio), (self.start + self.action_pos[0]).expand(
            image.shape[0], 1, -1)], dim=1)
        mask = self.mask[: p + 1, : p + 1]
        for block in self.blocks:
            x, _ = block(x, mask)
        return self._head(self.ln_out(x[:, p]), 0)

    # ---- acting --------------------------------------------------------------------------

    def greedy(self, image: Tensor, embedding: Tensor, proprio: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Greedy autoregressive decode: (bins int64 [B, D], value of each chosen bin [B, D]).

        The value is Q in [0, 1] (sigmoid) for the Q-Transformer, the bin's probability for BC.

        The observation is encoded once; each dimension then costs one token through the
        transformer, attending to cached keys/values.
        """
        x = self.encode(image, embedding, proprio)
        cache: KVCache = []
        for block in self.blocks:
            x, kv = block(x)  # the prefix is bidirectional: no mask
            cache.append(kv)
        b, nb = image.shape[0], self.cfg.num_bins
        token = (self.start + self.action_pos[0]).expand(b, 1, -1)
        chosen_bins, chosen_values = [], []
        for dim in range(self.cfg.num_dims):
            x = token
            for i, block in enumerate(self.blocks):
                x, cache[i] = block(x, None, cache[i])
            logits = self._head(self.ln_out(x[:, 0]), dim)  # [B, num_bins]
            best = logits.argmax(dim=-1)
            chosen_bins.append(best)
            chosen_values.append(self.values(logits).gather(1, best[:, None])[:, 0])
            if dim + 1 < self.cfg.num_dims:
                token = (F.embedding(best + dim * nb, self.bin_embed) + self.action_pos[dim + 1]).unsqueeze(1)
        return torch.stack(chosen_bins, dim=1), torch.stack(chosen_values, dim=1)

    def values(self, logits: Tensor, dim: int = -1) -> Tensor:
        """Logits -> the per-bin value the algorithm reports: Q (sigmoid) or BC probability."""
        if self.cfg.algorithm == "bc":
            return logits.softmax(dim=dim)
        return torch.sigmoid(logits)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
