"""Recover, set aside or label episode bags the recorder could not finalise.

A ``kill -9`` (or power cut, or full disk) leaves a bag directory with its ``.recording``
marker, the parts that were already closed, and one MCAP file without summary or footer.
rosbags cannot open such a file, so :func:`salvage` reads it sequentially with the
independent ``mcap`` stream reader and keeps every chunk that was written completely (the
recorder's writer flushes ~1 MB chunks, so at most the last chunk is lost). :func:`repair`
writes what survived as a new finalised bag; its outcome comes from the END event if the
crash happened after it, else it stays ``interrupted`` (never training data) unless the
operator labels it. The original files are kept under ``_quarantine/`` of the folder holding
the bag (the folder ``qt bags`` was given, when it was given a folder of bags).

Never two episodes in one: only a bag directory's own files are read (bag_status.own_data_files),
a directory holding another bag is refused, and so is data with more than one episode START.
"""

from __future__ import annotations

import os
import re
import shutil
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from qt_data_logger import bag_format as bf
from qt_data_logger.bag_status import inspect_bag, is_bag_dir, load_metadata, own_data_files
from qt_data_logger.bag_writer import EpisodeBagWriter


class RepairError(ValueError):
    """The bag cannot be repaired (or labelled) as asked; the message says why."""


@dataclass
class Salvage:
    """What a sequential read of a bag's data files found."""

    topics: dict[str, bf.TopicSpec] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    messages: int = 0
    events: list[Any] = field(default_factory=list)


_PART = re.compile(r"_(\d+)\.mcap$")


def _part_order(path: Path) -> tuple[int, str]:
    match = _PART.search(path.name)
    return (int(match.group(1)) if match else 1 << 30, str(path))


def _spec_from_schema(topic: str, msgtype: str, msgdef: str) -> bf.TopicSpec:
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.EMPTY)
    store.register(get_types_from_msg(msgdef, msgtype))
    return bf.TopicSpec(topic, msgtype, msgdef, store.hash_rihs01(msgtype))


def _records(file: Path, found: Salvage, topics_only: bool) -> Iterator[tuple[str, int, bytes]]:
    """Messages of one MCAP file, stopping quietly at the first incomplete record."""
    from mcap.exceptions import McapError
    from mcap.records import Channel, Message, Schema
    from mcap.stream_reader import StreamReader

    schemas: dict[int, tuple[str, str]] = {}
    channels: dict[int, str] = {}
    with file.open("rb") as handle:
        try:
            for record in StreamReader(handle, record_size_limit=1 << 31).records:
                if isinstance(record, Schema):
                    schemas[record.id] = (record.name, record.data.decode())
                elif isinstance(record, Channel):
                    channels[record.id] = record.topic
                    if record.topic not in found.topics and record.schema_id in schemas:
                        msgtype, msgdef = schemas[record.schema_id]
                        found.topics[record.topic] = _spec_from_schema(record.topic, msgtype, msgdef)
                elif isinstance(record, Message) and record.channel_id in channels:
                    if topics_only:
                        return
                    yield channels[record.channel_id], record.log_time, bytes(record.data)
        except (McapError, struct.error, EOFError, ValueError, OSError):
            if not topics_only:
                found.truncated.append(file.name)


def salvage(bag_dir: Path) -> tuple[Salvage, Iterator[tuple[str, int, bytes]]]:
    """Topics of the bag, and a stream of every complete message (parts in index order).

    Streams, so a long episode is never held in memory; ``Salvage.truncated`` and
    ``Salvage.messages`` are filled in as the stream is consumed.
    """
    mcaps = [f for f in own_data_files(Path(bag_dir)) if f.suffix == ".mcap"]
    found = Salvage(files=sorted(mcaps, key=_part_order))
    for file in found.files:
        for _ in _records(file, found, topics_only=True):
            pass

    known = dict(found.topics)  # the writer is opened with these; a channel declared late is skipped

    def stream() -> Iterator[tuple[str, int, bytes]]:
        store = bf.episode_typestore()
        for file in found.files:
            for topic, log_time, data in _records(file, found, topics_only=False):
                spec = known.get(topic)
                if spec is None:
                    continue
                found.messages += 1
                if spec.msgtype == "qt_msgs/msg/EpisodeEvent":
                    found.events.append(store.deserialize_cdr(data, spec.msgtype))
                yield topic, log_time, data

    return found, stream()


def _recovered_labels(bag_dir: Path, found: Salvage) -> dict[str, str]:
    """custom_data for a salvaged bag: marker + the START/END events found in the data."""
    marker = bf.read_marker(bag_dir) or {}
    labels = {
        bf.KEY_FORMAT: bf.BAG_FORMAT,
        bf.KEY_EPISODE_ID: str(marker.get("episode_id", "")) or bag_dir.name,
        bf.KEY_OUTCOME: bf.OUTCOME_INTERRUPTED,
        bf.KEY_END_REASON: "repair",
    }
    for event in found.events:
        if event.event == bf.EVENT_START:
            labels[bf.KEY_INSTRUCTION] = str(event.instruction)
            labels[bf.KEY_TASK_ID] = str(event.task_id)
            labels[bf.KEY_SEED] = str(event.seed)
            labels[bf.KEY_EPISODE_ID] = str(event.episode_id) or labels[bf.KEY_EPISODE_ID]
        elif event.event == bf.EVENT_END:
            outcome = bf.EVENT_OUTCOME_NAMES.get(int(event.outcome), "")
            if outcome in bf.TRAINABLE_OUTCOMES:
                labels[bf.KEY_OUTCOME] = outcome
    return labels


