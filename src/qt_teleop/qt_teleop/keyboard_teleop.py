"""Keyboard teleop node: drive the arm from a real terminal (keys in qt_teleop/keyboard.py).

    ros2 run qt_teleop keyboard_teleop
    python -m qt_teleop.keyboard_teleop --ros-args -p task:=place/red/yellow -p speed:=0.5

Publishes one ``qt_msgs/ArmAction`` (source TELEOP) on ``/qt/action`` per control tick, like
any teleop device, and the same command as a MoveIt Servo twist and a gripper command for a real
arm (qt_teleop.outputs). Episode keys (``n`` start, ``y`` success, ``u`` failure, ``x`` discard) go
through qt_teleop.episodes.EpisodeSwitch: the sim's services (``episode_mode`` sim), or
``EpisodeEvent`` messages this node publishes itself on a real robot (``events``), or whichever
is available (``auto``, the default).
"""

from __future__ import annotations

import sys
import time
from typing import Any

import rclpy
from qt_common.action_spec import ActionSpec
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node

from qt_teleop.episodes import EPISODE_PARAMETERS, EpisodeSwitch
from qt_teleop.keyboard import HELP, KeyboardTeleop, NotATerminal, raw_terminal, read_keys
from qt_teleop.outputs import OUTPUT_PARAMETERS, CommandOutputs

PARAMETERS: dict[str, Any] = {
    "control_rate_hz": 10.0,
    "speed": 0.5,
    "key_hold_s": 0.3,
    **EPISODE_PARAMETERS,
    **OUTPUT_PARAMETERS,
}


class KeyboardTeleopNode(Node):
    def __init__(self, fd: int, **kwargs: Any):
        super().__init__("keyboard_teleop", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        self.p, self.fd = p, fd
        self.spec = ActionSpec.default()
        self.teleop = KeyboardTeleop(float(p["speed"]), float(p["key_hold_s"]))
        self.quit = False
        self.episodes = EpisodeSwitch(self, p, self.say)
        self.outputs = CommandOutputs(self, self.spec, p, 1.0 / float(p["control_rate_hz"]))
        self.create_timer(1.0 / float(p["control_rate_hz"]), self._tick)
        self.say(HELP)
        if p["episode_mode"] != "sim" and not p["instruction"]:
            self.say("note: no 'instruction' parameter; episodes started without the sim carry an empty one")
        self.say("KEYBOARD_READY")

    def say(self, text: str) -> None:
        sys.stdout.write(text.replace("\n", "\r\n") + "\r\n")
        sys.stdout.flush()

    def _tick(self) -> None:
        now = time.monotonic()
        for char in read_keys(self.fd):
            request = self.teleop.key(char, now)
            if request == "quit":
                self.quit = True
                return
            if request == "help":
                self.say(HELP)
            elif request is not None:
                self.episodes.request(request)
        self.outputs.publish(self.teleop.action(now))


def main(args: list[str] | None = None) -> int:
    rclpy.init(args=args)
    node = None
    try:
        with raw_terminal() as fd:
            node = KeyboardTeleopNode(fd)
            while rclpy.ok() and not node.quit:
                rclpy.spin_once(node, timeout_sec=0.05)
    except (NotATerminal, ValueError) as exc:  # no terminal or bad parameters: say so, no traceback
        print(f"keyboard_teleop: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    finally:
        if node is not None:
            node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
