"""Keyboard teleop node: drive the arm from a real terminal (keys in qt_sim/keyboard.py).

    ros2 run qt_sim keyboard_teleop
    python -m qt_sim.keyboard_teleop --ros-args -p task:=place/red/yellow -p speed:=0.5

Publishes one ``qt_msgs/ArmAction`` (source TELEOP) on ``/qt/action`` per control tick, like
any teleop device. Episode keys depend on ``episode_mode``:

* ``sim``: ``n`` calls ``/sim/start_episode`` (``task``/``seed``/``instruction`` parameters;
  empty/-1 let the sim choose); ``y``/``u``/``x`` call ``/sim/end_episode`` with SUCCESS /
  FAILURE / DISCARD. The sim publishes the START/END events.
* ``events`` (a real robot, no sim): the node itself publishes ``qt_msgs/EpisodeEvent``
  START (new episode id, the ``instruction`` parameter, also latched on ``/instruction``) and
  END with the outcome on ``/episode/events``.
* ``auto`` (default): ``sim`` when the start service is available, else ``events``.
"""

from __future__ import annotations

import sys
import time
import uuid
from typing import Any

import rclpy
from qt_common.action_spec import ActionSpec
from rclpy.executors import ExternalShutdownException
from rclpy.node import Node
from std_msgs.msg import String

from qt_msgs.msg import ArmAction, EpisodeEvent
from qt_msgs.srv import EndEpisode, StartEpisode
from qt_sim.keyboard import HELP, KeyboardTeleop, NotATerminal, raw_terminal, read_keys
from qt_sim.messages import arm_action
from qt_sim.ros_common import reliable

PARAMETERS: dict[str, Any] = {
    "control_rate_hz": 10.0,
    "speed": 0.5,
    "key_hold_s": 0.3,
    "episode_mode": "auto",  # auto | sim | events
    "task": "",
    "seed": -1,
    "instruction": "",
    "frame_id": "base_link",
    "action_topic": "qt/action",
    "events_topic": "episode/events",
    "instruction_topic": "instruction",
    "start_service": "sim/start_episode",
    "end_service": "sim/end_episode",
}
OUTCOMES = {
    "success": EpisodeEvent.OUTCOME_SUCCESS,
    "failure": EpisodeEvent.OUTCOME_FAILURE,
    "discard": EpisodeEvent.OUTCOME_DISCARD,
}


class KeyboardTeleopNode(Node):
    def __init__(self, fd: int, **kwargs: Any):
        super().__init__("keyboard_teleop", **kwargs)
        for name, default in PARAMETERS.items():
            self.declare_parameter(name, default)
        p = {name: self.get_parameter(name).value for name in PARAMETERS}
        if p["episode_mode"] not in ("auto", "sim", "events"):
            raise ValueError(f"episode_mode: expected auto, sim or events, got {p['episode_mode']!r}")
        self.p, self.fd = p, fd
        self.spec = ActionSpec.default()
        self.teleop = KeyboardTeleop(float(p["speed"]), float(p["key_hold_s"]))
        self.quit = False
        self.episode_id = ""  # events mode: the episode this node started
        self.action_pub = self.create_publisher(ArmAction, p["action_topic"], reliable(10))
        self.events_pub = self.create_publisher(EpisodeEvent, p["events_topic"], reliable(10, latched=True))
        self.instruction_pub = self.create_publisher(String, p["instruction_topic"], reliable(1, latched=True))
        self.start_client = self.create_client(StartEpisode, p["start_service"])
        self.end_client = self.create_client(EndEpisode, p["end_service"])
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
                self._episode(request)
        self.action_pub.publish(arm_action(self.spec, self.teleop.action(now), self.get_clock().now().to_msg(),
                                           self.p["frame_id"], ArmAction.SOURCE_TELEOP))

    def _use_sim(self) -> bool:
        mode = self.p["episode_mode"]
        return mode == "sim" or (mode == "auto" and self.start_client.service_is_ready())

    def _episode(self, request: str) -> None:
        if self._use_sim():
            if request == "start":
                call = StartEpisode.Request(task_id=self.p["task"], seed=int(self.p["seed"]),
                                            instruction=self.p["instruction"])
                future = self.start_client.call_async(call)
            else:
                future = self.end_client.call_async(EndEpisode.Request(outcome=OUTCOMES[request]))
            future.add_done_callback(lambda f, r=request: self._report(r, f))
            self.say(f"{request}: asking the sim ...")
            return
        self._publish_event(request)

    def _report(self, request: str, future: Any) -> None:
        response = future.result()
        if response is None:
            self.say(f"{request}: no answer from the sim")
        elif response.accepted:
            extra = f" {response.instruction!r}" if request == "start" else ""
            self.say(f"EPISODE {request.upper()} {response.episode_id}{extra}")
        else:
            self.say(f"{request} refused: {response.message}")

    def _publish_event(self, request: str) -> None:
        msg = EpisodeEvent()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.seed = -1
        msg.task_id = self.p["task"]
        msg.instruction = self.p["instruction"]
        if request == "start":
            if self.episode_id:
                self.say(f"start refused: episode {self.episode_id} is running; end it first (y/u/x)")
                return
            self.episode_id = f"teleop-{uuid.uuid4().hex[:12]}"
            msg.event, msg.outcome = EpisodeEvent.EVENT_START, EpisodeEvent.OUTCOME_NONE
            self.instruction_pub.publish(String(data=msg.instruction))
        else:
            if not self.episode_id:
                self.say(f"{request} refused: no episode is running (n starts one)")
                return
            msg.event, msg.outcome = EpisodeEvent.EVENT_END, OUTCOMES[request]
        msg.episode_id = self.episode_id
        self.events_pub.publish(msg)
        self.say(f"EPISODE {request.upper()} {self.episode_id}")
        if request != "start":
            self.episode_id = ""


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
