"""Episode control for the recorder, free of rclpy so it can be tested without DDS.

Which message belongs to which episode is decided by **message time**, not by the order in
which callbacks happen to run: an episode covers the header stamps ``[start, end]`` of its
START and END (event or service call). DDS delivers each topic on its own reader, so the
executor may hand over messages in another order than they were stamped:

* a frame stamped after START handled just *before* the START event: a pre-roll ring of the
  last ``preroll_s`` of messages is searched when START arrives;
* a frame stamped after END (the next episode's) handled just *before* the END event: messages
  of the open episode are held ``end_grace_s`` before they are written, and END sorts the held
  ones by stamp;
* a frame stamped before END handled just *after* it: the bag stays open ``end_grace_s`` after
  END for such late messages.

Messages without a header (the instruction string) are ordered by reception time instead.
This is what makes "recorded == published" hold exactly.
"""

from __future__ import annotations

import re
import secrets
import shutil
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from qt_data_logger import bag_format as bf
from qt_data_logger.bag_format import TopicSpec
from qt_data_logger.bag_io import BagIO, WriteResult
from qt_data_logger.bag_writer import BagWriteError, EpisodeBagWriter


class Logger(Protocol):
    def info(self, message: str) -> object: ...
    def warning(self, message: str) -> object: ...
    def error(self, message: str) -> object: ...


@dataclass
class RecorderConfig:
    """Recorder settings (ROS parameters of the node; see config/recorder.yaml)."""

    output_dir: Path
    control_rate_hz: float = 10.0
    robot: str = "qt_sim_arm"
    operator: str = ""
    split_size_mb: float = 2048.0
    split_duration_s: float = 600.0
    preroll_s: float = 1.0
    end_grace_s: float = 0.5
    queue_limit_mb: float = 512.0
    min_free_mb: float = 100.0
    fsync: bool = True
    # Topics (resolved names) that must each have delivered a message before an episode is
    # recorded; a START before that waits up to ready_timeout_s, then the episode is not recorded.
    required_topics: tuple[str, ...] = ()
    ready_timeout_s: float = 10.0

    def __post_init__(self) -> None:
        if not self.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz: expected > 0, got {self.control_rate_hz}")
        if not self.queue_limit_mb > 0:
            raise ValueError(f"queue_limit_mb: expected > 0, got {self.queue_limit_mb}")
        for name in ("split_size_mb", "split_duration_s", "preroll_s", "end_grace_s", "min_free_mb"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name}: expected >= 0 (0 disables), got {getattr(self, name)}")


@dataclass
class Incoming:
    """One serialised message as received: bytes untouched, plus the times we need."""

    topic: str
    data: bytes
    recv_ns: int  # reception time (system clock): the bag's log time
    stamp_ns: int | None = None  # header stamp, None for types without a header
    seq_gap: int = 0  # publication sequence numbers skipped since the previous message


# What the recorder records: (node parameter, default topic, message type, reader depth). A
# keep-last reader overwrites samples the executor has not taken yet, so the depths bridge an
# executor stall of 2 s of a 30 Hz camera and 10 s of 30 Hz actions/state
# (bench/logger_soak.py measures the result).
# A topic nobody publishes (the label and object poses on a real robot) stays empty in the bag.
TOPIC_PARAMETERS = (
    ("camera_topic", "/camera/image_raw", "sensor_msgs/msg/Image", 60),
    ("compressed_camera_topic", "/camera/image_raw/compressed", "sensor_msgs/msg/CompressedImage", 60),
    ("instruction_topic", "/instruction", "std_msgs/msg/String", 10),
    ("action_topic", "/qt/action", "qt_msgs/msg/ArmAction", 300),
    ("label_topic", "/qt/action_label", "qt_msgs/msg/ArmAction", 300),
    ("joint_states_topic", "/joint_states", "sensor_msgs/msg/JointState", 300),
    ("ee_pose_topic", "/ee_pose", "geometry_msgs/msg/PoseStamped", 300),
    ("object_poses_topic", "/sim/object_poses", "geometry_msgs/msg/PoseArray", 300),
    ("events_topic", "/episode/events", "qt_msgs/msg/EpisodeEvent", 50),
)


