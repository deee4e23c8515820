"""One topic map for the recorder and the converter (issue 17; the policy node: tests/policy).

* the map file: defaults are today's names, every mistake names the key;
* ``qt convert --topics`` reads bags recorded under a robot's own names (and refuses an explicit
  option that disagrees with the map);
* the real recorder process with ``topic_map_file`` records the topics the map names (its topic
  parameters point elsewhere) and ``qt convert --topics`` with the same map converts the bags.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from helpers.episode_bags import craft_episode, write_bag
from qt_common.dataset import Dataset
from qt_common.topic_map import CONVERTER_FIELDS, FEATURES, RECORDER_PARAMETERS, TopicMap, TopicMapError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_maps_load_and_the_default_map_is_todays_names() -> None:
    shipped = TopicMap.load(REPO / "config" / "topics.yaml")
    assert {key: shipped.name(key) for key in FEATURES} == {key: FEATURES[key][0] for key in FEATURES}
    example = TopicMap.load(REPO / "config" / "topics_moveit_example.yaml")
    assert example.parameters(RECORDER_PARAMETERS)["compressed_camera_topic"].startswith("/camera/camera/")
    assert example.converter_fields()["camera_topic"] == ""  # raw camera off
    assert TopicMap().absolute("camera") == "/camera/image_raw"
    assert set(CONVERTER_FIELDS) <= set(FEATURES) and set(RECORDER_PARAMETERS) <= set(FEATURES)


@pytest.mark.parametrize(("data", "message"), [
    ({"topics": {"camera_front": "/x"}}, "field topics.camera_front: unknown feature"),
    ({"topics": {"camera": "/a b"}}, "field topics.camera: expected a topic name"),
    ({"topics": {"camera": 3}}, "field topics.camera: expected a topic name"),
    ({"topic_map_version": 2, "topics": {}}, "field topic_map_version: 2"),
    ({"camera": "/x"}, "expected a mapping with a 'topics' mapping"),
])
def test_map_mistakes_name_the_key(data: dict, message: str) -> None:
    with pytest.raises(TopicMapError, match=None) as caught:
        TopicMap.from_dict(data, "robot.yaml")
    assert message in str(caught.value) and "robot.yaml" in str(caught.value)


def _robot_bag(tmp_path: Path) -> Path:
    """A crafted episode whose camera and pose topics carry a robot's own names."""
    episode = craft_episode(steps=6, size=(32, 24))
    renamed = {"/camera/image_raw": "/cam_front/color/image_raw", "/ee_pose": "/tool0_pose"}
    for message in episode.messages:
        message.topic = renamed.get(message.topic, message.topic)
    return write_bag(tmp_path / "bags" / "robot_ep", episode.messages, episode.custom)


def test_convert_reads_a_robots_names_from_the_map(tmp_path: Path, qt_cli) -> None:
    bag = _robot_bag(tmp_path)
    topics = tmp_path / "robot_topics.yaml"
    topics.write_text(yaml.safe_dump({"topic_map_version": 1, "topics": {
        "camera": "cam_front/color/image_raw", "ee_pose": "/tool0_pose"}}))
    common = ["--image-size", "24x32", "--proprio", "ee_pose", "--no-progress"]
    without = qt_cli("convert", str(bag.parent), "-o", str(tmp_path / "a"), *common)
    assert without.returncode == 1 and "missing topic (no camera messages)" in without.stderr
    result = qt_cli("convert", str(bag.parent), "-o", str(tmp_path / "b"), "--topics", str(topics), *common)
    assert result.returncode == 0, result.stderr
    assert len(Dataset(tmp_path / "b")) == 6
    clash = qt_cli("convert", str(bag.parent), "-o", str(tmp_path / "c"), "--topics", str(topics),
                   "--camera-topic", "/other", *common)
    assert clash.returncode == 2 and "--camera-topic /other disagrees with the topic map's /cam_front" in clash.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("topics: {camara: /x}\n")
    broken = qt_cli("convert", str(bag.parent), "-o", str(tmp_path / "d"), "--topics", str(bad), *common)
    assert broken.returncode == 2 and "field topics.camara: unknown feature" in broken.stderr


def test_recorder_process_records_the_topics_of_the_map(tmp_path: Path, recorder, source, qt_cli,
                                                        topic_prefix: str) -> None:
    mapped = {"camera": f"{topic_prefix}/camera/image_raw", "action": f"{topic_prefix}/qt/action",
              "events": f"{topic_prefix}/episode/events", "instruction": f"{topic_prefix}/instruction"}
    topics = tmp_path / "topics.yaml"
    topics.write_text(yaml.safe_dump({"topic_map_version": 1, "topics": mapped}))
    bags = tmp_path / "bags"
    # The topic parameters point nowhere; only the map makes the recorder hear the source.
    rec = recorder(bags, "-p", "camera_topic:=/nowhere/camera", "-p", "action_topic:=/nowhere/action",
                   "-p", "events_topic:=/nowhere/events", "-p", f"topic_map_file:={topics}")
    assert f"topic map {topics}" in rec.output()
    source("--episodes", "1", "--steps", "8", "--rate", "15", "--size", "32x24")
    rec.wait_for_line(r"EPISODE_WRITTEN id=synthetic-000", timeout=30)
    result = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), "--topics", str(topics), "--image-size",
                    "24x32", "--proprio", "none", "--label-topic", "", "--no-progress")
    assert result.returncode == 0, result.stderr
    assert len(Dataset(tmp_path / "ds")) >= 6
