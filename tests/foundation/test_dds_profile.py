"""The environment's Fast DDS profile carries 640x480 rgb8 camera frames without loss."""

from __future__ import annotations

import os
from pathlib import Path

from helpers.processes import python_child

FRAMES = 60  # two seconds at 30 Hz


def test_environment_sets_localhost_discovery_and_profile():
    assert os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] == "LOCALHOST"
    profile = Path(os.environ["FASTDDS_DEFAULT_PROFILES_FILE"])
    assert profile.is_file()
    text = profile.read_text()
    assert "<segment_size>16777216</segment_size>" in text
    assert "<address>127.0.0.1</address>" in text


def test_full_size_camera_frames_cross_processes_without_loss(children):
    subscriber = python_child(
        "helpers.msg_peer", "sub", "sensor_msgs/msg/Image", "--count", str(FRAMES), "--summary-only",
        "--timeout", "60",
    )
    children.append(subscriber)
    subscriber.wait_for_line("SUBSCRIBED", timeout=30)
    publisher = python_child(
        "helpers.msg_peer", "pub", "sensor_msgs/msg/Image", "0", "--count", str(FRAMES),
        "--rate", "30", "--image", "640x480",
    )
    children.append(publisher)

    count = int(subscriber.wait_for_line(r"^COUNT (\d+)$", timeout=90)[1])
    assert count == FRAMES
    assert "XMLPARSER" not in publisher.output() + subscriber.output(), "Fast DDS rejected the profile"
