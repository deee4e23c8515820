"""Read messages back from an episode bag (rosbags, the project's typestore), for assertions."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bag_messages(bag: Path, topic_suffix: str) -> list[Any]:
    """Deserialised messages of the topics ending in ``topic_suffix`` (e.g. ``/qt/action``), in order."""
    from rosbags.highlevel import AnyReader

    from qt_data_logger import bag_format as bf

    with AnyReader([Path(bag)], default_typestore=bf.episode_typestore()) as reader:
        connections = [c for c in reader.connections if c.topic.endswith(topic_suffix)]
        return [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages(connections=connections)]


def custom_data(bag: Path) -> dict[str, str]:
    """``custom_data`` of a bag's metadata.yaml (outcome, instruction, episode id, ...)."""
    import yaml

    info = yaml.safe_load((Path(bag) / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return dict(info.get("custom_data") or {})
