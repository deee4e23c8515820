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
    not_a_bag    nothing recognisable
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from qt_data_logger import bag_format as bf

TRAINABLE = "ok"


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
    data_files = sorted(path.rglob("*.mcap")) + sorted(path.rglob("*.db3"))
    if marker is not None:
        pid, host = marker.get("pid"), marker.get("host")
        error = marker.get("error", "")
        if not error and isinstance(pid, int) and host == socket.gethostname() and _pid_alive(pid):
            return BagStatus(path, "recording", f"being written by pid {pid}", files=data_files)
        reason = f"recorder stopped with an error: {error}" if error else f"recorder pid {pid} on {host} is gone"
        return BagStatus(path, "interrupted", f"unfinished bag ({reason})", files=data_files)
    if not (path / bf.METADATA_FILE).exists():
        if data_files:
            return BagStatus(path, "interrupted", "data files but no metadata.yaml", files=data_files)
        return BagStatus(path, "not_a_bag", "no metadata.yaml")
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
    if outcome not in bf.TRAINABLE_OUTCOMES:
        status.state = "unlabelled"
        status.detail = f"outcome {outcome!r} (ended by {custom.get(bf.KEY_END_REASON, '?')}); label with qt bags label"
    else:
        status.detail = outcome
    return status


def looks_like_bag(path: Path) -> bool:
    return path.is_dir() and (
        (path / bf.METADATA_FILE).exists()
        or (path / bf.RECORDING_MARKER).exists()
        or any(path.glob("*.mcap"))
        or any(path.glob("*.db3"))
    )


def find_bags(paths: list[str | Path]) -> list[Path]:
    """Expand the arguments: a bag stays a bag; a folder of bags becomes its bags (sorted).

    Folders whose names start with '.' or '_' (``_quarantine``) are never entered.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if looks_like_bag(path) or not path.is_dir():
            found.append(path)
            continue
        found.extend(
            child for child in sorted(path.iterdir()) if not child.name.startswith((".", "_")) and looks_like_bag(child)
        )
    return found


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
