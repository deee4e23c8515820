"""EpisodeBagWriter: one rosbag2 directory per episode, split files, finalisation order, types."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from qt_data_logger.bag_status import inspect_bag, load_metadata
from qt_data_logger.bag_writer import EpisodeBagWriter
from rosbags.highlevel import AnyReader

from qt_data_logger import bag_format as bf


def _string(text: str) -> bytes:
    store = bf.episode_typestore()
    return bytes(store.serialize_cdr(store.types["std_msgs/msg/String"](data=text), "std_msgs/msg/String"))


def _specs() -> list[bf.TopicSpec]:
    return [bf.TopicSpec.make("/a", "std_msgs/msg/String"), bf.TopicSpec.make("/b", "std_msgs/msg/String")]


def _read(bag: Path) -> list[tuple[str, int, str]]:
    with AnyReader([bag]) as reader:
        return [(c.topic, t, reader.deserialize(raw, c.msgtype).data) for c, t, raw in reader.messages()]


@pytest.mark.parametrize("split", [{"split_size_bytes": 2000}, {"split_duration_ns": 25}])
def test_split_episode_is_one_bag_directory_with_several_files(tmp_path: Path, split: dict) -> None:
    writer = EpisodeBagWriter(tmp_path / "ep", _specs(), "ep", fsync=False, **split)
    writer.open()
    assert (tmp_path / "ep" / bf.RECORDING_MARKER).exists()
    sent = [("/a" if i % 3 else "/b", 1000 + i, f"message {i} " + "x" * 80) for i in range(100)]
    for topic, t, text in sent:
        writer.write(topic, t, _string(text))
    writer.finalize({"outcome": "success", "episode_id": "ep"})
    files = sorted(p.name for p in (tmp_path / "ep").iterdir())
    assert files[-1] == "metadata.yaml" and bf.RECORDING_MARKER not in files
    parts = [f for f in files if f.endswith(".mcap")]
    assert len(parts) >= 3 and all(f.startswith("ep_") for f in parts)
    assert not [p for p in (tmp_path / "ep").iterdir() if p.is_dir()]  # staging dirs gone
    assert _read(tmp_path / "ep") == sent
    meta = load_metadata(tmp_path / "ep")
    assert meta["message_count"] == 100 and len(meta["relative_file_paths"]) == len(parts)
    assert {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]} == {
        "/a": 66,
        "/b": 34,
    }
    assert meta["custom_data"] == {"outcome": "success", "episode_id": "ep"}
    status = inspect_bag(tmp_path / "ep")
    assert status.state == "ok" or status.detail.startswith("not written by the qt recorder")


def test_bag_types_carry_the_installed_definitions_and_hashes(tmp_path: Path) -> None:
    """The type hash in metadata.yaml equals the one rosidl generated for qt_msgs (ros2 bag play checks it)."""
    spec = bf.TopicSpec.make("/qt/action", "qt_msgs/msg/ArmAction")
    installed = json.loads((bf.find_msg_file("qt_msgs/msg/ArmAction").with_suffix(".json")).read_text())
    assert spec.rihs01 == installed["type_hashes"][0]["hash_string"]
    writer = EpisodeBagWriter(tmp_path / "ep", [spec], "ep", fsync=False)
    writer.open()
    store = bf.episode_typestore()
    msg = store.types["qt_msgs/msg/ArmAction"](
        header=store.types["std_msgs/msg/Header"](
            stamp=store.types["builtin_interfaces/msg/Time"](sec=1, nanosec=2), frame_id="base_link"
        ),
        dimension_names=["dx"],
        values=np.array([0.5], np.float32),
        bins=np.array([3], np.uint16),
        num_bins=256,
        source=1,
    )
    raw = bytes(store.serialize_cdr(msg, "qt_msgs/msg/ArmAction"))
    assert bf.header_stamp_ns(raw) == 1_000_000_002
    writer.write("/qt/action", 5, raw)
    writer.finalize({})
    meta = load_metadata(tmp_path / "ep")
    assert meta["topics_with_message_count"][0]["topic_metadata"]["type_description_hash"] == spec.rihs01
    with AnyReader([tmp_path / "ep"]) as reader:  # reads back with only the definition stored in the bag
        ((connection, _, data),) = list(reader.messages())
        assert reader.deserialize(data, connection.msgtype).dimension_names == ["dx"]


def test_abort_leaves_a_marked_unfinished_bag_and_discard_deletes(tmp_path: Path) -> None:
    writer = EpisodeBagWriter(tmp_path / "crash", _specs(), "crash", fsync=False)
    writer.open()
    writer.write("/a", 1, _string("x"))
    writer.abort("[Errno 28] No space left on device")
    status = inspect_bag(tmp_path / "crash")
    assert status.state == "interrupted" and "No space left" in status.detail
    gone = EpisodeBagWriter(tmp_path / "gone", _specs(), "gone", fsync=False)
    gone.open()
    gone.write("/a", 1, _string("x"))
    gone.discard()
    assert not (tmp_path / "gone").exists()


def test_refuses_to_overwrite_an_existing_bag(tmp_path: Path) -> None:
    (tmp_path / "ep").mkdir()
    with pytest.raises(OSError, match="cannot create bag"):
        EpisodeBagWriter(tmp_path / "ep", _specs(), "ep").open()


def test_files_decode_with_the_independent_mcap_reader(tmp_path: Path) -> None:
    """Not only rosbags: the mcap + mcap-ros2-support reader decodes the recorder's files too."""
    from mcap.reader import make_reader
    from mcap_ros2.decoder import DecoderFactory

    writer = EpisodeBagWriter(tmp_path / "ep", _specs(), "ep", fsync=False)
    writer.open()
    for i in range(5):
        writer.write("/a", 10 + i, _string(f"hello {i}"))
    writer.finalize({"outcome": "failure"})
    (part,) = (tmp_path / "ep").glob("*.mcap")
    with part.open("rb") as handle:
        reader = make_reader(handle, decoder_factories=[DecoderFactory()])
        decoded = [(ch.topic, msg.log_time, ros.data) for _, ch, msg, ros in reader.iter_decoded_messages()]
    assert decoded == [("/a", 10 + i, f"hello {i}") for i in range(5)]


def test_writer_thread_flushes_an_open_bag_whose_topics_went_quiet(tmp_path: Path) -> None:
    """The last messages before a silence reach the disk within about the flush interval, without
    waiting for the next write (a SIGKILL during the silence must not lose them)."""
    import time as _time

    from helpers.episode_bags import craft_episode
    from qt_data_logger.bag_io import BagIO

    episode = craft_episode(steps=3, episode_id="quiet")
    store = bf.episode_typestore()
    specs = [bf.TopicSpec.make(t, ty, store) for t, ty in {m.topic: m.msgtype for m in episode.messages}.items()]
    writer = EpisodeBagWriter(tmp_path / "quiet", specs, "quiet", fsync=False, flush_interval_s=0.2)
    writer.open()
    io = BagIO(10**8)
    io.adopt(writer)
    for m in episode.messages[:4]:
        io.write(writer, m.topic, m.log_ns, bytes(store.serialize_cdr(m.msg, m.msgtype)))
    deadline = _time.monotonic() + 5.0
    while _time.monotonic() < deadline and not any(f.stat().st_size > 0 for f in (tmp_path / "quiet").rglob("*.mcap")):
        _time.sleep(0.05)
    try:
        assert any(f.stat().st_size > 0 for f in (tmp_path / "quiet").rglob("*.mcap")), "nothing reached the disk"
    finally:
        io.discard(writer)
        io.close()
