"""The policy node takes its topic names from the topic map (issue 17; recorder and converter:
tests/logger/test_topic_map.py): a real PolicyNode configured with ``topic_map_file`` subscribes
and publishes on the map's names; a broken map fails configure with the key named."""

from __future__ import annotations

from pathlib import Path

import yaml
from lifecycle_msgs.msg import State
from rclpy.lifecycle import TransitionCallbackReturn

REPO = Path(__file__).resolve().parents[2]


def test_the_node_uses_the_maps_names(make_node, tiny_model, tmp_path: Path) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text(yaml.safe_dump({"topics": {
        "camera": "", "camera_compressed": "/camera/camera/color/image_raw/compressed",
        "twist_command": "/servo_node/delta_twist_cmds", "gripper_command": "/gripper_position_controller/cmd",
    }}))
    node = make_node(tiny_model, f"topic_map_file:={topics}")
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert node.param("compressed_camera_topic") == "/camera/camera/color/image_raw/compressed"
    assert node.param("gripper_topic") == "/gripper_position_controller/cmd"
    subscribed = {name for name, _ in node.get_subscriber_names_and_types_by_node(node.get_name(),
                                                                                   node.get_namespace())}
    published = {name for name, _ in node.get_publisher_names_and_types_by_node(node.get_name(),
                                                                                 node.get_namespace())}
    assert "/camera/camera/color/image_raw/compressed" in subscribed and "/camera/image_raw" not in subscribed
    assert {"/servo_node/delta_twist_cmds", "/gripper_position_controller/cmd"} <= published
    assert node.param("action_topic") == "qt/action"  # not in the map: the parameter's own value


def test_the_shipped_example_map_configures(make_node, tiny_model) -> None:
    node = make_node(tiny_model, f"topic_map_file:={REPO / 'config' / 'topics_moveit_example.yaml'}")
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS


def test_a_broken_map_fails_configure_naming_the_key(make_node, tiny_model, tmp_path: Path, caplog) -> None:
    topics = tmp_path / "topics.yaml"
    topics.write_text("topics: {camra: /x}\n")
    node = make_node(tiny_model, f"topic_map_file:={topics}")
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert node._state_machine.current_state[0] == State.PRIMARY_STATE_UNCONFIGURED