@dataclass
class EventInfo:
    """The fields of a qt_msgs/EpisodeEvent the recorder acts on."""

    event: int
    outcome: int
    episode_id: str
    instruction: str
    task_id: str
    seed: int
    stamp_ns: int

    @classmethod
    def from_msg(cls, msg: Any) -> EventInfo:
        """From a deserialised qt_msgs/EpisodeEvent (rclpy or rosbags object: the fields are read)."""
        stamp = msg.header.stamp
        return cls(int(msg.event), int(msg.outcome), str(msg.episode_id), str(msg.instruction), str(msg.task_id),
                   int(msg.seed), int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec))


@dataclass
class Reply:
    """Answer to a start/end request (service response or log line)."""

    accepted: bool
    episode_id: str = ""
    instruction: str = ""
    message: str = ""


@dataclass
class _Episode:
    episode_id: str
    instruction: str
    task_id: str
    seed: int
    start_stamp_ns: int
    writer: EpisodeBagWriter
    end_stamp_ns: int | None = None
    end_recv_ns: int = 0  # reception time of END: orders headerless messages
    outcome: str = ""
    end_reason: str = ""
    close_deadline: float = 0.0
    dropped: int = 0
    sequence_gaps: int = 0
    first_stamp_ns: dict[str, int] = field(default_factory=dict)  # per topic, to count frames missing at the start


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def _new_episode_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)


class DeliveryOrderLogTimes:
    """Log time of each message written: its reception time, but never earlier on a topic than
    the previous message's, so a bag reads back in the order messages were delivered.

    Why: a reliable writer's samples are delivered in order, yet a sample repaired after a loss
    carries a later reception time than the samples received after it, and bags are read back
    in log-time order: without this the converter sees that topic's stamps out of order (a CI
    run saw an action 0.2 s late under load) and refuses the episode. Applied in
    ``EpisodeRecorder._write``, the one place every message reaches a bag (held, preroll, events)."""

    def __init__(self) -> None:
        self._last: dict[str, int] = {}

    def __call__(self, topic: str, received_ns: int) -> int:
        log_ns = max(received_ns, self._last.get(topic, received_ns))
        self._last[topic] = log_ns
        return log_ns


