"""One episode -> one rosbag2 directory (MCAP), split into several files when it grows long.

The layout is what ``ros2 bag record --max-bag-size/--max-bag-duration`` produces: one
directory, files ``<name>_0.mcap``, ``<name>_1.mcap``..., and one ``metadata.yaml`` listing
them. The bytes come from rosbags' MCAP writer; this class only rotates files, merges their
metadata and finalises the directory. The order of finalisation is what makes a crash safe:

1. ``.recording`` marker written before the first byte of data;
2. each part is closed (MCAP summary + footer) and fsynced before it is moved into place;
3. ``metadata.yaml`` is written to a temporary name, fsynced and renamed (atomic);
4. the marker is removed last.

So a bag is either finalised (metadata.yaml, no marker) or visibly unfinished (marker), and
``qt bags`` can tell which after a ``kill -9``.

rosbags keeps the open part's current MCAP chunk in memory until it reaches 1 MB, so a short
episode killed with ``kill -9`` used to leave a 0-byte file. :meth:`EpisodeBagWriter.write`
therefore ends the chunk and hands it to the OS at least every ``flush_interval_s`` (checked on
each write, and by the recorder's writer thread while no message comes: qt_data_logger.bag_io):
a SIGKILL loses at most that much of the episode, and ``qt bags repair`` recovers
the rest (page cache survives a killed process; ``fsync`` at part close covers power loss).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from io import StringIO
from pathlib import Path
from typing import Any

from rosbags.interfaces import Connection
from rosbags.rosbag2 import StoragePlugin, Writer
from ruamel.yaml import YAML

from qt_data_logger.bag_format import (
    METADATA_FILE,
    RECORDING_MARKER,
    TopicSpec,
    fsync_path,
    write_marker,
)


class BagWriteError(OSError):
    """Writing the bag failed (disk full, directory gone, permission denied...)."""


class EpisodeBagWriter:
    """Writes serialised messages of one episode into a rosbag2 directory.

    Not thread safe: one thread (the recorder's writer thread) owns an instance.
    """

    def __init__(
        self,
        path: str | Path,
        topics: list[TopicSpec],
        episode_id: str,
        split_size_bytes: int = 0,
        split_duration_ns: int = 0,
        fsync: bool = True,
        flush_interval_s: float = 1.0,
    ):
        self.path = Path(path)
        self.name = self.path.name
        self.topics = list(topics)
        self.episode_id = episode_id
        self.split_size_bytes = int(split_size_bytes)
        self.split_duration_ns = int(split_duration_ns)
        self.fsync = fsync
        self.flush_interval_s = float(flush_interval_s)
        self._flushed_at = time.monotonic()
        self._unflushed = 0  # messages written since the last flush
        self.custom_data: dict[str, str] = {}
        self.message_count = 0
        self.bytes_written = 0
        self._part_index = -1
        self._part: Writer | None = None
        self._part_connections: dict[str, Connection] = {}
        self._part_bytes = 0
        self._part_first_ns: int | None = None
        self._closed_parts: list[dict[str, Any]] = []
        self._open = False

    # ---- lifecycle ------------------------------------------------------------------------

    def open(self) -> None:
        """Create the bag directory, its in-progress marker and the first part."""
        try:
            self.path.mkdir(parents=True, exist_ok=False)
            write_marker(self.path, self.episode_id, time.time_ns())
            self._open_part()
        except OSError as exc:
            raise BagWriteError(exc.errno, f"cannot create bag {self.path}: {exc.strerror or exc}") from exc
        self._open = True

    def write(self, topic: str, log_time_ns: int, data: bytes) -> None:
        """Append one serialised message; rotates to a new file when a split limit is hit."""
        if not self._open:
            raise BagWriteError(0, f"bag {self.path} is not open")
        try:
            if self._should_split(log_time_ns, len(data)):
                self._close_part()
                self._open_part()
            assert self._part is not None
            self._part.write(self._part_connections[topic], log_time_ns, data)
            self._unflushed += 1
            if time.monotonic() - self._flushed_at >= self.flush_interval_s:
                self.flush()
        except OSError as exc:
            raise BagWriteError(exc.errno, f"writing {topic} into {self.path}: {exc.strerror or exc}") from exc
        if self._part_first_ns is None:
            self._part_first_ns = log_time_ns
        self._part_bytes += len(data)
        self.bytes_written += len(data)
        self.message_count += 1

    def flush_due(self) -> bool:
        """Messages wait in memory and the flush interval has passed."""
        return bool(self._unflushed) and time.monotonic() - self._flushed_at >= self.flush_interval_s

    def flush(self) -> None:
        """End the open part's pending chunk and write it out (readable by ``qt bags repair``)."""
        self._flushed_at = time.monotonic()
        storage = None if self._part is None else self._part.storage
        if storage is None or not self._unflushed or not storage.chunk.bio.tell():
            return
        storage.close_chunk()  # rosbags' MCAP storage: the chunk held in memory becomes file bytes
        storage.bio.flush()
        self._unflushed = 0

    def finalize(self, custom_data: dict[str, str]) -> Path:
        """Close the last part, write metadata.yaml atomically, then drop the marker."""
        self.custom_data.update({k: str(v) for k, v in custom_data.items()})
        try:
            self._close_part()
            self._write_metadata()
            (self.path / RECORDING_MARKER).unlink()
            if self.fsync:
                fsync_path(self.path)
        except OSError as exc:
            raise BagWriteError(exc.errno, f"finalising bag {self.path}: {exc.strerror or exc}") from exc
        self._open = False
        return self.path

    def abort(self, error: str) -> None:
        """Stop writing without finalising: the marker stays (with the error) for ``qt bags``."""
        self._open = False
        part, self._part = self._part, None
        if part is not None:
            with contextlib.suppress(Exception):  # the storage is already broken; the marker stays
                part.abort()
        with contextlib.suppress(OSError):  # disk full: the original marker (no reason) still flags the bag
            write_marker(self.path, self.episode_id, time.time_ns(), error=error)

    def discard(self) -> None:
        """Delete the episode entirely (operator pressed discard)."""
        self.abort("discarded")
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def parts(self) -> int:
        return len(self._closed_parts) + (1 if self._part is not None else 0)

    # ---- parts ----------------------------------------------------------------------------

    def _part_file_name(self, index: int) -> str:
        return f"{self.name}_{index}.mcap"

    def _open_part(self) -> None:
        self._part_index += 1
        # rosbags names the file after its directory, so each part is written in a
        # subdirectory of that name and moved up when it is complete.
        staging = self.path / f"{self.name}_{self._part_index}"
        writer = Writer(staging, version=Writer.VERSION_LATEST, storage_plugin=StoragePlugin.MCAP)
        writer.open()
        self._part_connections = {
            spec.topic: writer.add_connection(spec.topic, spec.msgtype, msgdef=spec.msgdef, rihs01=spec.rihs01)
            for spec in self.topics
        }
        self._part = writer
        self._unflushed = 0
        self._part_bytes = 0
        self._part_first_ns = None

    def _should_split(self, log_time_ns: int, size: int) -> bool:
        if self._part_first_ns is None:
            return False  # never leave a part empty
        if self.split_size_bytes and self._part_bytes + size > self.split_size_bytes:
            return True
        return bool(self.split_duration_ns) and log_time_ns - self._part_first_ns >= self.split_duration_ns

    def _close_part(self) -> None:
        part, self._part = self._part, None
        if part is None:
            return
        part.close()
        staging = part.path
        source = staging / f"{staging.name}.mcap"
        target = self.path / self._part_file_name(self._part_index)
        if self.fsync:
            fsync_path(source)
        meta = _YAML.load((staging / METADATA_FILE).read_text())["rosbag2_bagfile_information"]
        os.replace(source, target)
        (staging / METADATA_FILE).unlink()
        staging.rmdir()
        meta["relative_file_paths"] = [target.name]
        for file in meta["files"]:
            file["path"] = target.name
        self._closed_parts.append(meta)

    # ---- metadata -------------------------------------------------------------------------

    def _write_metadata(self) -> None:
        info = merge_part_metadata(self._closed_parts, self.custom_data)
        stream = StringIO()
        _YAML.dump({"rosbag2_bagfile_information": info}, stream)
        tmp = self.path / f"{METADATA_FILE}.tmp"
        tmp.write_text(stream.getvalue())
        if self.fsync:
            fsync_path(tmp)
        os.replace(tmp, self.path / METADATA_FILE)


def merge_part_metadata(parts: list[dict[str, Any]], custom_data: dict[str, str]) -> dict[str, Any]:
    """One rosbag2 metadata record (version 9) for a bag made of the given closed parts."""
    if not parts:
        raise ValueError("a bag needs at least one part")
    files = [file for part in parts for file in part["files"]]
    counted = [f for f in files if f["message_count"]]
    start = min((f["starting_time"]["nanoseconds_since_epoch"] for f in counted), default=0)
    end = max(
        (f["starting_time"]["nanoseconds_since_epoch"] + f["duration"]["nanoseconds"] for f in counted), default=0
    )
    topics: dict[str, dict[str, Any]] = {}
    for part in parts:
        for entry in part["topics_with_message_count"]:
            name = entry["topic_metadata"]["name"]
            if name in topics:
                topics[name]["message_count"] += entry["message_count"]
            else:
                topics[name] = {
                    "topic_metadata": dict(entry["topic_metadata"]),
                    "message_count": entry["message_count"],
                }
    first = parts[0]
    return {
        "version": first["version"],
        "storage_identifier": first["storage_identifier"],
        "relative_file_paths": [f["path"] for f in files],
        "duration": {"nanoseconds": max(0, end - start)},
        "starting_time": {"nanoseconds_since_epoch": start},
        "message_count": sum(f["message_count"] for f in files),
        "topics_with_message_count": list(topics.values()),
        "compression_format": "",
        "compression_mode": "",
        "files": files,
        "custom_data": dict(custom_data) or None,
        "ros_distro": first.get("ros_distro", "rosbags"),
    }


_YAML = YAML(typ="safe")
_YAML.default_flow_style = False
