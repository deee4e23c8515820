"""Batches of transitions from a qt dataset (qt_common.dataset), deterministic per step.

The batch of step ``k`` is a pure function of (seed, k): indices come from a generator seeded
with both, so a resumed run draws exactly the batches the uninterrupted run would have drawn
(bit-exact resume needs no sampler state in the checkpoint), and DDP ranks take disjoint
slices of the same global batch.

For frame t with n-step returns the bootstrap state is t + n inside the same episode; if the
episode ends first, the reward sum stops at its last frame and there is no bootstrap
(``discount`` = 0). Frames of an episode are contiguous (docs/CONTRACTS.md), so this is index
arithmetic on the memory-mapped arrays.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from qt_common.dataset import Dataset


@dataclass
class Batch:
    image: np.ndarray  # uint8 [B, H, W, 3] at s_t
    next_image: np.ndarray  # uint8 [B, H, W, 3] at the bootstrap state (s_t itself when none)
    instruction: np.ndarray  # int64 [B] index into the instruction embeddings
    proprio: np.ndarray  # float32 [B, P]
    next_proprio: np.ndarray  # float32 [B, P]
    bins: np.ndarray  # int64 [B, D]
    reward: np.ndarray  # float32 [B] discounted reward sum over the n steps
    discount: np.ndarray  # float32 [B] gamma^n, or 0 without bootstrap
    return_to_go: np.ndarray  # float32 [B] Monte Carlo return (for the lower bound)
    index: np.ndarray  # int64 [B] frame index of s_t (for per-frame arrays the trainer holds)
    next_index: np.ndarray  # int64 [B] frame index of the bootstrap state


class TransitionSampler:
    def __init__(self, dataset: Dataset, gamma: float, n_step: int = 1, seed: int = 0, augment_shift: int = 0,
                 images: bool = True):
        if len(dataset) == 0:
            raise ValueError(f"{dataset.path}: dataset has no frames")
        self.dataset = dataset
        self.gamma = float(gamma)
        self.n_step = int(n_step)
        self.seed = int(seed)
        self.augment_shift = int(augment_shift)
        self.images = images  # False: state-mode training never touches the image array
        n = len(dataset)
        self.episode_end = np.empty(n, dtype=np.int64)
        for record in dataset.episodes:
            start, length = int(record["start"]), int(record["length"])
            self.episode_end[start : start + length] = start + length - 1
        self.reward = np.asarray(dataset.reward, dtype=np.float64)
        self.return_to_go = np.asarray(dataset.returns_for_gamma(self.gamma), dtype=np.float32)
        self.instruction_index = np.asarray(dataset.instruction_index, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    def indices(self, step: int, batch_size: int, rank: int = 0, world_size: int = 1) -> np.ndarray:
        """Frame indices of this rank's share of the global batch of ``step``."""
        rng = np.random.default_rng([self.seed, int(step)])
        batch = rng.integers(0, len(self.dataset), size=batch_size)
        return batch[rank::world_size]

    def batch(self, idx: np.ndarray, step: int = 0) -> Batch:
        idx = np.asarray(idx, dtype=np.int64)
        end = self.episode_end[idx]
        reward = np.zeros(len(idx), dtype=np.float64)
        for k in range(self.n_step):
            inside = idx + k <= end
            reward += np.where(inside, self.gamma**k * self.reward[np.minimum(idx + k, end)], 0.0)
        bootstrap = idx + self.n_step <= end
        next_idx = np.where(bootstrap, idx + self.n_step, idx)
        ds = self.dataset
        if self.images:
            image, next_image = ds.images[idx], ds.images[next_idx]
        else:
            image = next_image = np.zeros((len(idx), 0, 0, 3), np.uint8)
        if self.augment_shift > 0 and self.images:
            rng = np.random.default_rng([self.seed, int(step), 1])
            image, next_image = self._shift(image, rng), self._shift(next_image, rng)
        return Batch(
            image=image,
            next_image=next_image,
            instruction=self.instruction_index[idx],
            proprio=np.asarray(ds.proprio[idx], dtype=np.float32),
            next_proprio=np.asarray(ds.proprio[next_idx], dtype=np.float32),
            bins=np.asarray(ds.bins[idx], dtype=np.int64),
            reward=reward.astype(np.float32),
            discount=np.where(bootstrap, self.gamma**self.n_step, 0.0).astype(np.float32),
            return_to_go=self.return_to_go[idx],
            index=idx,
            next_index=next_idx,
        )

    def _shift(self, images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Random-shift augmentation: pad by replicating edges, crop back at a random offset."""
        s = self.augment_shift
        b, h, w, _ = images.shape
        padded = np.pad(images, ((0, 0), (s, s), (s, s), (0, 0)), mode="edge")
        dy, dx = rng.integers(0, 2 * s + 1, size=(2, b))
        return np.stack([padded[i, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])


def object_positions(dataset: Dataset) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Object xyz of every frame [N, K * 3] with its per-column mean and std (std floored at
    1e-3), or None without object poses: the auxiliary head's targets before standardisation
    (Trainer._aux_targets), and how bench/rollout_trace.py turns its predictions back into metres."""
    poses = dataset.object_poses
    if poses is None:
        return None
    n = len(dataset)
    xyz = np.asarray(poses, np.float32).reshape(n, -1, 7)[:, :, :3].reshape(n, -1)
    return xyz, xyz.mean(0), np.maximum(xyz.std(0), 1e-3)
