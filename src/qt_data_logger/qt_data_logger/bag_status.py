"""Is this directory a finalised, labelled episode bag? Shared by ``qt convert`` and ``qt bags``.

States:
    ok           finalised, outcome success/failure (or a bag from another recorder, whose
                 outcome the converter reads from its EpisodeEvent END)
    unlabelled   finalised but nobody said how the episode ended (stopped by SIGINT/SIGTERM,
                 or repaired after a crash): not training data until ``qt bags label``
    recording    a recorder on this machine is still writing it
    interrupted  the recorder died (kill -9, power cut, disk full): no metadata.yaml or a
                 leftover ``.recording`` marker; ``qt bags repair`` or ``qt bags quarantine``
    corrupt      metadata.yaml present but a data file is missing or has no MCAP footer
    incomplete   finalised and labelled, but without camera frames or without actions (a
                 recorder that missed the start of its topics): never training data
    not_a_bag    nothing recognisable

A bag directory is one holding ``metadata.yaml`` or the ``.recording`` marker beside its own
data files; nothing else is ever treated as a bag, and a bag's files are only its own (never
those of a bag nested inside it). Any other entry of a folder of bags is a *stray*: listed by
name, never read, repaired, merged or moved. (A stray ``.mcap`` once made a whole folder look
like one interrupted bag, which ``qt bags repair`` then merged into a single episode.)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qt_data_logger import bag_format as bf

TRAINABLE = "ok"
DATA_SUFFIXES = (".mcap", ".db3")


@dataclass
class BagStatus:
    path: Path
    state: str
    detail: str = ""
    custom: dict[str, str] = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    message_count: int = 0
    duration_s: float = 0.0

    @property
    def size_bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files if f.exists())


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_metadata(path: Path) -> dict[str, Any]:
    """The rosbag2_bagfile_information record of a bag's metadata.yaml (libyaml's C parser)."""
    text = (path / bf.METADATA_FILE).read_text()
    data = yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    if not isinstance(data, dict) or "rosbag2_bagfile_information" not in data:
        raise ValueError("no 'rosbag2_bagfile_information' record")
    return data["rosbag2_bagfile_information"]


def has_mcap_footer(file: Path) -> bool:
    """True if the file ends with the MCAP magic (written only when the file was closed)."""
    size = file.stat().st_size
    if size < 2 * len(bf.MCAP_MAGIC):
        return False
    with file.open("rb") as handle:
        handle.seek(-len(bf.MCAP_MAGIC), os.SEEK_END)
        return handle.read() == bf.MCAP_MAGIC


def inspect_bag(path: str | Path) -> BagStatus:
    path = Path(path)
    if not path.is_dir():
        return BagStatus(path, "not_a_bag", "not a directory")
    marker = bf.read_marker(path)
    data_files = own_data_files(path)
    if marker is not None:
        pid, host = marker.get("pid"), marker.get("host")
        error = marker.get("error", "")
        if not error and isinstance(pid, int) and host == socket.gethostname() and _pid_alive(pid):
            return BagStatus(path, "recording", f"being written by pid {pid}", files=data_files)
        reason = f"recorder stopped with an error: {error}" if error else f"recorder pid {pid} on {host} is gone"
        return BagStatus(path, "interrupted", f"unfinished bag ({reason})", files=data_files)
    if not (path / bf.METADATA_FILE).exists():
        held = f" (holds {len(data_files)} data file(s), left alone)" if data_files else ""
        return BagStatus(path, "not_a_bag", f"no {bf.METADATA_FILE} or {bf.RECORDING_MARKER} marker{held}")
    try:
        meta = load_metadata(path)
        files = [path / Path(p).name for p in meta["relative_file_paths"]]
        custom = {str(k): str(v) for k, v in (meta.get("custom_data") or {}).items()}
        count = int(meta.get("message_count", 0))
        duration = int(meta.get("duration", {}).get("nanoseconds", 0)) / 1e9
    except (OSError, yaml.YAMLError, ValueError, KeyError, TypeError, AttributeError) as exc:
        return BagStatus(path, "corrupt", f"metadata.yaml unreadable: {exc}", files=data_files)
    status = BagStatus(path, TRAINABLE, custom=custom, files=files, message_count=count, duration_s=duration)
    missing = [f.name for f in files if not f.exists()]
    if missing:
        status.state, status.detail = "corrupt", f"data files missing: {missing}"
        return status
    unclosed = [f.name for f in files if f.suffix == ".mcap" and not has_mcap_footer(f)]
    if unclosed:
        status.state, status.detail = "corrupt", f"MCAP file(s) without footer: {unclosed}"
        return status
    if bf.KEY_FORMAT not in custom:
        status.detail = "not written by the qt recorder: outcome comes from its EpisodeEvent END"
        return status
    outcome = custom.get(bf.KEY_OUTCOME, "")
    empty = _empty_streams(meta)
    if outcome not in bf.TRAINABLE_OUTCOMES:
        status.state = "unlabelled"
        status.detail = f"outcome {outcome!r} (ended by {custom.get(bf.KEY_END_REASON, '?')}); label with qt bags label"
    elif empty:
        status.state, status.detail = "incomplete", f"no {' and no '.join(empty)} (outcome {outcome!r})"
    else:
        status.detail = outcome
    return status


FRAME_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
ACTION_TYPE = "qt_msgs/msg/ArmAction"
ACTION_TOPIC_SUFFIX = "/qt/action"


def _empty_streams(meta: dict[str, Any]) -> list[str]:
    """'camera frames' / 'actions' when the bag holds none (expert labels do not count as actions).

    Actions are ArmAction messages or anything on a ``.../qt/action`` topic: a wrong type there is
    the converter's to name precisely, not a missing stream."""
    counts = {"camera frames": 0, "actions": 0}
    for entry in meta.get("topics_with_message_count") or []:
        topic, count = entry["topic_metadata"], int(entry.get("message_count", 0))
        if topic["type"] in FRAME_TYPES:
            counts["camera frames"] += count
        elif topic["name"].endswith(ACTION_TOPIC_SUFFIX) or (
                topic["type"] == ACTION_TYPE and not topic["name"].endswith("action_label")):
            counts["actions"] += count
    return [name for name, count in counts.items() if count == 0]


