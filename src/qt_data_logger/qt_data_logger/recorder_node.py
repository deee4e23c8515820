"""The recorder node: camera, instruction, action, robot state and episode events -> episode bags.

    ros2 run qt_data_logger recorder --ros-args --params-file config/recorder.yaml
    python -m qt_data_logger.recorder_node --ros-args -p output_dir:=bags

Subscriptions are raw (serialised bytes go straight into the bag, never re-serialised) and
are created at start-up. QoS (``reliability: auto``, the default) adapts to the publishers,
like ``ros2 bag record``: it matches the publishers already present (reliable only if every
one is reliable, transient-local only if every one is), else the contract's QoS (reliable;
transient-local for /instruction and /episode/events); if a publisher appears later that
cannot match (a best-effort camera driver), the topic is resubscribed best effort + volatile,
which matches anything. Episodes start/end from /episode/events (START, END with
success/failure/discard) or the /recorder/start_episode and /recorder/end_episode services.
SIGINT/SIGTERM finalise the open bag before exiting.
"""

from __future__ import annotations

import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.serialization import deserialize_message
from rclpy.signals import SignalHandlerOptions

from qt_common import topic_map
from qt_data_logger import bag_format as bf
from qt_data_logger.recorder_core import TOPIC_PARAMETERS, EpisodeRecorder, EventInfo, Incoming, RecorderConfig

RELIABILITY_CHOICES = ("auto", "reliable", "best_effort")
# Topic parameters whose topics must each deliver a message before an episode is recorded: a bag
# without frames or without actions is no episode (the 0-image bag of a start-up race).
REQUIRED_DEFAULT = ("camera_topic", "action_topic")
# Topics whose contract publishers are transient local (late joiners get the last message).
LATCHED_PARAMETERS = ("instruction_topic", "events_topic")
# A second camera (wrist camera): recorded when named (directly or by the topic map), off by default.
SECOND_CAMERA_PARAMETERS = (
    ("camera2_topic", "", "sensor_msgs/msg/Image", 60),
    ("compressed_camera2_topic", "", "sensor_msgs/msg/CompressedImage", 60),
)


def _import_type(msgtype: str) -> type:
    package, kind, name = msgtype.split("/")
    module = __import__(f"{package}.{kind}", fromlist=[name])
    return getattr(module, name)


@dataclass
class _Topic:
    parameter: str
    name: str
    msgtype: str
    depth: int
    stamped: bool
    subscription: Any = None
    incompatible: bool = False  # a publisher that cannot match the subscription was seen
    universal: bool = False  # resubscribed with the QoS every publisher matches
    publishers: int = 0  # matched publishers at the last check


class _Callback:
    """Raw subscription callback bound to one topic (two arguments: rclpy passes MessageInfo)."""

    def __init__(self, node: RecorderNode, topic: _Topic):
        self.node, self.topic = node, topic

    def __call__(self, data: bytes, info: dict[str, Any]) -> None:
        self.node.on_raw(self.topic, data, info)


