"""One YAML file that names a robot's topics for the recorder, the converter and the policy node.

Why: a real arm publishes its camera, joint states and pose under its own names (a camera
driver's ``/camera/camera/color/image_raw``, MoveIt Servo's command topic, a gripper
controller's), and each of the three programs has its own topic parameters or options. One map
(``--topics FILE`` for ``qt convert`` / ``qt convert --format lerobot``, the parameter
``topic_map_file`` of the policy node and the recorder) keeps them consistent without code
changes. Every key is optional: a key that is absent keeps that program's own setting (the
shipped defaults, today's names); an empty string turns the topic off.

    topic_map_version: 1
    topics:
      camera: camera/image_raw                        # sensor_msgs/Image
      camera_compressed: camera/image_raw/compressed  # sensor_msgs/CompressedImage
      ...

Names are used as ROS names: a relative name (no leading ``/``) is resolved in the node's
namespace by the recorder and the policy node, and against ``/`` by the converter (bags record
resolved, absolute names).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERSION = 1

# feature key -> (default name, message type, what it is)
FEATURES: dict[str, tuple[str, str, str]] = {
    "camera": ("camera/image_raw", "sensor_msgs/msg/Image", "the policy's camera, raw"),
    "camera_compressed": ("camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage",
                          "the same camera, compressed (used when the bag has no raw frames)"),
    "camera2": ("", "sensor_msgs/msg/Image", "a second camera (recorded and exported to LeRobot; not a model input)"),
    "camera2_compressed": ("", "sensor_msgs/msg/CompressedImage", "the second camera, compressed"),
    "joint_states": ("joint_states", "sensor_msgs/msg/JointState", "joint positions (finger opening for proprio)"),
    "ee_pose": ("ee_pose", "geometry_msgs/msg/PoseStamped", "end-effector pose (proprio)"),
    "action": ("qt/action", "qt_msgs/msg/ArmAction", "commanded actions: the control ticks"),
    "action_label": ("qt/action_label", "qt_msgs/msg/ArmAction", "expert labels of the actions (sim)"),
    "instruction": ("instruction", "std_msgs/msg/String", "the task in words"),
    "events": ("episode/events", "qt_msgs/msg/EpisodeEvent", "episode START/END"),
    "object_poses": ("sim/object_poses", "geometry_msgs/msg/PoseArray", "ground-truth object poses (sim)"),
    "twist_command": ("servo_node/delta_twist_cmds", "geometry_msgs/msg/TwistStamped",
                      "the policy's motion command (MoveIt Servo)"),
    "gripper_command": ("gripper/command", "std_msgs/msg/Float64", "the policy's gripper command"),
}

# Which parameter of each program a feature sets. Features a program does not use are absent.
POLICY_NODE_PARAMETERS = {
    "camera": "camera_topic", "camera_compressed": "compressed_camera_topic", "joint_states": "joint_states_topic",
    "ee_pose": "proprio_topic", "action": "action_topic", "instruction": "instruction_topic",
    "twist_command": "twist_topic", "gripper_command": "gripper_topic",
}
RECORDER_PARAMETERS = {
    "camera": "camera_topic", "camera_compressed": "compressed_camera_topic", "camera2": "camera2_topic",
    "camera2_compressed": "compressed_camera2_topic", "joint_states": "joint_states_topic",
    "ee_pose": "ee_pose_topic", "action": "action_topic", "action_label": "label_topic",
    "instruction": "instruction_topic", "events": "events_topic", "object_poses": "object_poses_topic",
}
# qt_data_logger.convert.ConvertOptions fields
CONVERTER_FIELDS = {
    "camera": "camera_topic", "camera_compressed": "compressed_camera_topic", "joint_states": "joint_states_topic",
    "ee_pose": "ee_pose_topic", "action": "action_topic", "action_label": "label_topic",
    "instruction": "instruction_topic", "events": "events_topic", "object_poses": "object_poses_topic",
}


class TopicMapError(ValueError):
    """The topic map cannot be used; the message names the file and the key."""


@dataclass
class TopicMap:
    """The features a map file names (``given``) over the defaults."""

    given: dict[str, str] = field(default_factory=dict)
    source: str = "defaults"

    @classmethod
    def load(cls, path: str | Path) -> TopicMap:
        from qt_common.yaml_file import read_yaml

        path = Path(path).expanduser()
        return cls.from_dict(read_yaml(path, "topic map", TopicMapError), str(path))

    @classmethod
    def from_dict(cls, data: Any, source: str = "<dict>") -> TopicMap:
        if not isinstance(data, dict) or not isinstance(data.get("topics"), dict):
            raise TopicMapError(f"topic map {source}: expected a mapping with a 'topics' mapping, got "
                                f"{type(data).__name__ if not isinstance(data, dict) else sorted(data)}")
        unknown_top = sorted(set(data) - {"topics", "topic_map_version"})
        if unknown_top:
            raise TopicMapError(f"topic map {source}: unknown key(s) {unknown_top}; expected topic_map_version, topics")
        version = data.get("topic_map_version", VERSION)
        if version != VERSION:
            raise TopicMapError(f"topic map {source}: field topic_map_version: {version!r}, this version reads "
                                f"{VERSION}")
        given: dict[str, str] = {}
        for key, value in data["topics"].items():
            if key not in FEATURES:
                raise TopicMapError(f"topic map {source}: field topics.{key}: unknown feature; known: "
                                    f"{sorted(FEATURES)}")
            if value is None:
                value = ""
            if not isinstance(value, str) or any(c.isspace() for c in value):
                raise TopicMapError(f"topic map {source}: field topics.{key}: expected a topic name (a string without "
                                    f"spaces, \"\" = off), got {value!r}")
            given[key] = value
        return cls(given, source)

    def name(self, feature: str) -> str:
        """The topic of ``feature``: the map's, else the default ("" = off)."""
        return self.given.get(feature, FEATURES[feature][0])

    def absolute(self, feature: str) -> str:
        """The name resolved against ``/`` (how a bag records a topic published without a namespace)."""
        name = self.name(feature)
        return name if not name or name.startswith("/") else "/" + name

    def parameters(self, table: dict[str, str]) -> dict[str, str]:
        """``{parameter: topic}`` for the features this map names, for one program's table."""
        return {table[key]: value for key, value in self.given.items() if key in table}

    def converter_fields(self) -> dict[str, str]:
        """``{ConvertOptions field: absolute topic}`` for the features this map names."""
        return {CONVERTER_FIELDS[key]: self.absolute(key) for key in self.given if key in CONVERTER_FIELDS}


def apply_to_node(node: Any, table: dict[str, str]) -> dict[str, str]:
    """Read the node's ``topic_map_file`` parameter and set the topic parameters the map names
    (before the node reads them); returns what was set. A bad map raises TopicMapError."""
    from rclpy.parameter import Parameter

    path = str(node.get_parameter("topic_map_file").value)
    if not path:
        return {}
    overrides = TopicMap.load(path).parameters(table)
    node.set_parameters([Parameter(name, value=value) for name, value in overrides.items()])
    node.get_logger().info(f"topic map {path}: {overrides}")
    return overrides
