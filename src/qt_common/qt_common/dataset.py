"""The training dataset format: a directory of memory-mapped .npy arrays plus meta.json.

Written by the bag converter (qt_data_logger), read by the trainer (qt_trainer); neither needs
ROS or torch for it. docs/CONTRACTS.md describes every file. Why this shape: .npy files open
with ``mmap_mode="r"`` give random access at page cost with no extra dependency, and a dataset
directory is replaced atomically, so a crash mid-write never leaves a half-written dataset.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from qt_common.action_spec import ActionSpec

FORMAT = "qt-dataset"
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)  # 2 adds proprio_layout and the optional object_poses
OUTCOMES = ("success", "failure")

# name -> (dtype, per-frame shape given meta); the order is the on-disk contract.
_ARRAYS = ("images", "bins", "proprio", "reward", "done", "return_to_go", "episode_index", "instruction_index")
# Present only when the bags carried them: training-only targets, never a policy input on a robot.
_OPTIONAL_ARRAYS = ("object_poses",)


class DatasetError(ValueError):
    """A dataset on disk, or an episode offered to it, does not match the format."""


@dataclass
class Episode:
    """One labelled episode, ready to be written. Arrays are per step, in time order."""

    images: np.ndarray  # uint8 [T, H, W, 3]
    bins: np.ndarray  # integer [T, D]
    instruction: str
    outcome: str  # "success" or "failure" (discarded episodes never get here)
    proprio: np.ndarray | None = None  # float32 [T, P]
    # float32 [T, K * 7]: the simulator's object poses (x y z, quaternion w x y z per object), for
    # auxiliary losses and the low-dim mode; None on a real robot.
    object_poses: np.ndarray | None = None
    episode_id: str = ""
    task_id: str = ""
    source_bag: str = ""
    bag_digest: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def length(self) -> int:
        return int(self.images.shape[0])


def monte_carlo_returns(reward: np.ndarray, done: np.ndarray, gamma: float) -> np.ndarray:
    """Discounted return-to-go of every step, restarting at each episode end (``done``)."""
    returns = np.zeros(len(reward), dtype=np.float64)
    running = 0.0
    for t in range(len(reward) - 1, -1, -1):
        if done[t]:
            running = 0.0
        running = float(reward[t]) + gamma * running
        returns[t] = running
    return returns.astype(np.float32)


def _layout_for_dim(dim: int) -> str:
    from qt_common.proprio import layout_for_dim

    return layout_for_dim(dim)


def _episode_rewards(length: int, outcome: str) -> tuple[np.ndarray, np.ndarray]:
    reward = np.zeros(length, dtype=np.float32)
    if outcome == "success":
        reward[-1] = 1.0
    done = np.zeros(length, dtype=bool)
    done[-1] = True
    return reward, done


class Dataset:
    """Read-only view of a dataset directory; arrays are memory-mapped, not loaded."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not meta_path.is_file():
            raise DatasetError(f"{self.path}: not a dataset (no meta.json)")
        try:
            self.meta: dict[str, Any] = json.loads(meta_path.read_text())
        except json.JSONDecodeError as exc:
            raise DatasetError(f"{meta_path}: invalid JSON ({exc})") from exc
        if self.meta.get("format") != FORMAT:
            raise DatasetError(f"{meta_path}: field 'format' must be {FORMAT!r}, got {self.meta.get('format')!r}")
        if self.meta.get("schema_version") not in READABLE_SCHEMA_VERSIONS:
            raise DatasetError(
                f"{meta_path}: field 'schema_version' is {self.meta.get('schema_version')!r}; "
                f"this code reads versions {READABLE_SCHEMA_VERSIONS}"
            )
        self.action_spec = ActionSpec.from_dict(self.meta["action_spec"])
        self.image_shape = tuple(self.meta["image_shape"])
        self.instructions: list[str] = list(self.meta["instructions"])
        self.episodes: list[dict[str, Any]] = list(self.meta["episodes"])
        self.gamma = float(self.meta["gamma"])
        n = int(self.meta["num_frames"])
        self.arrays: dict[str, np.ndarray] = {}
        for name in _ARRAYS:
            file = self.path / f"{name}.npy"
            if not file.is_file():
                raise DatasetError(f"{self.path}: missing array file {file.name}")
            array = np.load(file, mmap_mode="r")
            if array.shape[0] != n:
                raise DatasetError(f"{file}: {array.shape[0]} frames, meta.json says num_frames={n}")
            self.arrays[name] = array
        for name in _OPTIONAL_ARRAYS:
            file = self.path / f"{name}.npy"
            if file.is_file():
                array = np.load(file, mmap_mode="r")
                if array.shape[0] != n:
                    raise DatasetError(f"{file}: {array.shape[0]} frames, meta.json says num_frames={n}")
                self.arrays[name] = array
        dim = int(self.proprio.shape[1])
        self.proprio_layout: str = self.meta.get("proprio_layout") or _layout_for_dim(dim)

    def __len__(self) -> int:
        return int(self.meta["num_frames"])

    @property
    def images(self) -> np.ndarray:
        return self.arrays["images"]

    @property
    def bins(self) -> np.ndarray:
        return self.arrays["bins"]

    @property
    def proprio(self) -> np.ndarray:
        return self.arrays["proprio"]

    @property
    def object_poses(self) -> np.ndarray | None:
        """float32 [N, K * 7] object poses (training-only targets), or None if the bags had none."""
        return self.arrays.get("object_poses")

    @property
    def reward(self) -> np.ndarray:
        return self.arrays["reward"]

    @property
    def done(self) -> np.ndarray:
        return self.arrays["done"]

    @property
    def return_to_go(self) -> np.ndarray:
        return self.arrays["return_to_go"]

    @property
    def episode_index(self) -> np.ndarray:
        return self.arrays["episode_index"]

    @property
    def instruction_index(self) -> np.ndarray:
        return self.arrays["instruction_index"]

    def returns_for_gamma(self, gamma: float) -> np.ndarray:
        """Return-to-go for another discount than the stored one (recomputed, not cached)."""
        if gamma == self.gamma:
            return np.asarray(self.return_to_go)
        return monte_carlo_returns(np.asarray(self.reward), np.asarray(self.done), gamma)

    def episode_frames(self, index: int) -> slice:
        record = self.episodes[index]
        return slice(record["start"], record["start"] + record["length"])

    def digest(self) -> str:
        """Identifies the data a model was trained on: spec, shapes and every episode record."""
        content = {k: self.meta[k] for k in ("schema_version", "action_spec", "image_shape", "gamma", "episodes")}
        return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]

    def summary(self) -> dict[str, Any]:
        outcomes = [e["outcome"] for e in self.episodes]
        # who commanded each episode (converter: "teleop", "expert", "policy", ...) -> outcome counts
        per_source: dict[str, dict[str, int]] = {}
        for e in self.episodes:
            counts = per_source.setdefault(str(e.get("source", "unknown")), {})
            counts[e["outcome"]] = counts.get(e["outcome"], 0) + 1
        per_instruction: dict[str, int] = {}
        for e in self.episodes:
            text = self.instructions[e["instruction_index"]]
            per_instruction[text] = per_instruction.get(text, 0) + 1
        return {
            "path": str(self.path),
            "schema_version": self.meta["schema_version"],
            "episodes": len(self.episodes),
            "frames": len(self),
            "success_rate": (outcomes.count("success") / len(outcomes)) if outcomes else 0.0,
            "image_shape": list(self.image_shape),
            "action_dims": self.action_spec.names,
            "gamma": self.gamma,
            "per_instruction": per_instruction,
            "per_source": per_source,
            "digest": self.digest(),
        }


