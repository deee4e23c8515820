"""The parts of the LeRobot v3.0 dataset format that qt writes and reads (no lerobot import).

Why our own code: the ``lerobot`` package pins an old torch and pulls in a training stack, so it
can never be a dependency of the robot side; the format itself is plain files. A v3.0 dataset
directory holds

    meta/info.json                                   codebase_version "v3.0", fps, features, paths
    meta/stats.json                                  per feature: min max mean std count q01..q99
    meta/tasks.parquet                               task string (pandas index) -> task_index
    meta/episodes/chunk-000/file-000.parquet         one row per episode: length, tasks, where its
                                                     rows and video frames are
    data/chunk-000/file-000.parquet                  one row per frame (every non-video feature)
    videos/<video key>/chunk-000/file-000.mp4        the frames of many episodes, back to back

Episode ``e`` of a video key is the time range [from_timestamp, to_timestamp) of its file; a
frame's ``timestamp`` is ``frame_index / fps`` within its episode (lerobot checks this).
The feature names follow LeRobot's conventions (``observation.images.*``, ``observation.state``,
``action``, ``next.reward``, ``next.done``, ``next.success``) so LeRobot policies and tools find
them. The real loader is checked against these files by bench/lerobot_roundtrip.py.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000  # files per chunk directory
DATA_FILES_SIZE_MB = 100
VIDEO_FILES_SIZE_MB = 200
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"

IMAGE_KEY = "observation.images.camera"
IMAGE2_KEY = "observation.images.camera2"
STATE_KEY = "observation.state"
ENV_STATE_KEY = "observation.environment_state"
ACTION_KEY = "action"
REWARD_KEY = "next.reward"
SUCCESS_KEY = "next.success"
DONE_KEY = "next.done"
DEFAULT_FEATURES: dict[str, dict[str, Any]] = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
# Episode columns qt adds (lerobot ignores columns it does not know).
QT_OUTCOME = "qt/outcome"
QT_EPISODE_ID = "qt/episode_id"
QT_TASK_ID = "qt/task_id"
QT_BAG_DIGEST = "qt/bag_digest"
QT_SOURCE_BAG = "qt/source_bag"


class LeRobotFormatError(ValueError):
    """A LeRobot dataset on disk cannot be read; the message names the file and the field."""


def chunk_file(index: int) -> tuple[int, int]:
    """(chunk_index, file_index) of the ``index``-th file of one kind."""
    return index // CHUNKS_SIZE, index % CHUNKS_SIZE


def feature_stats(values: np.ndarray, image: bool = False) -> dict[str, Any]:
    """LeRobot's statistics of one feature: per dimension (per channel, on [0, 1], shape (3, 1, 1)
    for images), min max mean std count and the quantiles q01 q10 q50 q90 q99."""
    if image:  # [N, H, W, C] uint8 -> per channel
        data = values.reshape(-1, values.shape[-1]).astype(np.float64) / 255.0

        def shape(v: np.ndarray) -> list[Any]:
            return v.reshape(-1, 1, 1).tolist()
    else:
        data = values.reshape(len(values), -1).astype(np.float64)

        def shape(v: np.ndarray) -> list[Any]:
            return v.reshape(-1).tolist()
    stats = {"min": shape(data.min(axis=0)), "max": shape(data.max(axis=0)), "mean": shape(data.mean(axis=0)),
             "std": shape(data.std(axis=0)), "count": [len(values)]}
    for q in QUANTILES:
        stats[f"q{int(q * 100):02d}"] = shape(np.quantile(data, q, axis=0))
    return stats


def read_info(root: Path) -> dict[str, Any]:
    """meta/info.json of a v3.0 dataset (other versions are refused with the version named)."""
    path = root / INFO_PATH
    if not path.is_file():
        raise LeRobotFormatError(f"{root}: not a LeRobot dataset (no {INFO_PATH})")
    try:
        info = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise LeRobotFormatError(f"{path}: not JSON ({exc})") from None
    version = info.get("codebase_version")
    if version != CODEBASE_VERSION:
        raise LeRobotFormatError(f"{path}: field codebase_version: {version!r}; this reader reads "
                                 f"{CODEBASE_VERSION!r} (convert older datasets with lerobot's v3 converter)")
    for field in ("fps", "features", "data_path"):
        if field not in info:
            raise LeRobotFormatError(f"{path}: field {field}: missing")
    return info


def read_table(path: Path) -> dict[str, list[Any]]:
    """A Parquet file as ``{column: python values}``."""
    import pyarrow.parquet as pq

    if not path.is_file():
        raise LeRobotFormatError(f"{path}: missing")
    return pq.read_table(path).to_pydict()


def read_tasks(root: Path) -> dict[int, str]:
    """meta/tasks.parquet: task_index -> task string (the task is the pandas index column)."""
    table = read_table(root / TASKS_PATH)
    if "task_index" not in table:
        raise LeRobotFormatError(f"{root / TASKS_PATH}: field task_index: missing; columns {sorted(table)}")
    text_column = next((c for c in ("task", "__index_level_0__") if c in table), None)
    if text_column is None:
        raise LeRobotFormatError(f"{root / TASKS_PATH}: no task text column (task or the pandas index); "
                                 f"columns {sorted(table)}")
    return {int(i): str(t) for i, t in zip(table["task_index"], table[text_column], strict=True)}


def read_episodes(root: Path) -> dict[str, list[Any]]:
    """Every meta/episodes/*/*.parquet file, concatenated, sorted by episode_index."""
    files = sorted((root / "meta" / "episodes").glob("*/*.parquet"))
    if not files:
        raise LeRobotFormatError(f"{root}: no episode metadata (meta/episodes/chunk-*/file-*.parquet)")
    columns: dict[str, list[Any]] = {}
    for file in files:
        for key, values in read_table(file).items():
            columns.setdefault(key, []).extend(values)
    if "episode_index" not in columns:
        raise LeRobotFormatError(f"{files[0]}: field episode_index: missing")
    order = np.argsort(columns["episode_index"], kind="stable")
    return {k: [v[i] for i in order] for k, v in columns.items() if len(v) == len(order)}
