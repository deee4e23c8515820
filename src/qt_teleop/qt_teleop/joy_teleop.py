"""Joy teleop node: a gamepad or 3D mouse (``sensor_msgs/Joy``) drives the arm and labels episodes.

    ros2 run joy joy_node &                       # any Joy source: the joy driver, spacenav, a test
    ros2 run qt_teleop joy_teleop --ros-args -p mapping:=gamepad -p instruction:="pick up the red cube"
    ros2 run qt_teleop joy_teleop --ros-args -p mapping:=spacemouse -p joy_topic:=/spacenav/joy

Publishes one ``qt_msgs/ArmAction`` (source TELEOP) on ``/qt/action`` per control tick from the
newest Joy message (and the same command as a MoveIt Servo twist and a gripper command for a
real arm: qt_teleop.outputs), mapped by a YAML file (qt_teleop.joy_mapping: deadman, speed scaling,
gripper, episode buttons). ``mapping`` is a shipped name (``gamepad``, ``spacemouse``: files
``config/joy_<name>.yaml`` of this package) or a path to your own file. Episode buttons go
through qt_teleop.episodes.EpisodeSwitch (sim services, or EpisodeEvent messages on a robot).

Safety: no Joy message for ``joy_timeout_s`` (device unplugged, driver dead) means zero motion
until the next one; the deadman button released means zero motion at once. Both are also what
the policy node's own safety layer would do with a silent command source.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import rclpy
from qt_common.action_spec import ActionSpec
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Joy

from qt_teleop.episodes import EPISODE_PARAMETERS, EpisodeSwitch
from qt_teleop.joy_mapping import JoyMapping, JoyTeleop, MappingError
from qt_teleop.outputs import OUTPUT_PARAMETERS, CommandOutputs

PACKAGE_DIR = Path(__file__).resolve().parent
SHIPPED_MAPPINGS = ("gamepad", "spacemouse")
PARAMETERS: dict[str, Any] = {
    "control_rate_hz": 10.0,
    "mapping": "gamepad",  # a shipped mapping name or a path to a mapping YAML
    "joy_topic": "joy",
    "joy_timeout_s": 0.5,
    **EPISODE_PARAMETERS,
    **OUTPUT_PARAMETERS,
}


def mapping_path(mapping: str) -> Path:
    """A shipped mapping name -> its installed (or source tree) YAML; anything else is a path."""
    if mapping in SHIPPED_MAPPINGS:
        name = f"joy_{mapping}.yaml"
        try:
            from ament_index_python.packages import get_package_share_directory

            installed = Path(get_package_share_directory("qt_teleop")) / "config" / name
            if installed.is_file():
                return installed
        except (ImportError, LookupError, ValueError):
            pass
        return PACKAGE_DIR.parent / "config" / name
    return Path(mapping).expanduser()


class JoyTeleopNode(Node):
    def __init__(self, **kwargs: Any):
        super().__init__("joy_teleop", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if not float(p["control_rate_hz"]) > 0:
            raise ValueError(f"control_rate_hz: expected > 0, got {p['control_rate_hz']}")
        if not float(p["joy_timeout_s"]) > 0:
            raise ValueError(f"joy_timeout_s: expected > 0 seconds, got {p['joy_timeout_s']}")
        self.p = p
        self.mapping = JoyMapping.load(mapping_path(str(p["mapping"])))
        self.teleop = JoyTeleop(self.mapping)
        self.spec = ActionSpec.default()
        self.last_joy = float("-inf")
        self.error = ""  # a Joy message that does not fit the mapping stops the node with this
        self.episodes = EpisodeSwitch(self, p, self.say, prefix="joy")
        self.outputs = CommandOutputs(self, self.spec, p, 1.0 / float(p["control_rate_hz"]))
        self.create_subscription(Joy, p["joy_topic"], self._on_joy, qos_profile_sensor_data)
        self.create_timer(1.0 / float(p["control_rate_hz"]), self._tick)
        self.say(f"joy_teleop: mapping {self.mapping.name} ({mapping_path(str(p['mapping']))}), "
                 f"deadman buttons {list(self.mapping.deadman_buttons) or 'none'}, listening on {p['joy_topic']}")
        self.say("JOY_READY")

    def say(self, text: str) -> None:
        print(text, flush=True)

    def _on_joy(self, msg: Joy) -> None:
        sizes = self.teleop.sizes
        try:
            requests = self.teleop.update(list(msg.axes), list(msg.buttons))
        except MappingError as exc:
            self.error = str(exc)
            return
        if self.teleop.sizes != sizes:
            for warning in self.teleop.warnings:
                self.get_logger().warning(warning)
        self.last_joy = time.monotonic()
        for request in requests:
            self.episodes.request(request)

    def _tick(self) -> None:
        if time.monotonic() - self.last_joy > float(self.p["joy_timeout_s"]):
            self.teleop.release()
        self.outputs.publish(self.teleop.action())


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    code = 0
    try:
        node = JoyTeleopNode()
        while rclpy.ok() and not node.error:
            rclpy.spin_once(node, timeout_sec=0.05)
        if node.error:
            print(f"joy_teleop: {node.error}", file=sys.stderr)
            code = 2
    except (MappingError, ValueError) as exc:  # bad mapping or parameters: say so, no traceback
        print(f"joy_teleop: {exc}", file=sys.stderr)
        code = 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return code


if __name__ == "__main__":
    sys.exit(main())
