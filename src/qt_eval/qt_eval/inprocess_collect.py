"""``qt collect --inprocess``: the ROS path's episode bags from one process, without DDS.

The same parts as the node processes, called directly: qt_sim.driver.SimDriver (episodes: a
start, a first tick that executes nothing, one tick per action, END on success or at the
horizon), the ScriptedExpert (or a policy: ``qt collect --policy``, qt_eval.policy_collect) and
the recorder's own EpisodeRecorder with its bag writer thread.
Every message is built by qt_sim.messages, the code the driver and expert nodes publish with,
serialised with rclpy (no rclpy.init, no DDS traffic) and handed to the recorder like the
recorder node hands it what DDS delivered. So a seed gives the same frames, actions, labels and
outcome as the ROS path (tests/sim/test_inprocess_collect.py checks it), at a fraction of the
cost: no wall-clock tick rate, no discovery, no executor or serialisation round trips.

Time: a simulated clock that starts at a fixed epoch and advances by the simulated period per
tick; frames, joint states, poses and the expert's action and label of a tick share its stamp
(as the expert node echoes the frame's stamp), and episode events are stamped 1 us after the
tick before them. The expert's command reaches the driver before the next tick, as lockstep
guarantees on the ROS path.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from builtin_interfaces.msg import Time
from qt_common.ros_common import arm_action
from qt_data_logger.recorder_core import TOPIC_PARAMETERS, EpisodeRecorder, EventInfo, Incoming, RecorderConfig
from qt_sim.driver import DriverConfig, EpisodeEvent, SimDriver
from qt_sim.expert import ExpertKnobs, ScriptedExpert, WorldView
from qt_sim.messages import event_messages, finger_positions, object_poses, pose_of, tick_messages
from rclpy.serialization import serialize_message

from qt_data_logger import bag_format as bf

EPOCH_NS = 1_700_000_000 * 1_000_000_000  # fixed, so a run's stamps do not depend on when it ran
EVENT_OFFSET_NS = 1_000
TOPICS = {parameter: topic for parameter, topic, _, _ in TOPIC_PARAMETERS}
TYPES = {parameter: msgtype for parameter, _, msgtype, _ in TOPIC_PARAMETERS}


@dataclass
class EpisodeResult:
    episode_id: str
    outcome: str
    steps: int  # actions executed (ticks after the episode's first)
    bag: str


class _RecorderLog:
    """The recorder's chatter (EPISODE_STARTED ...) is the node's log; only problems are shown."""

    def info(self, message: str) -> None:
        pass

    def warning(self, message: str) -> None:
        print(f"recorder: {message}", file=sys.stderr, flush=True)

    error = warning


def _time(stamp_ns: int) -> Time:
    return Time(sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)


class Actor(Protocol):
    """Who commands the arm in a collected episode: the scripted expert, or a policy (qt_eval.policy_collect)."""

    def reset(self, event: EpisodeEvent) -> None:
        """A new episode (task, seed, instruction) starts."""

    def act(self, out: Any, msgs: Any, stamp: Time, frame_id: str, tick: int) -> tuple[Any, Any | None]:
        """(ArmAction executed, ArmAction label or None) for the tick's driver output and messages."""


class ExpertActor:
    """The Markov scripted expert: executed action (with its knobs' noise) and the clean label,
    both read back from the same messages the expert teleop node reads."""

    def __init__(self, knobs: ExpertKnobs, spec: Any):
        self.expert = ScriptedExpert(knobs, spec)
        self.spec = spec

    def reset(self, event: EpisodeEvent) -> None:
        self.expert.reset(event.task_id, seed=event.seed)

    def act(self, out: Any, msgs: Any, stamp: Time, frame_id: str, tick: int) -> tuple[Any, Any | None]:
        view = WorldView.from_poses(*pose_of(msgs.ee_pose.pose), finger_positions(msgs.joint_states),
                                    object_poses(msgs.object_poses))
        executed, label = self.expert.step(view)
        return arm_action(self.spec, executed, stamp, frame_id), arm_action(self.spec, label, stamp, frame_id)