def _require_single_bag(bag_dir: Path) -> None:
    """Refuse what is not exactly one bag directory (repair and quarantine act on nothing else)."""
    if not is_bag_dir(bag_dir):
        raise RepairError(f"{bag_dir}: not a bag directory (no {bf.METADATA_FILE} or {bf.RECORDING_MARKER}); "
                          "left alone")
    nested = sorted(sub.name for sub in bag_dir.iterdir() if is_bag_dir(sub))
    if nested:
        raise RepairError(f"{bag_dir}: holds other bag(s) {nested}; episodes are never merged or moved together")


def quarantine(bag_dir: Path) -> Path:
    """Move a bag into ``<its folder>/_quarantine/`` (never deleted; converters never look there)."""
    bag_dir = Path(bag_dir)
    _require_single_bag(bag_dir)
    target_root = bag_dir.parent / bf.QUARANTINE_DIR
    target_root.mkdir(exist_ok=True)
    target, n = target_root / bag_dir.name, 1
    while target.exists():
        target, n = target_root / f"{bag_dir.name}-{n}", n + 1
    os.rename(bag_dir, target)
    return target


@dataclass
class RepairResult:
    path: Path
    messages: int
    truncated: list[str]
    outcome: str
    original: Path


def repair(bag_dir: Path, outcome: str = "") -> RepairResult:
    """Rewrite an interrupted bag as a finalised one from what survived; keep the original aside."""
    bag_dir = Path(bag_dir)
    _require_single_bag(bag_dir)
    status = inspect_bag(bag_dir)
    if status.state not in ("interrupted", "corrupt"):
        raise RepairError(f"{bag_dir}: state is {status.state}, only interrupted or corrupt bags are repaired")
    if outcome and outcome not in bf.TRAINABLE_OUTCOMES:
        raise RepairError(f"outcome: expected one of {bf.TRAINABLE_OUTCOMES}, got {outcome!r}")
    found, messages = salvage(bag_dir)
    if not found.topics:
        raise RepairError(f"{bag_dir}: no readable MCAP data; use `qt bags quarantine`")
    staging_root = bag_dir.parent / f".repair-{os.getpid()}"
    staging_root.mkdir(exist_ok=True)
    try:
        marker = bf.read_marker(bag_dir) or {}
        writer = EpisodeBagWriter(
            staging_root / bag_dir.name, list(found.topics.values()), str(marker.get("episode_id", bag_dir.name))
        )
        writer.open()
        for topic, log_time, data in messages:
            writer.write(topic, log_time, data)
        if not found.messages:
            raise RepairError(f"{bag_dir}: no complete message survived; use `qt bags quarantine`")
        starts = sum(1 for event in found.events if event.event == bf.EVENT_START)
        if starts > 1:
            raise RepairError(f"{bag_dir}: its data holds {starts} episode STARTs; episodes are never merged")
        labels = _recovered_labels(bag_dir, found)
        if outcome:
            if labels[bf.KEY_OUTCOME] in bf.TRAINABLE_OUTCOMES and labels[bf.KEY_OUTCOME] != outcome:
                raise RepairError(f"{bag_dir}: the bag's END event says {labels[bf.KEY_OUTCOME]!r}, not {outcome!r}")
            labels[bf.KEY_OUTCOME] = outcome
            labels[bf.KEY_END_REASON] = "repair+label"
        writer.finalize(labels)
        original = quarantine(bag_dir)
        os.rename(staging_root / bag_dir.name, bag_dir)
    finally:
        shutil.rmtree(staging_root, ignore_errors=True)
    return RepairResult(bag_dir, found.messages, found.truncated, labels[bf.KEY_OUTCOME], original)


def label(bag_dir: Path, outcome: str) -> None:
    """Set the outcome of a finalised qt bag (e.g. one stopped by SIGINT) in metadata.yaml."""
    bag_dir = Path(bag_dir)
    if outcome not in bf.TRAINABLE_OUTCOMES:
        raise RepairError(f"outcome: expected one of {bf.TRAINABLE_OUTCOMES}, got {outcome!r}")
    status = inspect_bag(bag_dir)
    if status.state not in ("ok", "unlabelled") or bf.KEY_FORMAT not in status.custom:
        raise RepairError(f"{bag_dir}: state is {status.state} ({status.detail}); only finalised qt bags are labelled")
    info = load_metadata(bag_dir)
    custom: dict[str, Any] = dict(info.get("custom_data") or {})
    custom["labelled_from"] = str(custom.get(bf.KEY_OUTCOME, ""))
    custom[bf.KEY_OUTCOME] = outcome
    custom[bf.KEY_END_REASON] = "label"
    info["custom_data"] = custom
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    tmp = bag_dir / f"{bf.METADATA_FILE}.tmp"
    with tmp.open("w") as handle:
        yaml.dump({"rosbag2_bagfile_information": info}, handle)
    bf.fsync_path(tmp)
    os.replace(tmp, bag_dir / bf.METADATA_FILE)
