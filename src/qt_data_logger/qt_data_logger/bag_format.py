"""What an episode bag is: its metadata keys, its in-progress marker, and its message types.

Shared by the recorder (writes bags), the converter (reads them) and ``qt bags`` (checks,
repairs and quarantines them). Nothing here imports rclpy: a bag is plain files, and the
message definitions come from the interface packages' installed ``.msg`` text, so the
converter and the bag tools run on a machine without a ROS runtime.
"""

from __future__ import annotations

import json
import os
import socket
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.base import Nodetype
from rosbags.typesys.store import Typestore

# Bumped when the meaning of custom_data keys changes; the converter refuses unknown versions.
BAG_FORMAT = "1"

# A bag directory holding this file is not finalised: a recorder is writing it, or was
# killed while writing it. The converter refuses such bags; ``qt bags`` repairs or
# quarantines them. JSON content: pid, host, episode_id, started_ns, and "error" on failure.
RECORDING_MARKER = ".recording"
METADATA_FILE = "metadata.yaml"
QUARANTINE_DIR = "_quarantine"

# custom_data keys (rosbag2 metadata.yaml, all values are strings).
KEY_FORMAT = "qt_bag_format"
KEY_EPISODE_ID = "episode_id"
KEY_INSTRUCTION = "instruction"
KEY_TASK_ID = "task_id"
KEY_SEED = "seed"
KEY_OUTCOME = "outcome"
KEY_CONTROL_RATE = "control_rate_hz"
KEY_ROBOT = "robot"
KEY_OPERATOR = "operator"
KEY_END_REASON = "end_reason"
KEY_DROPPED = "dropped_messages"
KEY_SEQUENCE_GAPS = "sequence_gaps"

OUTCOME_SUCCESS = "success"
OUTCOME_FAILURE = "failure"
# Finalised on SIGINT/SIGTERM or recovered by ``qt bags repair``: readable, but nobody said
# how the episode ended, so it is never training data until labelled (``qt bags label``).
OUTCOME_INTERRUPTED = "interrupted"
TRAINABLE_OUTCOMES = (OUTCOME_SUCCESS, OUTCOME_FAILURE)

# qt_msgs/EpisodeEvent constants (mirrors src/qt_msgs/msg/EpisodeEvent.msg).
EVENT_START = 1
EVENT_END = 2
EVENT_OUTCOME_NAMES = {0: "", 1: OUTCOME_SUCCESS, 2: OUTCOME_FAILURE, 3: "discard"}

MCAP_MAGIC = b"\x89MCAP0\r\n"

# Message types whose first field is std_msgs/Header (so the stamp sits at a fixed offset).
STAMPED_TYPES = frozenset(
    {
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/CompressedImage",
        "sensor_msgs/msg/JointState",
        "geometry_msgs/msg/PoseStamped",
        "geometry_msgs/msg/PoseArray",
        "qt_msgs/msg/ArmAction",
        "qt_msgs/msg/EpisodeEvent",
    }
)


def header_stamp_ns(raw: bytes | memoryview) -> int:
    """Header stamp (ns) of a CDR-serialised message whose first field is std_msgs/Header.

    Reads 8 bytes at a fixed offset instead of deserialising the message: the recorder
    handles 921 kB camera frames and must not copy them to learn one timestamp.
    """
    if len(raw) < 12:
        raise ValueError(f"serialised message too short for a header ({len(raw)} bytes)")
    fmt = "<iI" if raw[1] & 1 else ">iI"
    sec, nanosec = struct.unpack_from(fmt, raw, 4)
    return sec * 1_000_000_000 + nanosec


def _share_dirs() -> list[Path]:
    dirs = []
    for prefix in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep):
        if prefix:
            dirs.append(Path(prefix) / "share")
    # The workspace's own install tree, for processes started without env.sh.
    here = Path(__file__).resolve()
    for parent in here.parents:
        if (parent / "install").is_dir():
            dirs.extend(p / "share" for p in sorted((parent / "install").iterdir()) if p.is_dir())
            break
    return dirs


def find_msg_file(msgtype: str) -> Path:
    """Installed ``.msg`` text of ``pkg/msg/Name`` (searched along AMENT_PREFIX_PATH)."""
    package, _, name = msgtype.split("/")
    for share in _share_dirs():
        candidate = share / package / "msg" / f"{name}.msg"
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"message type {msgtype}: no {package}/msg/{name}.msg under AMENT_PREFIX_PATH; "
        "build the workspace (scripts/setup.sh) and source env.sh"
    )


def ensure_type(typestore: Typestore, msgtype: str) -> None:
    """Register ``msgtype`` (and any types it uses) from installed .msg text if missing."""
    if msgtype in typestore.fielddefs:
        return
    types = get_types_from_msg(find_msg_file(msgtype).read_text(), msgtype)
    typestore.register(types)
    for _, fields in types.values():
        for _, descriptor in fields:
            for name in _referenced_types(descriptor):
                ensure_type(typestore, name)


def _referenced_types(descriptor: tuple[Any, Any]) -> list[str]:
    """Complex type names a rosbags field descriptor refers to (through arrays/sequences)."""
    kind, detail = descriptor
    if kind == Nodetype.NAME:
        return [detail]
    if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
        return _referenced_types(detail[0])
    return []


@lru_cache(maxsize=1)
def episode_typestore() -> Typestore:
    """Kilted's standard types plus qt_msgs (from the installed .msg files)."""
    typestore = get_typestore(Stores.ROS2_KILTED)
    for name in ("ArmAction", "EpisodeEvent", "PolicyStatus"):
        ensure_type(typestore, f"qt_msgs/msg/{name}")
    return typestore


@dataclass(frozen=True)
class TopicSpec:
    """A topic as written into a bag: name, type, and the definition text + hash ROS expects."""

    topic: str
    msgtype: str
    msgdef: str
    rihs01: str

    @classmethod
    def make(cls, topic: str, msgtype: str, typestore: Typestore | None = None) -> TopicSpec:
        store = typestore or episode_typestore()
        ensure_type(store, msgtype)
        msgdef, _ = store.generate_msgdef(msgtype, ros_version=2)
        return cls(topic, msgtype, msgdef, store.hash_rihs01(msgtype))


def write_marker(bag_dir: Path, episode_id: str, started_ns: int, error: str = "") -> None:
    info = {"pid": os.getpid(), "host": socket.gethostname(), "episode_id": episode_id, "started_ns": started_ns}
    if error:
        info["error"] = error
    tmp = bag_dir / f"{RECORDING_MARKER}.tmp"
    tmp.write_text(json.dumps(info))
    os.replace(tmp, bag_dir / RECORDING_MARKER)


def read_marker(bag_dir: Path) -> dict[str, Any] | None:
    path = bag_dir / RECORDING_MARKER
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}


def fsync_path(path: Path) -> None:
    """Flush a file or directory to disk (a finalised bag must survive a power cut)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