class InprocessCollector:
    """Records episodes into ``bags``; use as a context manager (closes the sim and the bag writer).

    The scripted expert acts unless an ``actor`` factory is given (called with the driver's
    action spec; e.g. a policy, qt_eval.policy_collect)."""

    def __init__(self, bags: Path, knobs: ExpertKnobs, config: DriverConfig, operator: str,
                 camera_frame_id: str = "camera_optical_frame", base_frame_id: str = "base_link",
                 actor: Callable[[Any], Actor] | None = None):
        self.driver = SimDriver(config)
        self.actor: Actor = actor(self.driver.spec) if actor is not None else ExpertActor(knobs, self.driver.spec)
        self.camera_frame_id, self.base_frame_id = camera_frame_id, base_frame_id
        self._period_ns = round(config.simulated_period_s * 1e9)
        self._stamp_ns = EPOCH_NS  # stamp of the newest tick
        self._driver_s = 0.0  # the driver's command clock (command timeouts), one wall period per tick
        self._store = store = bf.episode_typestore()
        specs = [bf.TopicSpec.make(topic, msgtype, store) for _, topic, msgtype, _ in TOPIC_PARAMETERS]
        recorder_config = RecorderConfig(bags, control_rate_hz=1.0 / config.simulated_period_s, robot="qt_sim_arm",
                                         operator=operator, preroll_s=0.0, end_grace_s=0.0)
        self.recorder = EpisodeRecorder(recorder_config, specs, TOPICS["events_topic"], TOPICS["instruction_topic"],
                                        clock_ns=lambda: self._stamp_ns, log=_RecorderLog())
        self._checked = 0  # recorder results already checked for failures

    def __enter__(self) -> InprocessCollector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def episode(self, task_id: str, seed: int) -> EpisodeResult:
        """Run one episode to its END. Its bag is finalised by the writer thread while the next
        episode runs; a write failure stops the next call (or :meth:`close`)."""
        self._check_written()
        reply = self.driver.start_episode(task_id, seed)
        if not reply.accepted or reply.event is None:
            raise RuntimeError(f"sim refused episode {task_id} seed {seed}: {reply.message}")
        self._event(reply.event)
        bag = str(self.recorder.bag_path)
        self.actor.reset(reply.event)
        ticks = 0
        while True:
            out = self.driver.tick(self._driver_s)
            self._stamp_ns += self._period_ns
            self._driver_s += self.driver.config.period_s
            ticks += 1
            stamp = _time(self._stamp_ns)
            msgs = tick_messages(out, stamp, self.camera_frame_id, self.base_frame_id)
            self._feed("camera_topic", msgs.image)
            self._feed("joint_states_topic", msgs.joint_states)
            self._feed("ee_pose_topic", msgs.ee_pose)
            self._feed("object_poses_topic", msgs.object_poses)
            action, label = self.actor.act(out, msgs, stamp, self.base_frame_id, ticks)
            self._feed("action_topic", action)
            if label is not None:
                self._feed("label_topic", label)
            if out.events:
                for event in out.events:
                    self._event(event)
                self.recorder.tick()  # end_grace_s 0: hands the bag to the writer thread now
                return EpisodeResult(reply.episode_id, out.events[-1].outcome, ticks - 1, bag)
            # Received just before the next tick, as lockstep guarantees on the ROS path.
            self.driver.arm_action(list(action.dimension_names), list(action.values), self._driver_s,
                                   action.header.frame_id)

    def close(self) -> None:
        """Discard an episode cut short (a partial episode is not training data), finish writing, stop."""
        if self.recorder.recording:
            self.recorder.end_episode("discard")
        self.recorder.shutdown()
        self.driver.close()
        self._check_written()

    # ---- helpers --------------------------------------------------------------------------

    def _feed(self, parameter: str, msg: Any) -> None:
        stamp = msg.header.stamp
        self.recorder.on_message(Incoming(TOPICS[parameter], self._cdr(parameter, msg), time.time_ns(),
                                          stamp.sec * 1_000_000_000 + stamp.nanosec))

    def _cdr(self, parameter: str, msg: Any) -> bytes:
        """rclpy's serialisation, cut to the message's CDR length and padded to 4 bytes, as DDS carries it.

        rmw_serialize may return alignment bytes after an empty trailing sequence (4 after the empty
        ``effort`` of a JointState); rosbags, which reads the bags, refuses more than 3. Other
        messages pass unchanged (decoding each camera frame to measure it cost 12 % of the loop).
        """
        raw = serialize_message(msg)
        trailing = getattr(msg, list(msg.get_fields_and_field_types())[-1])
        if isinstance(trailing, str) or not hasattr(trailing, "__len__") or len(trailing):
            return raw  # only an empty trailing sequence (list, array) gets the extra alignment bytes
        msgdef = self._store.get_msgdef(TYPES[parameter])
        decode = msgdef.deserialize_cdr_le if raw[1] else msgdef.deserialize_cdr_be
        _, end = decode(raw[4:], 0, msgdef.cls, self._store)
        size = 4 + end
        return raw[:size] + bytes(-size % 4)

    def _event(self, event: EpisodeEvent) -> None:
        stamp_ns = self._stamp_ns + EVENT_OFFSET_NS
        instruction, msg = event_messages(event, _time(stamp_ns))
        if instruction is not None:
            self.recorder.on_message(Incoming(TOPICS["instruction_topic"], self._cdr("instruction_topic", instruction),
                                              time.time_ns()))
        reply = self.recorder.on_event(EventInfo.from_msg(msg),
                                       Incoming(TOPICS["events_topic"], self._cdr("events_topic", msg), time.time_ns(),
                                                stamp_ns))
        if not reply.accepted:
            raise RuntimeError(f"the recorder refused the {event.event} of {event.episode_id}: {reply.message}")

    def _check_written(self) -> None:
        """Raise if the writer thread failed on a bag finished so far."""
        self.recorder.tick()
        for result in self.recorder.finished[self._checked:]:
            if not result.ok:
                raise RuntimeError(f"bag of episode {result.episode_id} ({result.path}): {result.error}")
        self._checked = len(self.recorder.finished)
