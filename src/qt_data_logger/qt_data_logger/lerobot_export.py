"""``qt convert BAGS --format lerobot -o DIR``: episode bags -> a LeRobot v3.0 dataset.

Why through the qt converter: the steps, frames, labels and validation are exactly those of
``qt convert`` (convert.read_episode: the alignment rule, the final-frame rule, action labels,
every BagError), so a LeRobot dataset and a qt dataset of the same bags hold the same steps.
What LeRobot gets per step (lerobot_format.py names the files):

* ``observation.images.camera``: the paired frame, resized to ``--image-size`` like the qt
  dataset, encoded into MP4 (LeRobot's default: libsvtav1, yuv420p, GOP 2, CRF 30; PyAV);
* ``observation.images.camera2``: a second camera named by the topic map (``--topics``), its
  newest frame at or before each step, when every bag has it;
* ``observation.state``: the proprio layout's vector (names from qt_common.proprio), if any;
* ``observation.environment_state``: the sim's object poses, when the bags carry them;
* ``action``: the action spec's value of the step's bin, in physical units (dx dy dz dyaw
  gripper; within half a bin of the recorded value, and mapped back to the same bin);
* ``next.reward`` (1.0 on the last step of a successful episode), ``next.done`` (last step),
  ``next.success`` (last step of a successful episode); the task is the instruction.

The dataset is written into a staging directory and moved into place at the end, so a failed
export leaves no half-written dataset; an existing one is replaced only with ``--overwrite``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Episode

from qt_common import proprio as layouts
from qt_data_logger import lerobot_format as F


@dataclass
class VideoOptions:
    """MP4 encoding (LeRobot's defaults)."""

    codec: str = "libsvtav1"
    crf: int = 30
    gop: int = 2
    pix_fmt: str = "yuv420p"


class _VideoFiles:
    """One video key: frames of consecutive episodes into one MP4, a new file past the size limit."""

    def __init__(self, root: Path, key: str, fps: int, video: VideoOptions) -> None:
        self.root, self.key, self.fps, self.video = root, key, fps, video
        self.file_number = -1
        self.container: Any = None
        self.stream: Any = None
        self.frames_in_file = 0
        self.first_path: Path | None = None

    def _path(self) -> Path:
        chunk, file = F.chunk_file(self.file_number)
        return self.root / F.VIDEO_PATH.format(video_key=self.key, chunk_index=chunk, file_index=file)

    def _open(self, height: int, width: int) -> None:
        import av

        # SVT-AV1 prints its whole configuration at info level; errors only (its SVT_LOG variable).
        os.environ.setdefault("SVT_LOG", "1")
        self.file_number += 1
        path = self._path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.first_path = self.first_path or path
        self.container = av.open(str(path), "w")
        options = {"g": str(self.video.gop), "crf": str(self.video.crf)}
        self.stream = self.container.add_stream(self.video.codec, rate=self.fps, options=options)
        self.stream.width, self.stream.height, self.stream.pix_fmt = width, height, self.video.pix_fmt
        self.frames_in_file = 0

    def add_episode(self, frames: np.ndarray) -> dict[str, Any]:
        """Encode ``frames`` (uint8 [T, H, W, 3] RGB); returns the episode's videos/<key>/... columns."""
        import av

        if self.container is None:
            self._open(frames.shape[1], frames.shape[2])
        start = self.frames_in_file
        for frame in frames:
            video_frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            video_frame.pts = self.frames_in_file
            video_frame.time_base = Fraction(1, self.fps)
            for packet in self.stream.encode(video_frame):
                self.container.mux(packet)
            self.frames_in_file += 1
        chunk, file = F.chunk_file(self.file_number)
        columns = {
            f"videos/{self.key}/chunk_index": chunk, f"videos/{self.key}/file_index": file,
            f"videos/{self.key}/from_timestamp": start / self.fps,
            f"videos/{self.key}/to_timestamp": self.frames_in_file / self.fps,
        }
        path = self._path()  # the muxer creates the file with its first packet
        if path.exists() and path.stat().st_size > F.VIDEO_FILES_SIZE_MB * 1024 * 1024:
            self.close()  # the next episode starts a new file
        return columns

    def close(self) -> None:
        if self.container is None:
            return
        for packet in self.stream.encode():
            self.container.mux(packet)
        self.container.close()
        self.container = self.stream = None

    def info(self, shape: tuple[int, ...]) -> dict[str, Any]:
        """The feature's ``info`` block, read back from the first file (as lerobot's get_video_info)."""
        import av

        assert self.first_path is not None
        with av.open(str(self.first_path)) as container:
            stream = container.streams.video[0]
            return {"video.height": stream.height, "video.width": stream.width,
                    "video.codec": stream.codec_context.codec.canonical_name, "video.pix_fmt": stream.pix_fmt,
                    "video.is_depth_map": False, "video.fps": self.fps, "video.channels": int(shape[-1]),
                    "has_audio": False}


class LeRobotWriter:
    """Collects qt Episodes into a LeRobot v3.0 dataset directory (see the module docstring)."""

    def __init__(self, output: str | Path, fps: int, spec: ActionSpec, proprio_layout: str = "none",
                 object_pose_dim: int = 0, robot_type: str = "", video: VideoOptions | None = None,
                 overwrite: bool = False, camera2: bool = False) -> None:
        self.output = Path(output)
        if self.output.exists() and any(self.output.iterdir()) and not overwrite:
            raise FileExistsError(f"{self.output}: exists and is not empty; use --overwrite to replace it")
        if fps <= 0:
            raise ValueError(f"fps: expected > 0 (the bags' control_rate_hz), got {fps}")
        self.fps, self.spec, self.robot_type = int(fps), spec, robot_type
        self.layout = layouts.layout(proprio_layout)
        self.object_pose_dim = int(object_pose_dim)
        self.overwrite = overwrite
        self.output.parent.mkdir(parents=True, exist_ok=True)
        self.staging = Path(tempfile.mkdtemp(prefix=f".{self.output.name}.lerobot-", dir=self.output.parent))
        self.videos = {F.IMAGE_KEY: _VideoFiles(self.staging, F.IMAGE_KEY, self.fps, video or VideoOptions())}
        if camera2:
            self.videos[F.IMAGE2_KEY] = _VideoFiles(self.staging, F.IMAGE2_KEY, self.fps, video or VideoOptions())
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.rows: dict[str, list[Any]] = {}
        self.episode_rows: list[dict[str, Any]] = []
        self.tasks: dict[str, int] = {}
        self.image_shape: tuple[int, ...] = ()
        self._image_stats: dict[str, list[np.ndarray]] = {key: [] for key in self.videos}

    def add(self, episode: Episode, camera2: np.ndarray | None = None) -> None:
        """One episode; ``camera2``: the second camera's frame for each step (uint8 [T, H, W, 3])."""
        length = episode.length
        if not self.image_shape:
            self.image_shape = tuple(episode.images.shape[1:])
        elif tuple(episode.images.shape[1:]) != self.image_shape:
            raise ValueError(f"episode {episode.episode_id}: images {episode.images.shape[1:]}, the dataset's "
                             f"are {self.image_shape}")
        index = len(self.episode_rows)
        task = self.tasks.setdefault(episode.instruction, len(self.tasks))
        first = sum(row["length"] for row in self.episode_rows)
        success = episode.outcome == "success"
        last = np.arange(length) == length - 1
        columns: dict[str, Any] = {
            F.ACTION_KEY: self.spec.bins_to_values(np.asarray(episode.bins)).astype(np.float32),
            F.REWARD_KEY: (last & success).astype(np.float32),
            F.SUCCESS_KEY: last & success,
            F.DONE_KEY: last,
            "timestamp": (np.arange(length) / self.fps).astype(np.float32),
            "frame_index": np.arange(length, dtype=np.int64),
            "episode_index": np.full(length, index, dtype=np.int64),
            "index": np.arange(first, first + length, dtype=np.int64),
            "task_index": np.full(length, task, dtype=np.int64),
        }
        if self.layout.dim:
            if episode.proprio is None or episode.proprio.shape[1] != self.layout.dim:
                raise ValueError(f"episode {episode.episode_id}: no {self.layout.name} proprio of {self.layout.dim}")
            columns[F.STATE_KEY] = episode.proprio.astype(np.float32)
        if self.object_pose_dim:
            assert episode.object_poses is not None
            columns[F.ENV_STATE_KEY] = episode.object_poses.astype(np.float32)
        for key, values in columns.items():
            self.rows.setdefault(key, []).append(values)
        row: dict[str, Any] = {
            "episode_index": index, "tasks": [episode.instruction], "length": length,
            "data/chunk_index": 0, "data/file_index": 0,
            "dataset_from_index": first, "dataset_to_index": first + length,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            F.QT_OUTCOME: episode.outcome, F.QT_EPISODE_ID: episode.episode_id, F.QT_TASK_ID: episode.task_id,
            F.QT_BAG_DIGEST: episode.bag_digest, F.QT_SOURCE_BAG: episode.source_bag,
        }
        frames = {F.IMAGE_KEY: episode.images}
        if F.IMAGE2_KEY in self.videos:
            if camera2 is None or len(camera2) != length:
                raise ValueError(f"episode {episode.episode_id}: no second-camera frame for each of its {length} steps")
            frames[F.IMAGE2_KEY] = camera2
        for key, images in frames.items():
            self.shapes.setdefault(key, tuple(images.shape[1:]))
            row.update(self.videos[key].add_episode(images))
            # Image statistics from a subsample (as lerobot does): at most 100 frames per episode.
            self._image_stats[key].append(np.asarray(images[:: max(1, length // 100)]))
        self.episode_rows.append(row)

    def _features(self) -> dict[str, Any]:
        features: dict[str, Any] = {
            key: {"dtype": "video", "shape": list(self.shapes[key]), "names": ["height", "width", "channels"],
                  "info": video.info(self.shapes[key])} for key, video in self.videos.items()
        }
        if self.layout.dim:
            features[F.STATE_KEY] = {"dtype": "float32", "shape": [self.layout.dim], "names": list(self.layout.names)}
        if self.object_pose_dim:
            features[F.ENV_STATE_KEY] = {"dtype": "float32", "shape": [self.object_pose_dim], "names": None}
        features[F.ACTION_KEY] = {"dtype": "float32", "shape": [self.spec.num_dims], "names": list(self.spec.names)}
        features[F.REWARD_KEY] = {"dtype": "float32", "shape": [1], "names": None}
        features[F.SUCCESS_KEY] = {"dtype": "bool", "shape": [1], "names": None}
        features[F.DONE_KEY] = {"dtype": "bool", "shape": [1], "names": None}
        features.update(F.DEFAULT_FEATURES)
        return features

    def commit(self) -> Path:
        """Write the tables and meta files, then move the dataset into place."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        if not self.episode_rows:
            raise ValueError("no episode to write")
        for video in self.videos.values():
            video.close()
        features = self._features()
        data = {key: np.concatenate(parts) for key, parts in self.rows.items()}
        arrays = {}
        for key, feature in features.items():
            if feature["dtype"] == "video":
                continue
            values = data[key]
            if feature["shape"] == [1]:
                arrays[key] = pa.array(values)
            else:
                flat = pa.array(values.reshape(-1))
                arrays[key] = pa.FixedSizeListArray.from_arrays(flat, int(feature["shape"][0]))
        path = self.staging / F.DATA_PATH.format(chunk_index=0, file_index=0)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays), path)
        episodes_path = self.staging / F.EPISODES_PATH.format(chunk_index=0, file_index=0)
        episodes_path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(self.episode_rows), episodes_path)
        _write_tasks(self.staging / F.TASKS_PATH, self.tasks)
        stats = {key: F.feature_stats(data[key]) for key in arrays}
        for key, sample in self._image_stats.items():
            stats[key] = F.feature_stats(np.concatenate(sample), image=True)
        (self.staging / F.STATS_PATH).write_text(json.dumps(stats, indent=2))
        total = len(data["index"])
        info = {
            "codebase_version": F.CODEBASE_VERSION, "robot_type": self.robot_type or None,
            "total_episodes": len(self.episode_rows), "total_frames": total, "total_tasks": len(self.tasks),
            "chunks_size": F.CHUNKS_SIZE, "data_files_size_in_mb": F.DATA_FILES_SIZE_MB,
            "video_files_size_in_mb": F.VIDEO_FILES_SIZE_MB, "fps": self.fps,
            "splits": {"train": f"0:{len(self.episode_rows)}"},
            "data_path": F.DATA_PATH, "video_path": F.VIDEO_PATH, "features": features,
        }
        (self.staging / F.INFO_PATH).write_text(json.dumps(info, indent=4))
        if self.output.exists():
            shutil.rmtree(self.output)
        self.staging.rename(self.output)
        return self.output

    def close(self) -> None:
        """Discard the staging directory (after a failure; commit moves it instead)."""
        for video in self.videos.values():
            with contextlib.suppress(Exception):  # a broken encoder must not hide the original error
                video.close()
        shutil.rmtree(self.staging, ignore_errors=True)


def _write_tasks(path: Path, tasks: dict[str, int]) -> None:
    """meta/tasks.parquet as pandas writes it: the task string is the (unnamed) index."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    ordered = sorted(tasks.items(), key=lambda item: item[1])
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [{"name": None, "field_name": None, "pandas_type": "unicode", "numpy_type": "object",
                            "metadata": {"encoding": "UTF-8"}}],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": None, "field_name": "__index_level_0__", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.2.3",
    }
    table = pa.table({"task_index": pa.array([i for _, i in ordered], pa.int64()),
                      "__index_level_0__": pa.array([t for t, _ in ordered], pa.string())})
    table = table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


@dataclass
class ExportReport:
    episodes: int = 0
    frames: int = 0
    seconds: float = 0.0
    output: str = ""
    bad: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def second_camera(bag: str | Path, topics: tuple[str, str], steps_ns: np.ndarray, size: tuple[int, int]
                  ) -> np.ndarray | None:
    """The second camera's newest frame at or before each step (the alignment rule of the first
    camera), resized to ``size``; None when the bag has neither topic. Errors name the topic."""
    from rosbags.highlevel import AnyReader

    from qt_data_logger.convert import BagError, _check_monotonic, _pair, _stamp_ns
    from qt_data_logger.images import ImageFieldError, compressed_to_rgb, image_to_rgb, resize_rgb

    bag = Path(bag)
    with AnyReader([bag]) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        topic = next((name for name in topics if name and counts.get(name)), "")
        if not topic:
            return None
        connections = [c for c in reader.connections if c.topic == topic]
        stamps: list[int] = []
        frames: list[np.ndarray] = []
        for index, (connection, _, raw) in enumerate(reader.messages(connections=connections)):
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = _stamp_ns(msg)
            _check_monotonic(bag, topic, stamps, index, stamp)
            try:
                rgb = compressed_to_rgb(msg) if connection.msgtype.endswith("CompressedImage") else image_to_rgb(msg)
            except ImageFieldError as exc:
                raise BagError(bag, topic, exc.field, f"message {index}: {exc.problem}") from None
            stamps.append(stamp)
            frames.append(resize_rgb(rgb, size[0], size[1]))
    of = _pair(np.asarray(stamps, dtype=np.int64), np.asarray(steps_ns, dtype=np.int64))
    if (of < 0).any():
        step = int(np.argmax(of < 0))
        raise BagError(bag, topic, "header.stamp", f"step {step} has no second-camera frame stamped at or before it")
    return np.stack([frames[i] for i in of])


def export_bags(bags: list[str | Path], output: str | Path, options: Any, jobs: int = 0, skip_bad: bool = False,
                overwrite: bool = False, progress: bool = True, video: VideoOptions | None = None,
                robot_type: str = "", camera2: tuple[str, str] = ("", "")) -> ExportReport:
    """Read the bags with qt convert's reader and write them as one LeRobot v3.0 dataset;
    ``camera2`` (raw, compressed topic) adds the second camera when every bag has it."""
    from qt_data_logger import convert as C
    from qt_data_logger.bag_status import scan_bags

    started = time.perf_counter()
    scan = scan_bags(list(bags))
    if not scan.bags:
        raise C.ConvertError(f"no bag directory in {[str(b) for b in bags]}; nothing written")
    results = C._run([str(p) for p in scan.bags], options, frozenset(), jobs, progress)
    report = ExportReport(output=str(output))
    report.notes.extend(f"ignored {stray}: not a bag directory" for stray in scan.strays)
    good, second = [], []
    for result in results:
        if result.error:
            if not skip_bad:
                raise C.ConvertError(result.error)
            report.bad.append(result.error)
            continue
        frames2 = None
        if any(camera2):
            try:
                frames2 = second_camera(result.bag, camera2, result.stats["step_stamps_ns"], options.image_shape[:2])
            except C.BagError as exc:
                if not skip_bad:
                    raise C.ConvertError(str(exc)) from None
                report.bad.append(str(exc))
                continue
        good.append(result.episode)
        second.append(frames2)
    if not good:
        raise C.ConvertError(f"no episode could be converted from {len(results)} bag(s); nothing written")
    rates = {round(float(e.extra.get("control_rate_hz") or 0)) for e in good}
    if len(rates) != 1 or 0 in rates:
        raise C.ConvertError(f"bags: custom_data.control_rate_hz: the episodes must share one known control rate "
                             f"(LeRobot's fps), got {sorted(rates)}")
    dims = {0 if e.object_poses is None else int(e.object_poses.shape[1]) for e in good}
    object_dim = next(iter(dims)) if len(dims) == 1 else 0
    if len(dims) > 1:
        report.notes.append("object poses not exported: not every episode has them alike")
    robot = robot_type or next((str(e.extra.get("robot")) for e in good if e.extra.get("robot")), "")
    with_camera2 = any(camera2) and all(frames is not None for frames in second)
    if any(camera2) and not with_camera2:
        report.notes.append(f"second camera not exported: {sum(f is None for f in second)} of {len(good)} "
                            f"episode(s) have no messages on {[t for t in camera2 if t]}")
    writer = LeRobotWriter(output, rates.pop(), options.spec, options.proprio, object_dim, robot, video, overwrite,
                           camera2=with_camera2)
    try:
        for episode, frames2 in zip(good, second, strict=True):
            writer.add(episode, frames2 if with_camera2 else None)
        writer.commit()
    except BaseException:
        writer.close()
        raise
    report.episodes, report.frames = len(good), sum(e.length for e in good)
    report.seconds = time.perf_counter() - started
    return report


def format_report(report: ExportReport) -> str:
    lines = [f"exported {report.episodes} episode(s), {report.frames} frames in {report.seconds:.1f} s to "
             f"{report.output} (LeRobot {F.CODEBASE_VERSION})"]
    lines.extend(f"note: {note}" for note in report.notes)
    if report.bad:
        lines.append(f"skipped {len(report.bad)} bad bag(s) (--skip-bad):")
        lines.extend(f"  {error}" for error in report.bad)
    return "\n".join(lines)


def main(args: Any, options: Any) -> int:
    """``qt convert ... --format lerobot`` (convert.main has parsed the options)."""
    import sys

    from qt_data_logger.convert import ConvertError

    camera2 = ("", "")
    if args.topics:  # the second camera is named by the topic map (convert.py has no option for it)
        from qt_common.topic_map import TopicMap

        topics = TopicMap.load(args.topics)
        camera2 = (topics.absolute("camera2"), topics.absolute("camera2_compressed"))
    try:
        report = export_bags(args.bags, args.output, options, jobs=args.jobs, skip_bad=args.skip_bad,
                             overwrite=args.overwrite, progress=not args.no_progress,
                             video=VideoOptions(codec=args.video_codec, crf=args.crf), camera2=camera2)
    except (ConvertError, FileExistsError, ValueError) as exc:
        print(f"qt convert: error: {exc}", file=sys.stderr)
        print("qt convert: nothing written", file=sys.stderr)
        return 1
    print(format_report(report))
    return 0
