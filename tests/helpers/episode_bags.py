"""Crafting episode bags with the rosbags Writer (real rosbag2/MCAP files) for tests.

``craft_episode`` builds the message list of a well-formed episode with known content; a test
breaks one thing in that list (an encoding, a stamp, a value) and writes it with
``write_bag``, so each validation error is triggered by a real bad bag on disk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_data_logger.synthetic_source import encode_frame, synthetic_actions, synthetic_frame
from rosbags.rosbag2 import StoragePlugin, Writer

from qt_data_logger import bag_format as bf

T0 = 1_700_000_000_000_000_000
PERIOD = 100_000_000  # 10 Hz control


@dataclass
class Msg:
    topic: str
    msgtype: str
    log_ns: int
    msg: Any


@dataclass
class CraftedEpisode:
    """Messages of one episode plus what a correct converter must produce from them."""

    messages: list[Msg]
    custom: dict[str, str]
    frames: list[np.ndarray] = field(default_factory=list)  # RGB frames in publish order
    values: np.ndarray | None = None  # actions in physical units, one per step
    instruction: str = ""
    outcome: str = ""


def _types() -> dict[str, Any]:
    return bf.episode_typestore().types


def header(ns: int, frame_id: str = "") -> Any:
    t = _types()
    return t["std_msgs/msg/Header"](
        stamp=t["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame_id
    )


def image_msg(ns: int, frame: np.ndarray, encoding: str = "rgb8") -> Any:
    data, step = encode_frame(frame, encoding)
    return _types()["sensor_msgs/msg/Image"](
        header=header(ns, "camera_optical_frame"),
        height=frame.shape[0],
        width=frame.shape[1],
        encoding=encoding,
        is_bigendian=0,
        step=step,
        data=np.frombuffer(data, np.uint8),
    )


def compressed_msg(ns: int, frame: np.ndarray, fmt: str = "jpeg") -> Any:
    import cv2

    ok, buf = cv2.imencode(".jpg" if fmt == "jpeg" else ".png", frame[..., ::-1])
    assert ok
    return _types()["sensor_msgs/msg/CompressedImage"](header=header(ns), format=fmt, data=buf.reshape(-1))


def action_msg(ns: int, values: np.ndarray, spec: ActionSpec | None = None) -> Any:
    spec = spec or ActionSpec.default()
    values = np.asarray(values, dtype=np.float32)
    bins = spec.values_to_bins(np.nan_to_num(values.astype(np.float64))).astype(np.uint16)
    return _types()["qt_msgs/msg/ArmAction"](
        header=header(ns, "base_link"),
        dimension_names=spec.names,
        values=values,
        bins=bins,
        num_bins=spec.num_bins,
        source=2,
    )


def event_msg(ns: int, kind: int, outcome: int, episode_id: str, instruction: str) -> Any:
    return _types()["qt_msgs/msg/EpisodeEvent"](
        header=header(ns),
        event=kind,
        outcome=outcome,
        episode_id=episode_id,
        instruction=instruction,
        task_id="test",
        seed=-1,
    )


def pose_msg(ns: int, xyz: tuple[float, float, float]) -> Any:
    t = _types()
    pose = t["geometry_msgs/msg/Pose"](
        position=t["geometry_msgs/msg/Point"](x=xyz[0], y=xyz[1], z=xyz[2]),
        orientation=t["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
    )
    return t["geometry_msgs/msg/PoseStamped"](header=header(ns, "base_link"), pose=pose)


def craft_episode(
    steps: int = 8,
    size: tuple[int, int] = (32, 24),
    outcome: str = "success",
    instruction: str = "pick up the red cube",
    seed: int = 0,
    episode_id: str = "ep-0",
    encoding: str = "rgb8",
    labelled: bool = True,
) -> CraftedEpisode:
    """A well-formed episode: frame i at T0 + i*PERIOD, action i 1 ms later, pose, START/END."""
    width, height = size
    values = synthetic_actions(steps, seed)
    frames = [synthetic_frame(100 * seed + i, width, height) for i in range(steps)]
    code = {"success": 1, "failure": 2, "discard": 3, "": 0}[outcome]
    msgs = [
        Msg(
            "/episode/events",
            "qt_msgs/msg/EpisodeEvent",
            T0 - 1000,
            event_msg(T0 - 1000, 1, 0, episode_id, instruction),
        ),
        Msg("/instruction", "std_msgs/msg/String", T0 - 500, _types()["std_msgs/msg/String"](data=instruction)),
    ]
    for i in range(steps):
        ns = T0 + i * PERIOD
        msgs.append(Msg("/camera/image_raw", "sensor_msgs/msg/Image", ns + 10, image_msg(ns, frames[i], encoding)))
        msgs.append(Msg("/ee_pose", "geometry_msgs/msg/PoseStamped", ns + 20, pose_msg(ns, (0.01 * i, 0.0, 0.5))))
        msgs.append(Msg("/qt/action", "qt_msgs/msg/ArmAction", ns + 30, action_msg(ns + 1_000_000, values[i])))
    # The outcome observation: the frame after the last action (a simulator publishes it right
    # before END). It is not a dataset step.
    final_ns = T0 + steps * PERIOD
    final = synthetic_frame(100 * seed + steps, width, height)
    msgs.append(Msg("/camera/image_raw", "sensor_msgs/msg/Image", final_ns + 10, image_msg(final_ns, final, encoding)))
    end_ns = final_ns + 2_000_000
    if code:
        msgs.append(
            Msg(
                "/episode/events",
                "qt_msgs/msg/EpisodeEvent",
                end_ns,
                event_msg(end_ns, 2, code, episode_id, instruction),
            )
        )
    custom = {}
    if labelled:
        custom = {
            bf.KEY_FORMAT: bf.BAG_FORMAT,
            bf.KEY_EPISODE_ID: episode_id,
            bf.KEY_INSTRUCTION: instruction,
            bf.KEY_OUTCOME: outcome,
            bf.KEY_CONTROL_RATE: "10",
            bf.KEY_ROBOT: "test",
            bf.KEY_OPERATOR: "pytest",
            bf.KEY_END_REASON: "event",
        }
    return CraftedEpisode(msgs, custom, frames, values, instruction, outcome)


def write_bag(path: Path, messages: list[Msg], custom: dict[str, str] | None = None) -> Path:
    """Write the messages (in list order) as a rosbag2 MCAP bag with the rosbags Writer."""
    store = bf.episode_typestore()
    with Writer(path, version=9, storage_plugin=StoragePlugin.MCAP) as writer:
        connections = {}
        for m in messages:
            if m.topic not in connections:
                connections[m.topic] = writer.add_connection(m.topic, m.msgtype, typestore=store)
            writer.write(connections[m.topic], m.log_ns, bytes(store.serialize_cdr(m.msg, m.msgtype)))
        for key, value in (custom or {}).items():
            writer.set_custom_data(key, value)
    return path