class DatasetWriter:
    """Collects episodes in a staging directory and publishes the dataset atomically on commit.

    Use as a context manager; an exception inside the block discards the staging directory
    and leaves any existing dataset at ``path`` untouched.
    """

    def __init__(
        self,
        path: str | Path,
        action_spec: ActionSpec,
        image_shape: tuple[int, int, int],
        proprio_dim: int = 0,
        gamma: float = 0.98,
        append: bool = False,
        created_by: str = "",
        proprio_layout: str = "",
        object_pose_dim: int = 0,
    ):
        self.path = Path(path)
        self.action_spec = action_spec
        self.image_shape = tuple(int(v) for v in image_shape)
        self.proprio_dim = int(proprio_dim)
        self.proprio_layout = proprio_layout or _layout_for_dim(self.proprio_dim)
        self.object_pose_dim = int(object_pose_dim)
        self.gamma = float(gamma)
        self.created_by = created_by
        if len(self.image_shape) != 3 or self.image_shape[2] != 3:
            raise DatasetError(f"image_shape: expected (H, W, 3), got {self.image_shape}")
        if not 0.0 < self.gamma <= 1.0:
            raise DatasetError(f"gamma: expected a value in (0, 1], got {self.gamma}")
        self.existing: Dataset | None = None
        if append and (self.path / "meta.json").exists():
            self.existing = Dataset(self.path)
            self._check_compatible(self.existing)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._staging = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.staging-", dir=self.path.parent))
        self._new: list[tuple[Path, dict[str, Any]]] = []
        self._instructions: list[str] = list(self.existing.instructions) if self.existing else []
        self._digests = {e.get("bag_digest") for e in self.existing.episodes} if self.existing else set()
        self._digests.discard("")
        self._committed = False

    def _check_compatible(self, existing: Dataset) -> None:
        if existing.action_spec.digest() != self.action_spec.digest():
            raise DatasetError(f"{self.path}: existing dataset has another action spec; write a new dataset")
        if existing.image_shape != self.image_shape:
            raise DatasetError(f"{self.path}: existing image_shape {existing.image_shape} != {self.image_shape}")
        if existing.proprio.shape[1] != self.proprio_dim:
            raise DatasetError(f"{self.path}: existing proprio_dim {existing.proprio.shape[1]} != {self.proprio_dim}")
        if existing.proprio_layout != self.proprio_layout:
            raise DatasetError(f"{self.path}: existing proprio_layout {existing.proprio_layout!r} != "
                               f"{self.proprio_layout!r}")
        existing_objects = 0 if existing.object_poses is None else int(existing.object_poses.shape[1])
        if existing_objects != self.object_pose_dim:
            raise DatasetError(f"{self.path}: existing object_pose_dim {existing_objects} != {self.object_pose_dim}")
        if existing.gamma != self.gamma:
            raise DatasetError(f"{self.path}: existing gamma {existing.gamma} != {self.gamma}")

    def has_bag(self, digest: str) -> bool:
        """True if a bag with this digest is already in the dataset (or staged)."""
        return bool(digest) and digest in self._digests

    def add_episode(self, episode: Episode) -> None:
        """Validate and stage one episode; raises DatasetError naming the bad field."""
        arrays = self._validate(episode)
        staged = self._staging / f"episode_{len(self._new):06d}.npz"
        np.savez(staged, **arrays)
        if episode.instruction not in self._instructions:
            self._instructions.append(episode.instruction)
        record = {
            "episode_id": episode.episode_id,
            "length": episode.length,
            "instruction_index": self._instructions.index(episode.instruction),
            "task_id": episode.task_id,
            "outcome": episode.outcome,
            "source_bag": episode.source_bag,
            "bag_digest": episode.bag_digest,
            **episode.extra,
        }
        self._new.append((staged, record))
        if episode.bag_digest:
            self._digests.add(episode.bag_digest)

    def _validate(self, episode: Episode) -> dict[str, np.ndarray]:
        where = f"episode {episode.episode_id or len(self._new)}"
        images, bins = np.asarray(episode.images), np.asarray(episode.bins)
        t = images.shape[0] if images.ndim == 4 else 0
        if t == 0 or images.shape[1:] != self.image_shape or images.dtype != np.uint8:
            raise DatasetError(
                f"{where}: images must be uint8 [T>=1, {self.image_shape}], got {images.dtype} {images.shape}"
            )
        if bins.shape != (t, self.action_spec.num_dims) or not np.issubdtype(bins.dtype, np.integer):
            raise DatasetError(
                f"{where}: bins must be integer [{t}, {self.action_spec.num_dims}], got {bins.dtype} {bins.shape}"
            )
        if bins.min() < 0 or bins.max() >= self.action_spec.num_bins:
            raise DatasetError(f"{where}: bins must lie in [0, {self.action_spec.num_bins - 1}]")
        proprio = np.zeros((t, 0), np.float32) if episode.proprio is None else np.asarray(episode.proprio, np.float32)
        if proprio.shape != (t, self.proprio_dim):
            raise DatasetError(f"{where}: proprio must be [{t}, {self.proprio_dim}], got {proprio.shape}")
        if not np.isfinite(proprio).all():
            raise DatasetError(f"{where}: proprio contains NaN or inf")
        arrays: dict[str, np.ndarray] = {}
        if self.object_pose_dim:
            objects = episode.object_poses
            if objects is None or np.asarray(objects).shape != (t, self.object_pose_dim):
                got = None if objects is None else np.asarray(objects).shape
                raise DatasetError(f"{where}: object_poses must be [{t}, {self.object_pose_dim}], got {got}")
            if not np.isfinite(objects).all():
                raise DatasetError(f"{where}: object_poses contains NaN or inf")
            arrays["object_poses"] = np.asarray(objects, np.float32)
        if episode.outcome not in OUTCOMES:
            raise DatasetError(f"{where}: outcome must be one of {OUTCOMES}, got {episode.outcome!r}")
        if not episode.instruction:
            raise DatasetError(f"{where}: instruction must be a non-empty string")
        reward, done = _episode_rewards(t, episode.outcome)
        return {"images": images, "bins": bins.astype(np.uint16), "proprio": proprio, "reward": reward, "done": done,
                **arrays}

    @property
    def num_new_episodes(self) -> int:
        return len(self._new)

    def commit(self) -> Dataset:
        """Write all arrays and meta.json, then swap the staging directory into place."""
        old = self.existing
        old_frames = len(old) if old else 0
        new_frames = sum(r["length"] for _, r in self._new)
        n = old_frames + new_frames
        d, p = self.action_spec.num_dims, self.proprio_dim
        out_dir = self._staging / "dataset"
        out_dir.mkdir()
        specs = {
            "images": (np.uint8, (n, *self.image_shape)),
            "bins": (np.uint16, (n, d)),
            "proprio": (np.float32, (n, p)),
            "reward": (np.float32, (n,)),
            "done": (np.bool_, (n,)),
            "episode_index": (np.int32, (n,)),
            "instruction_index": (np.int32, (n,)),
        }
        if self.object_pose_dim:
            specs["object_poses"] = (np.float32, (n, self.object_pose_dim))
        out = {
            name: np.lib.format.open_memmap(out_dir / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)
            for name, (dtype, shape) in specs.items()
        }
        episodes = list(old.episodes) if old else []
        if old:
            for name in specs:
                out[name][:old_frames] = old.arrays[name]
        cursor = old_frames
        for staged, record in self._new:
            with np.load(staged) as arrays:
                end = cursor + record["length"]
                for name in ("images", "bins", "proprio", "reward", "done", *(["object_poses"] if
                                                                            self.object_pose_dim else [])):
                    out[name][cursor:end] = arrays[name]
                out["episode_index"][cursor:end] = len(episodes)
                out["instruction_index"][cursor:end] = record["instruction_index"]
            episodes.append({**record, "start": cursor})
            cursor = end
        returns = monte_carlo_returns(np.asarray(out["reward"]), np.asarray(out["done"]), self.gamma)
        np.save(out_dir / "return_to_go.npy", returns)
        for array in out.values():
            array.flush()
        del out
        meta = {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "action_spec": self.action_spec.to_dict(),
            "action_spec_digest": self.action_spec.digest(),
            "image_shape": list(self.image_shape),
            "proprio_dim": p,
            "proprio_layout": self.proprio_layout,
            "object_pose_dim": self.object_pose_dim,
            "gamma": self.gamma,
            "num_frames": n,
            "instructions": self._instructions,
            "episodes": episodes,
            "created_by": self.created_by,
        }
        (out_dir / "meta.json").write_text(json.dumps(meta, indent=1))
        self._swap_into_place(out_dir)
        self._committed = True
        self.close()
        return Dataset(self.path)

    def _swap_into_place(self, out_dir: Path) -> None:
        previous = self.path.with_name(f".{self.path.name}.previous-{os.getpid()}")
        if self.existing is not None:
            self.existing.arrays.clear()  # release the memory maps before moving files
        if self.path.exists():
            os.rename(self.path, previous)
        os.rename(out_dir, self.path)
        shutil.rmtree(previous, ignore_errors=True)

    def close(self) -> None:
        shutil.rmtree(self._staging, ignore_errors=True)

    def __enter__(self) -> DatasetWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None and not self._committed:
            self.commit()
        else:
            self.close()