class RecorderNode(Node):
    def __init__(self) -> None:
        super().__init__("recorder")
        self.declare_parameter("output_dir", "bags")
        for parameter, default, _, _ in TOPIC_PARAMETERS:
            self.declare_parameter(parameter, default)
        self.declare_parameter("reliability", "auto")
        self.declare_parameter("control_rate_hz", 10.0)
        self.declare_parameter("robot", "qt_sim_arm")
        self.declare_parameter("operator", "")
        self.declare_parameter("split_size_mb", 2048.0)
        self.declare_parameter("split_duration_s", 600.0)
        self.declare_parameter("preroll_s", 1.0)
        self.declare_parameter("end_grace_s", 0.5)
        self.declare_parameter("queue_limit_mb", 512.0)
        self.declare_parameter("min_free_mb", 100.0)
        self.declare_parameter("fsync", True)
        self.declare_parameter("ignore_events_before_start", True)
        self.declare_parameter("required_topics", list(REQUIRED_DEFAULT))
        self.declare_parameter("ready_timeout_s", 10.0)
        for parameter, default, _, _ in SECOND_CAMERA_PARAMETERS:
            self.declare_parameter(parameter, default)
        self.declare_parameter("topic_map_file", "")  # qt_common.topic_map: its names replace the topic parameters
        topic_map.apply_to_node(self, topic_map.RECORDER_PARAMETERS)
        p = self._param
        reliability = str(p("reliability"))
        if reliability not in RELIABILITY_CHOICES:
            raise ValueError(f"parameter 'reliability': expected one of {RELIABILITY_CHOICES}, got {reliability!r}")
        self.reliability = reliability
        self.topics: list[_Topic] = []
        for parameter, _, msgtype, depth in (*TOPIC_PARAMETERS, *SECOND_CAMERA_PARAMETERS):
            name = str(p(parameter))
            if name:
                self.topics.append(
                    _Topic(parameter, self.resolve_topic_name(name), msgtype, depth, msgtype in bf.STAMPED_TYPES)
                )
        by_parameter = {t.parameter: t for t in self.topics}
        unknown = [r for r in p("required_topics") if r and r not in by_parameter]
        if unknown:
            raise ValueError(f"parameter 'required_topics': {unknown} are not recorded topic parameters "
                             f"(recorded: {sorted(by_parameter)})")
        config = RecorderConfig(
            # Absolute from here on, so the log and every bag path say where bags really go.
            output_dir=Path(str(p("output_dir"))).expanduser().resolve(),
            control_rate_hz=float(p("control_rate_hz")),
            robot=str(p("robot")),
            operator=str(p("operator")),
            split_size_mb=float(p("split_size_mb")),
            split_duration_s=float(p("split_duration_s")),
            preroll_s=float(p("preroll_s")),
            end_grace_s=float(p("end_grace_s")),
            queue_limit_mb=float(p("queue_limit_mb")),
            min_free_mb=float(p("min_free_mb")),
            fsync=bool(p("fsync")),
            required_topics=tuple(by_parameter[r].name for r in p("required_topics") if r),
            ready_timeout_s=float(p("ready_timeout_s")),
        )
        if "events_topic" not in by_parameter:
            raise ValueError("parameter 'events_topic': must name a topic (episodes are labelled by it)")
        store = bf.episode_typestore()
        specs = [bf.TopicSpec.make(t.name, t.msgtype, store) for t in self.topics]
        self.core = EpisodeRecorder(
            config,
            specs,
            events_topic=by_parameter["events_topic"].name,
            instruction_topic=by_parameter.get("instruction_topic", _Topic("", "", "", 0, False)).name,
            clock_ns=lambda: self.get_clock().now().nanoseconds,
            log=self.get_logger(),
        )
        if bool(p("ignore_events_before_start")):
            self.core.ignore_events_before_ns = self.get_clock().now().nanoseconds
        self._types = {t.msgtype: _import_type(t.msgtype) for t in self.topics}
        self._last_seq: dict[tuple[str, bytes], int] = {}

        from qt_msgs.srv import EndEpisode, StartEpisode

        self.create_service(StartEpisode, "/recorder/start_episode", self._on_start)
        self.create_service(EndEpisode, "/recorder/end_episode", self._on_end)
        self.create_timer(0.05, self.core.tick)
        for topic in self.topics:
            self._subscribe(topic, self._auto_qos(topic) if self.reliability == "auto" else self._fixed_qos(topic))
        self.create_timer(0.2, self._watch)
        self.get_logger().info(
            f"RECORDER_READY output_dir={config.output_dir} reliability={self.reliability} "
            f"topics={[t.name for t in self.topics]} required={list(config.required_topics)}"
        )

    def _param(self, name: str) -> Any:
        return self.get_parameter(name).value

    # ---- subscriptions --------------------------------------------------------------------

    def _fixed_qos(self, topic: _Topic) -> QoSProfile:
        reliability = ReliabilityPolicy.RELIABLE if self.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=topic.depth,
            reliability=reliability,
            durability=DurabilityPolicy.VOLATILE,
        )

    def _auto_qos(self, topic: _Topic) -> QoSProfile:
        """QoS every publisher already present can match; with none yet, the contract's QoS.

        Subscribing at start-up (instead of waiting for publishers) means the first messages
        of a teleop that starts an episode the moment it appears are not missed.
        """
        publishers = self.get_publishers_info_by_topic(topic.name)
        if publishers:
            reliable = all(i.qos_profile.reliability == ReliabilityPolicy.RELIABLE for i in publishers)
            latched = all(i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL for i in publishers)
        else:
            reliable, latched = True, topic.parameter in LATCHED_PARAMETERS
        return QoSProfile(
            history=HistoryPolicy.KEEP_LAST,
            depth=topic.depth,
            reliability=ReliabilityPolicy.RELIABLE if reliable else ReliabilityPolicy.BEST_EFFORT,
            durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
        )

    def _watch(self) -> None:
        """Log publishers (dis)connecting per topic; heal QoS mismatches in auto mode.

        A publisher the subscription cannot match (e.g. a best-effort camera driver) makes the
        topic resubscribe with best effort + volatile, which every publisher matches.
        """
        for topic in self.topics:
            count = topic.subscription.get_publisher_count()
            if count != topic.publishers:
                topic.publishers = count
                self.get_logger().info(f"PUBLISHERS {topic.name} matched={count}")
            if topic.incompatible and not topic.universal:
                self.destroy_subscription(topic.subscription)
                topic.universal = True
                self._subscribe(
                    topic,
                    QoSProfile(
                        history=HistoryPolicy.KEEP_LAST,
                        depth=topic.depth,
                        reliability=ReliabilityPolicy.BEST_EFFORT,
                        durability=DurabilityPolicy.VOLATILE,
                    ),
                )

    def _subscribe(self, topic: _Topic, qos: QoSProfile) -> None:
        from rclpy.event_handler import SubscriptionEventCallbacks

        def incompatible(event: Any) -> None:
            if self.reliability == "auto" and not topic.universal:
                topic.incompatible = True
                hint = "resubscribing with best effort + volatile so that every publisher matches"
            else:
                hint = "its messages are NOT recorded; run the recorder with reliability:=auto"
            self.get_logger().warning(
                f"a publisher on {topic.name} offers QoS incompatible with the recorder's subscription "
                f"(policy {event.last_policy_kind}); {hint}"
            )

        topic.subscription = self.create_subscription(
            self._types[topic.msgtype],
            topic.name,
            _Callback(self, topic),
            qos,
            raw=True,
            event_callbacks=SubscriptionEventCallbacks(incompatible_qos=incompatible),
        )
        self.get_logger().info(
            f"SUBSCRIBED {topic.name} ({topic.msgtype}) reliability={qos.reliability.name.lower()} "
            f"durability={qos.durability.name.lower()} depth={qos.depth}"
        )

    # ---- callbacks ------------------------------------------------------------------------

    def on_raw(self, topic: _Topic, data: bytes, info: dict[str, Any]) -> None:
        recv_ns = int(info.get("received_timestamp") or time.time_ns())
        gap = self._sequence_gap(topic.name, info)
        try:
            stamp = bf.header_stamp_ns(data) if topic.stamped else None
        except ValueError as exc:
            self.get_logger().warning(f"{topic.name}: {exc}; message ignored")
            return
        incoming = Incoming(topic.name, data, recv_ns, stamp, gap)
        if topic.parameter == "events_topic":
            self._on_event(incoming)
        else:
            self.core.on_message(incoming)

    def _sequence_gap(self, topic: str, info: dict[str, Any]) -> int:
        """Samples a publisher sent that this subscription never saw (DDS-level loss)."""
        seq = info.get("publication_sequence_number")
        gid = (info.get("publisher_gid") or {}).get("data")
        if not seq or gid is None:
            return 0
        key = (topic, bytes(gid))
        previous = self._last_seq.get(key)
        self._last_seq[key] = seq
        if previous is None or seq <= previous:
            return 0
        return seq - previous - 1

    def _on_event(self, incoming: Incoming) -> None:
        try:
            msg = deserialize_message(incoming.data, self._types["qt_msgs/msg/EpisodeEvent"])
        except Exception as exc:
            self.get_logger().error(f"{incoming.topic}: cannot deserialise EpisodeEvent ({exc}); ignored")
            return
        self.core.on_event(EventInfo.from_msg(msg), incoming)

    def _on_start(self, request: Any, response: Any) -> Any:
        reply = self.core.start_episode(
            str(request.instruction), str(request.task_id), int(request.seed), reason="service"
        )
        response.accepted, response.episode_id = reply.accepted, reply.episode_id
        response.instruction, response.message = reply.instruction, reply.message
        return response

    def _on_end(self, request: Any, response: Any) -> Any:
        outcome = bf.EVENT_OUTCOME_NAMES.get(int(request.outcome), "")
        reply = self.core.end_episode(outcome, reason="service")
        response.accepted, response.episode_id, response.message = reply.accepted, reply.episode_id, reply.message
        return response


def main(argv: list[str] | None = None) -> int:
    """Run until SIGINT/SIGTERM, then finalise the open bag and exit 0."""
    # Our own handlers: rclpy's would shut the context down before the bag is finalised.
    rclpy.init(args=sys.argv if argv is None else argv, signal_handler_options=SignalHandlerOptions.NO)
    stop: list[int] = []

    def request_stop(signum: int, _frame: object) -> None:
        stop.append(signum)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    # A file-size limit (ulimit -f) must surface as an error, not kill the process.
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    try:
        node = RecorderNode()
    except (ValueError, FileNotFoundError) as exc:
        print(f"recorder: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        return 2
    executor = SingleThreadedExecutor()
    executor.add_node(node)
    try:
        while not stop:
            executor.spin_once(timeout_sec=0.1)
        # An episode that already ended keeps its grace period for late messages.
        deadline = time.monotonic() + node.core.config.end_grace_s + 1.0
        while node.core.closing and time.monotonic() < deadline:
            executor.spin_once(timeout_sec=0.05)
    finally:
        results = node.core.shutdown()
        written = sum(1 for r in results if r.ok and not r.discarded)
        node.get_logger().info(f"RECORDER_STOPPED episodes_written={written} signal={stop[0] if stop else 0}")
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
