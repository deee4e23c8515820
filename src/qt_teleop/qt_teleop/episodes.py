"""Episode control shared by the teleop nodes (keyboard, joy): start / success / failure / discard.

Why one class: every teleop device labels episodes the same way, so a bag recorded from a
gamepad carries exactly what one recorded from the keyboard does. Two ways to do it, chosen by
the ``episode_mode`` parameter:

* ``sim``: start calls ``/sim/start_episode`` (``task``/``seed``/``instruction`` parameters;
  empty/-1 let the sim choose); the ends call ``/sim/end_episode`` with SUCCESS / FAILURE /
  DISCARD. The sim publishes the START/END events.
* ``events`` (a real robot, no sim): this node publishes ``qt_msgs/EpisodeEvent`` START (new
  episode id, the ``instruction`` parameter, also latched on ``/instruction``) and END with the
  outcome on ``/episode/events``; the recorder writes (or, for discard, drops) the bag.
* ``auto`` (default): ``sim`` when the start service is available, else ``events``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from qt_common.ros_common import reliable
from std_msgs.msg import String

from qt_msgs.msg import EpisodeEvent
from qt_msgs.srv import EndEpisode, StartEpisode

EPISODE_MODES = ("auto", "sim", "events")
SERVICE_CHECK_S = 0.25  # auto mode: how often the sim's start service is looked for
REQUESTS = ("start", "success", "failure", "discard")
OUTCOMES = {
    "success": EpisodeEvent.OUTCOME_SUCCESS,
    "failure": EpisodeEvent.OUTCOME_FAILURE,
    "discard": EpisodeEvent.OUTCOME_DISCARD,
}
# Parameters every teleop node declares for its episode control (names shared with the YAML files).
EPISODE_PARAMETERS: dict[str, Any] = {
    "episode_mode": "auto",  # auto | sim | events
    "task": "",
    "seed": -1,
    "instruction": "",
    "events_topic": "episode/events",
    "instruction_topic": "instruction",
    "start_service": "sim/start_episode",
    "end_service": "sim/end_episode",
}


class EpisodeSwitch:
    """Turns a device's episode requests into sim service calls or EpisodeEvent messages.

    ``say`` prints one operator-facing line (tests read ``EPISODE START <id>`` etc. from it).
    """

    def __init__(self, node: Any, params: dict[str, Any], say: Callable[[str], None], prefix: str = "teleop"):
        if params["episode_mode"] not in EPISODE_MODES:
            raise ValueError(f"episode_mode: expected one of {', '.join(EPISODE_MODES)}, "
                             f"got {params['episode_mode']!r}")
        self.node, self.p, self.say, self.prefix = node, params, say, prefix
        self.episode_id = ""  # events mode: the episode this node started
        self.events_pub = node.create_publisher(EpisodeEvent, params["events_topic"], reliable(10, latched=True))
        self.instruction_pub = node.create_publisher(String, params["instruction_topic"], reliable(1, latched=True))
        self.start_client = node.create_client(StartEpisode, params["start_service"])
        self.end_client = node.create_client(EndEpisode, params["end_service"])
        # auto: the operator sees which way the next start goes, and when it changes. Service
        # discovery takes a moment (seconds on a loaded machine): a start pressed before the
        # sim's services are found publishes a START event of its own instead.
        self._sim_found = False
        if params["episode_mode"] == "auto":
            node.create_timer(SERVICE_CHECK_S, self._announce_mode)

    def _announce_mode(self) -> None:
        found = self.start_client.service_is_ready()
        if found != self._sim_found:
            self._sim_found = found
            self.say(f"EPISODES VIA SIM: {self.p['start_service']} found; start asks the sim" if found else
                     f"EPISODES VIA EVENTS: {self.p['start_service']} gone; start publishes a START event")

    def use_sim(self) -> bool:
        mode = self.p["episode_mode"]
        return mode == "sim" or (mode == "auto" and self.start_client.service_is_ready())

    def request(self, request: str) -> None:
        """Handle "start", "success", "failure" or "discard"."""
        if request not in REQUESTS:
            raise ValueError(f"request: expected one of {REQUESTS}, got {request!r}")
        if self.use_sim():
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
        msg.header.stamp = self.node.get_clock().now().to_msg()
        msg.seed = -1
        msg.task_id = self.p["task"]
        msg.instruction = self.p["instruction"]
        if request == "start":
            if self.episode_id:
                self.say(f"start refused: episode {self.episode_id} is running; end it first")
                return
            self.episode_id = f"{self.prefix}-{uuid.uuid4().hex[:12]}"
            msg.event, msg.outcome = EpisodeEvent.EVENT_START, EpisodeEvent.OUTCOME_NONE
            self.instruction_pub.publish(String(data=msg.instruction))
        else:
            if not self.episode_id:
                self.say(f"{request} refused: no episode is running (start one first)")
                return
            msg.event, msg.outcome = EpisodeEvent.EVENT_END, OUTCOMES[request]
        msg.episode_id = self.episode_id
        self.events_pub.publish(msg)
        self.say(f"EPISODE {request.upper()} {self.episode_id}")
        if request == "start" and self.events_pub.get_subscription_count() == 0:
            # The event is latched, so a recorder that joins later still gets it, but only the
            # frames still in its pre-roll: the operator should know before teleoperating.
            self.say(f"NO RECORDER: nothing subscribes to {self.events_pub.topic_name}; this episode "
                     "is recorded only if the recorder starts within its pre-roll")
        if request != "start":
            self.episode_id = ""