class EpisodeRecorder:
    """Turns a stream of messages plus start/end requests into finalised episode bags."""

    def __init__(
        self,
        config: RecorderConfig,
        topics: list[TopicSpec],
        events_topic: str,
        instruction_topic: str,
        clock_ns: Callable[[], int],
        log: Logger,
    ):
        self.config = config
        self.topics = {spec.topic: spec for spec in topics}
        if events_topic not in self.topics:
            raise ValueError(f"topics: the events topic {events_topic!r} must be recorded")
        self.events_topic = events_topic
        self.instruction_topic = instruction_topic
        self.clock_ns = clock_ns
        self.log = log
        self.io = BagIO(int(config.queue_limit_mb * 1e6))
        self._log_time = DeliveryOrderLogTimes()
        self.ignore_events_before_ns: int | None = None
        self.last_error = ""
        self.finished: list[WriteResult] = []
        self._episode: _Episode | None = None
        self._closed: _Episode | None = None  # the last finalised episode, to report late messages
        self.late_messages = 0
        self._ring: deque[Incoming] = deque()
        self._evicted_stamp_ns = -1  # newest stamp the pre-roll ring let go of: a later START lost it
        self._held: deque[Incoming] = deque()  # messages of the recording episode not yet written
        self._latest_instruction: Incoming | None = None
        self._store = bf.episode_typestore()
        self._heard: set[str] = set()  # topics that delivered a message since start-up
        self._waiting: tuple[dict[str, Any], float] | None = None  # a START held until every required topic is heard
        # Messages stamped after a waiting START, kept whole (the pre-roll ring keeps only
        # preroll_s), so an episode that waited for a late topic still starts at its START.
        self._pending: list[Incoming] = []

    # ---- state ----------------------------------------------------------------------------

    @property
    def episode_id(self) -> str:
        return self._episode.episode_id if self._episode else ""

    @property
    def closing(self) -> bool:
        """An episode has ended and waits out its grace period before it is finalised."""
        return self._episode is not None and self._episode.end_stamp_ns is not None

    @property
    def recording(self) -> bool:
        return self._episode is not None and self._episode.end_stamp_ns is None

    @property
    def bag_path(self) -> Path | None:
        """Directory of the open (recording or closing) episode's bag."""
        return self._episode.writer.path if self._episode else None

    # ---- messages -------------------------------------------------------------------------

    @property
    def missing_topics(self) -> list[str]:
        """Required topics that have not delivered a message yet."""
        return [t for t in self.config.required_topics if t not in self._heard]

    def on_message(self, msg: Incoming) -> None:
        """A message on any recorded topic except the events topic."""
        self._heard.add(msg.topic)
        if self._waiting is not None and not self.missing_topics:
            request, _ = self._waiting
            self._waiting = None
            self.start_episode(**request)  # before remembering msg: it is handled below, once
        elif self._waiting is not None and msg.stamp_ns is not None and msg.stamp_ns >= self._waiting[0]["stamp_ns"]:
            self._pending.append(msg)
        self._remember(msg)
        episode = self._episode
        if episode is not None and self._in_window(episode, msg):
            if episode.end_stamp_ns is None:
                self._hold(episode, msg)
            else:
                self._write(episode, msg)
        elif self._closed is not None and msg.stamp_ns is not None and self._in_window(self._closed, msg):
            self.late_messages += 1
            self.log.warning(
                f"LATE_MESSAGE {msg.topic} stamped inside episode {self._closed.episode_id} arrived after it was "
                f"finalised (end_grace_s={self.config.end_grace_s:g}); not recorded - raise end_grace_s"
            )

    def _remember(self, msg: Incoming) -> None:
        if msg.topic == self.instruction_topic:
            self._latest_instruction = msg
        if msg.stamp_ns is None or self.config.preroll_s <= 0:
            return
        self._ring.append(msg)
        horizon = msg.recv_ns - int(self.config.preroll_s * 1e9)
        while self._ring and self._ring[0].recv_ns < horizon:
            self._evicted_stamp_ns = max(self._evicted_stamp_ns, self._ring.popleft().stamp_ns or 0)

    @staticmethod
    def _in_window(episode: _Episode, msg: Incoming) -> bool:
        if msg.stamp_ns is None:
            return episode.end_stamp_ns is None or msg.recv_ns <= episode.end_recv_ns
        if msg.stamp_ns < episode.start_stamp_ns:
            return False
        return episode.end_stamp_ns is None or msg.stamp_ns <= episode.end_stamp_ns

    def _hold(self, episode: _Episode, msg: Incoming) -> None:
        """Queue a message of the recording episode; write those held longer than end_grace_s."""
        self._held.append(msg)
        self._release(episode, msg.recv_ns - int(self.config.end_grace_s * 1e9))

    def _release(self, episode: _Episode, cutoff_ns: int | None) -> None:
        """Write held messages received before ``cutoff_ns`` (all of them if None) that are in the window."""
        while self._held and (cutoff_ns is None or self._held[0].recv_ns <= cutoff_ns):
            msg = self._held.popleft()
            if self._in_window(episode, msg):
                self._write(episode, msg)

    def _write(self, episode: _Episode, msg: Incoming, log_time_ns: int | None = None) -> None:
        episode.sequence_gaps += msg.seq_gap
        if msg.stamp_ns is not None:
            episode.first_stamp_ns.setdefault(msg.topic, msg.stamp_ns)
        log_ns = self._log_time(msg.topic, log_time_ns or msg.recv_ns)
        if not self.io.write(episode.writer, msg.topic, log_ns, msg.data):
            episode.dropped += 1
            if episode.dropped == 1 or episode.dropped % 100 == 0:
                self.log.error(
                    f"write queue over {self.config.queue_limit_mb:.0f} MB (disk too slow?): "
                    f"{episode.dropped} message(s) of episode {episode.episode_id} dropped"
                )

    # ---- events ---------------------------------------------------------------------------

    def on_event(self, event: EventInfo, msg: Incoming) -> Reply:
        """An EpisodeEvent from /episode/events (START opens a bag, END closes or discards it)."""
        if self.ignore_events_before_ns is not None and event.stamp_ns < self.ignore_events_before_ns:
            return Reply(False, event.episode_id, message="event older than the recorder (transient-local history)")
        if event.event == bf.EVENT_START:
            reply = self.start_episode(
                event.instruction, event.task_id, event.seed, event.episode_id, event.stamp_ns, msg, reason="event"
            )
        elif event.event == bf.EVENT_END:
            episode = self._episode
            if episode is not None and event.episode_id and event.episode_id != episode.episode_id:
                reply = Reply(
                    False, event.episode_id, message=f"END for {event.episode_id!r} but {episode.episode_id!r} is open"
                )
            else:
                outcome = bf.EVENT_OUTCOME_NAMES.get(event.outcome, "")
                reply = self.end_episode(outcome, event.stamp_ns, msg, reason="event")
        else:
            reply = Reply(False, event.episode_id, message=f"field 'event': unknown value {event.event}")
        if not reply.accepted:
            self.log.warning(f"episode event ignored: {reply.message}")
        return reply

    # ---- start / end ----------------------------------------------------------------------

    def start_episode(
        self,
        instruction: str,
        task_id: str = "",
        seed: int = -1,
        episode_id: str = "",
        stamp_ns: int | None = None,
        event_msg: Incoming | None = None,
        reason: str = "service",
    ) -> Reply:
        """Open a new episode bag; refused (never replaced) while another episode records.

        Before every required topic has delivered a message the START waits (the recorder's
        subscriptions may match after the publishers started); it opens the bag, with its own
        stamp, once they have, so what the pre-roll ring kept since START is recorded.
        """
        if self.missing_topics:
            return self._wait(dict(instruction=instruction, task_id=task_id, seed=seed,
                                   episode_id=episode_id or _new_episode_id(),
                                   stamp_ns=self.clock_ns() if stamp_ns is None else stamp_ns,
                                   event_msg=event_msg, reason=reason))
        if self._episode is not None:
            if self._episode.end_stamp_ns is None:
                return Reply(False, message=f"episode {self._episode.episode_id} is running; end it first")
            self._finish(self._episode)
        instruction = instruction or self._latest_instruction_text()
        if not instruction:
            return Reply(
                False,
                message="instruction: expected a non-empty string (or publish it on "
                f"{self.instruction_topic} before starting)",
            )
        start = self.clock_ns() if stamp_ns is None else stamp_ns
        episode_id = episode_id or _new_episode_id()
        try:
            path = self._bag_path(episode_id)
            writer = EpisodeBagWriter(
                path,
                list(self.topics.values()),
                episode_id,
                split_size_bytes=int(self.config.split_size_mb * 1e6),
                split_duration_ns=int(self.config.split_duration_s * 1e9),
                fsync=self.config.fsync,
            )
            writer.open()
        except (OSError, BagWriteError) as exc:
            self.last_error = f"cannot start episode {episode_id}: {exc}"
            self.log.error(f"RECORDING_REFUSED id={episode_id} error={exc}")
            return Reply(False, episode_id, instruction, self.last_error)
        self.io.adopt(writer)
        episode = _Episode(episode_id, instruction, task_id, seed, start, writer)
        self._episode = episode
        now = time.time_ns()
        event = event_msg or Incoming(
            self.events_topic, self._event_bytes(bf.EVENT_START, 0, episode, start), now, start
        )
        self._write(episode, event)
        if self._latest_instruction is not None:
            self._write(episode, self._latest_instruction, log_time_ns=max(now, event.recv_ns))
        self._held.clear()
        pending, self._pending = {id(m): m for m in self._pending}, []
        kept = [*pending.values(), *(m for m in self._ring if id(m) not in pending)]
        self._held.extend(sorted((m for m in kept if m.stamp_ns is not None and m.stamp_ns >= start),
                                 key=lambda m: m.recv_ns))
        self.last_error = ""
        self.log.info(f"EPISODE_STARTED id={episode_id} reason={reason} path={path} instruction={instruction!r}")
        if self._evicted_stamp_ns >= start and not pending:
            # The START reached us more than preroll_s after messages stamped after it (a sender
            # this recorder discovered late, a stalled machine): the bag lacks the episode's start.
            self.log.warning(
                f"START_LATE id={episode_id}: messages stamped after its START left the pre-roll "
                f"(preroll_s={self.config.preroll_s:g}) before the START arrived; the bag lacks the episode's first "
                "messages (sequence_gaps counts them) - raise preroll_s, or make the sender wait for the recorder"
            )
        return Reply(True, episode_id, instruction, f"recording into {path}")

    def _wait(self, request: dict[str, Any]) -> Reply:
        if self._waiting is not None:
            waiting = self._waiting[0]["episode_id"]
            return Reply(False, message=f"episode {waiting} is running (waits for {self.missing_topics}); end it first")
        self._waiting = (request, time.monotonic() + self.config.ready_timeout_s)
        self.log.warning(f"EPISODE_WAITING id={request['episode_id']} missing={self.missing_topics} (no message yet; "
                         f"recording starts once each delivered one, within {self.config.ready_timeout_s:g} s)")
        return Reply(True, request["episode_id"], request["instruction"], f"waiting for {self.missing_topics}")

    def _not_recorded(self, why: str) -> Reply:
        """The waiting START is dropped: an episode the recorder did not fully see is never written."""
        assert self._waiting is not None
        episode_id = self._waiting[0]["episode_id"]
        self._waiting = None
        self._pending = []
        self.last_error = f"episode {episode_id} not recorded: {why}; missing topics {self.missing_topics}"
        self.log.error(f"EPISODE_NOT_RECORDED id={episode_id} reason={why} missing={self.missing_topics}")
        return Reply(False, episode_id, message=self.last_error)

    def end_episode(
        self, outcome: str, stamp_ns: int | None = None, event_msg: Incoming | None = None, reason: str = "service"
    ) -> Reply:
        """End the open episode: success/failure finalise it (after the grace period), discard deletes it."""
        if self._waiting is not None:
            return self._not_recorded("ended_before_topics_ready")
        episode = self._episode
        if episode is None or episode.end_stamp_ns is not None:
            return Reply(False, message="no episode is running")
        if outcome not in (bf.OUTCOME_SUCCESS, bf.OUTCOME_FAILURE, "discard"):
            return Reply(
                False, episode.episode_id, message=f"outcome: expected success, failure or discard, got {outcome!r}"
            )
        if outcome == "discard":
            self._held.clear()
            self.io.discard(episode.writer)
            self._episode = None
            self.log.info(f"EPISODE_DISCARDED id={episode.episode_id}")
            return Reply(True, episode.episode_id, episode.instruction, "discarded (bag deleted)")
        end = self.clock_ns() if stamp_ns is None else stamp_ns
        code = 1 if outcome == bf.OUTCOME_SUCCESS else 2
        event = event_msg or Incoming(
            self.events_topic, self._event_bytes(bf.EVENT_END, code, episode, end), time.time_ns(), end
        )
        episode.end_stamp_ns = end
        episode.end_recv_ns = event.recv_ns
        self._release(episode, None)  # held messages stamped after END wait in the ring for the next START
        self._write(episode, event)
        episode.outcome = outcome
        episode.end_reason = reason
        episode.close_deadline = time.monotonic() + self.config.end_grace_s
        return Reply(True, episode.episode_id, episode.instruction, f"{outcome}; finalising {episode.writer.path}")

    def tick(self) -> None:
        """Periodic work: finalise episodes whose grace period ran out, report the writer's results."""
        if self._waiting is not None and time.monotonic() > self._waiting[1]:
            self._not_recorded("topics_not_ready")
        episode = self._episode
        if episode is not None and episode.end_stamp_ns is None:
            self._release(episode, time.time_ns() - int(self.config.end_grace_s * 1e9))
        elif episode is not None and time.monotonic() >= episode.close_deadline:
            self._finish(episode)
        self._collect_results()

    def shutdown(self) -> list[WriteResult]:
        """SIGINT/SIGTERM: finalise whatever is open (unlabelled if it had not ended), flush, stop."""
        if self._waiting is not None:
            self._not_recorded("shutdown")
        episode = self._episode
        if episode is not None:
            if episode.end_stamp_ns is None:
                episode.outcome = bf.OUTCOME_INTERRUPTED
                episode.end_reason = "shutdown"
                episode.end_stamp_ns = self.clock_ns()
                episode.end_recv_ns = time.time_ns()
            self._finish(episode)
        self.io.close()
        self._collect_results()
        return self.finished

    # ---- helpers --------------------------------------------------------------------------

    def _start_gaps(self, episode: _Episode) -> int:
        """Control periods of each required topic missing between START and its first message."""
        period_ns = 1e9 / self.config.control_rate_hz
        gaps = 0
        for topic in self.config.required_topics:
            first = episode.first_stamp_ns.get(topic)
            if first is not None and self.topics[topic].msgtype in bf.STAMPED_TYPES:
                gaps += max(0, int((first - episode.start_stamp_ns) / period_ns - 0.5))
        return gaps

    def _finish(self, episode: _Episode) -> None:
        self._release(episode, None)
        episode.sequence_gaps += self._start_gaps(episode)
        self._episode = None
        self._closed = episode
        custom = {
            bf.KEY_FORMAT: bf.BAG_FORMAT,
            bf.KEY_EPISODE_ID: episode.episode_id,
            bf.KEY_INSTRUCTION: episode.instruction,
            bf.KEY_TASK_ID: episode.task_id,
            bf.KEY_SEED: str(episode.seed),
            bf.KEY_OUTCOME: episode.outcome,
            bf.KEY_CONTROL_RATE: f"{self.config.control_rate_hz:g}",
            bf.KEY_ROBOT: self.config.robot,
            bf.KEY_OPERATOR: self.config.operator,
            bf.KEY_END_REASON: episode.end_reason,
            bf.KEY_DROPPED: str(episode.dropped),
            bf.KEY_SEQUENCE_GAPS: str(episode.sequence_gaps),
            "start_stamp_ns": str(episode.start_stamp_ns),
            "end_stamp_ns": str(episode.end_stamp_ns),
        }
        self.io.finalize(episode.writer, custom)

    def _collect_results(self) -> None:
        for result in self.io.results():
            self.finished.append(result)
            if result.discarded:
                continue
            if result.ok:
                self.log.info(
                    f"EPISODE_WRITTEN id={result.episode_id} outcome={result.outcome} messages={result.messages} "
                    f"bytes={result.bytes_written} parts={result.parts} path={result.path}"
                )
                continue
            self.last_error = result.error
            if self._episode is not None and self._episode.episode_id == result.episode_id:
                self._episode = None
            self.log.error(
                f"RECORDING_FAILED id={result.episode_id} error={result.error}. Recording stopped; the partial bag "
                f"{result.path} is marked unfinished (qt bags check/repair/quarantine); earlier episodes are intact."
            )

    def _bag_path(self, episode_id: str) -> Path:
        root = Path(self.config.output_dir)
        root.mkdir(parents=True, exist_ok=True)
        free_mb = shutil.disk_usage(root).free / 1e6
        if free_mb < self.config.min_free_mb:
            raise OSError(28, f"only {free_mb:.0f} MB free in {root} (min_free_mb={self.config.min_free_mb:g})")
        base = _UNSAFE.sub("_", episode_id).strip("._") or "episode"
        path, n = root / base, 1
        while path.exists():
            path, n = root / f"{base}-{n}", n + 1
        return path

    def _latest_instruction_text(self) -> str:
        if self._latest_instruction is None:
            return ""
        msg = self._store.deserialize_cdr(self._latest_instruction.data, "std_msgs/msg/String")
        return str(msg.data)

    def _event_bytes(self, kind: int, outcome: int, episode: _Episode, stamp_ns: int) -> bytes:
        """Serialise the EpisodeEvent the recorder writes itself when a service drives it."""
        types = self._store.types
        stamp = types["builtin_interfaces/msg/Time"](sec=stamp_ns // 1_000_000_000, nanosec=stamp_ns % 1_000_000_000)
        event = types["qt_msgs/msg/EpisodeEvent"](
            header=types["std_msgs/msg/Header"](stamp=stamp, frame_id=""),
            event=kind,
            outcome=outcome,
            episode_id=episode.episode_id,
            instruction=episode.instruction,
            task_id=episode.task_id,
            seed=episode.seed,
        )
        return bytes(self._store.serialize_cdr(event, "qt_msgs/msg/EpisodeEvent"))