def is_bag_dir(path: Path) -> bool:
    """A bag directory: metadata.yaml (finalised) or the recorder's marker (unfinished) inside."""
    return path.is_dir() and ((path / bf.METADATA_FILE).exists() or (path / bf.RECORDING_MARKER).exists())


def own_data_files(path: Path) -> list[Path]:
    """The data files of the bag at ``path``: its own ``*.mcap``/``*.db3``, plus the part the
    recorder was still writing in its staging subfolder ``<name>_<i>/<name>_<i>.mcap``. Never a
    file of another bag nested inside, never anything deeper."""
    if not path.is_dir():
        return []
    files = [f for f in path.iterdir() if f.is_file() and f.suffix in DATA_SUFFIXES]
    part_dir = re.compile(re.escape(path.name) + r"_\d+")
    for sub in path.iterdir():
        staged = sub / f"{sub.name}.mcap"
        if sub.is_dir() and part_dir.fullmatch(sub.name) and staged.is_file():
            files.append(staged)
    return sorted(files)


@dataclass
class BagScan:
    """What the arguments of a bag command hold: bag directories, and everything else by name."""

    bags: list[Path] = field(default_factory=list)
    strays: list[Path] = field(default_factory=list)


def scan_bags(paths: list[str | Path]) -> BagScan:
    """Expand the arguments: a bag stays a bag; a folder of bags becomes its bags (sorted), and
    its other entries its strays. A path that is neither stays in ``bags`` so that inspecting it
    says why it is not one.

    Entries whose names start with '.' or '_' (``_quarantine``, repair staging) are skipped.
    """
    scan = BagScan()
    for raw in paths:
        path = Path(raw)
        if is_bag_dir(path) or not path.is_dir():
            scan.bags.append(path)
            continue
        for child in sorted(path.iterdir()):
            if not child.name.startswith((".", "_")):
                (scan.bags if is_bag_dir(child) else scan.strays).append(child)
    return scan


def find_bags(paths: list[str | Path]) -> list[Path]:
    """The bags of :func:`scan_bags` (for callers that only read bags)."""
    return scan_bags(paths).bags


def bag_digest(status: BagStatus) -> str:
    """Content digest of a bag: its data files plus its labels (custom_data).

    Relabelling a bag (qt bags label) changes its digest, so it is converted again. hashlib
    releases the GIL on large buffers, so this runs well in a thread beside the decoding.
    """
    digest = hashlib.sha256()
    for file in status.files:
        with file.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    digest.update(json.dumps(status.custom, sort_keys=True).encode())
    return digest.hexdigest()[:32]
