"""Publishes camera frames, actions and episode events with known content, for checking a recorder.

    python -m qt_data_logger.synthetic_source camera --rate 30 --size 640x480 --seconds 10
    python -m qt_data_logger.synthetic_source actions --rate 30 --seconds 10
    python -m qt_data_logger.synthetic_source episodes --episodes 2 --steps 20 --rate 10

Used by bench/logger_soak.py and the logger tests, and useful on a new machine to check
that recording works before a robot is attached. Every message is reconstructible from its
index: camera frames carry their index in the first 8 bytes (``camera``) or are
``synthetic_frame(index)`` (``episodes``), actions are drawn from a seeded generator. Each
publisher waits until the recorder has matched it from both sides (a probe stamped 0, which no
episode records, acknowledged; never a fixed sleep), and before exiting waits until every
reliable sample is acknowledged. ``episodes`` prints a ``MANIFEST`` JSON
line describing everything it published, so a test can compare a dataset with it.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

import numpy as np
from qt_common.action_spec import ActionSpec

MATCH_TIMEOUT_S = 30.0
PROBE_STAMP_NS = 0  # the matching probe's stamp: before every episode's START, so never recorded


def synthetic_frame(index: int, width: int, height: int) -> np.ndarray:
    """A deterministic RGB frame that differs for every index (gradients shifted by index)."""
    x = np.arange(width, dtype=np.int64)[None, :]
    y = np.arange(height, dtype=np.int64)[:, None]
    frame = np.empty((height, width, 3), dtype=np.uint8)
    frame[..., 0] = (x * 3 + index * 7) % 256
    frame[..., 1] = (y * 5 + index * 11) % 256
    frame[..., 2] = ((x // 4 + y // 4) * 9 + index * 13) % 256
    return frame


def synthetic_actions(count: int, seed: int, spec: ActionSpec | None = None) -> np.ndarray:
    """``count`` actions in physical units, uniformly inside the spec's range, float32."""
    spec = spec or ActionSpec.default()
    rng = np.random.default_rng(seed)
    values = rng.uniform(spec.low, spec.high, size=(count, spec.num_dims))
    return values.astype(np.float32)


def encode_frame(frame: np.ndarray, encoding: str) -> tuple[bytes, int]:
    """RGB frame -> (bytes, step) in the given ROS encoding."""
    if encoding == "rgb8":
        data = frame
    elif encoding == "bgr8":
        data = frame[..., ::-1]
    elif encoding == "rgba8":
        data = np.concatenate([frame, np.full((*frame.shape[:2], 1), 255, np.uint8)], axis=2)
    elif encoding == "mono8":
        data = frame[..., 0]
    else:
        raise ValueError(f"encoding: expected rgb8, bgr8, rgba8 or mono8, got {encoding!r}")
    data = np.ascontiguousarray(data)
    return data.tobytes(), data.shape[1] * (data.shape[2] if data.ndim == 3 else 1)


class _Source:
    def __init__(self, args: argparse.Namespace):
        import rclpy
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy

        self.rclpy = rclpy
        self.args = args
        self.node = rclpy.create_node("qt_synthetic_source")
        reliability = ReliabilityPolicy.BEST_EFFORT if args.best_effort else ReliabilityPolicy.RELIABLE
        self.sensor_qos = QoSProfile(depth=args.depth, reliability=reliability)
        self.reliable = QoSProfile(depth=max(10, args.depth), reliability=ReliabilityPolicy.RELIABLE)
        self.latched = QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.publishers: list[Any] = []

    def publisher(self, msg_type: type, topic: str, qos: Any) -> Any:
        pub = self.node.create_publisher(msg_type, self.args.prefix + topic, qos)
        self.publishers.append(pub)
        return pub

    def now_ns(self) -> int:
        return self.node.get_clock().now().nanoseconds

    def stamp(self, header: Any, ns: int) -> None:
        header.stamp.sec, header.stamp.nanosec = ns // 1_000_000_000, ns % 1_000_000_000

    def wait_matched(self, probes: dict[Any, Any]) -> bool:
        """Until the recorder receives what these publishers send from now on.

        A publisher's subscription count is its own side of the match only: the recorder's
        reader may discover this writer tens of milliseconds later, and what was published in
        between is lost (a CI run lost camera frames 0-3 of a soak and the first frames of an
        episode that way, although every sample was reported acknowledged). So each volatile
        publisher in ``probes`` then sends its probe message, stamped 0 so that no episode
        window holds it (never recorded), and waits until every reader acknowledged it: a
        reader acknowledges only a writer it has matched. A best-effort reader acknowledges
        nothing; for it the probe proves nothing.
        """
        deadline = time.monotonic() + MATCH_TIMEOUT_S
        while any(p.get_subscription_count() < self.args.subscribers for p in self.publishers):
            if time.monotonic() > deadline:
                missing = [p.topic_name for p in self.publishers if p.get_subscription_count() < self.args.subscribers]
                print(f"NO_SUBSCRIBER {missing}", flush=True)
                return False
            self.rclpy.spin_once(self.node, timeout_sec=0.05)
        for pub, probe in probes.items():
            pub.publish(probe)
        if not self.wait_acked(list(probes), timeout_s=MATCH_TIMEOUT_S):
            print(f"PROBE_NOT_ACKED {[p.topic_name for p in probes]}", flush=True)
            return False
        print("MATCHED", flush=True)
        return True

    def wait_acked(self, publishers: list[Any] | None = None, timeout_s: float = 20.0) -> bool:
        """Until every reliable sample of these publishers (default: all) is acknowledged."""
        from rclpy.duration import Duration

        ok = True
        for pub in self.publishers if publishers is None else publishers:
            ok &= bool(pub.wait_for_all_acked(Duration(seconds=timeout_s)))
        return ok


def _image(source: _Source, frame_bytes: bytes, step: int, width: int, height: int, encoding: str, ns: int) -> Any:
    from sensor_msgs.msg import Image

    msg = Image(width=width, height=height, encoding=encoding, step=step)
    msg.header.frame_id = "camera_optical_frame"
    source.stamp(msg.header, ns)
    msg.data = frame_bytes
    return msg


def _action(source: _Source, spec: ActionSpec, values: np.ndarray, ns: int) -> Any:
    from qt_msgs.msg import ArmAction

    msg = ArmAction(dimension_names=spec.names, num_bins=spec.num_bins, source=ArmAction.SOURCE_EXPERT)
    msg.header.frame_id = "base_link"
    source.stamp(msg.header, ns)
    msg.values = [float(v) for v in values]
    msg.bins = [int(b) for b in spec.values_to_bins(values.astype(np.float64))]
    return msg


class Pacer:
    """Fixed-rate schedule that never bursts to catch up after a stall (a camera cannot either).

    A publisher that fell behind and then sent everything at once would overrun its own
    keep-last history and lose samples before any subscriber saw them; the soak would then
    blame the recorder. Stalls are counted and reported instead.
    """

    def __init__(self, rate_hz: float):
        self.period = 1.0 / rate_hz
        self.next = time.monotonic()
        self.max_late_s = 0.0
        self.stalls = 0

    def wait(self) -> None:
        self.next += self.period
        late = time.monotonic() - self.next
        if late <= 0:
            time.sleep(-late)
            return
        self.max_late_s = max(self.max_late_s, late)
        if late > 2 * self.period:
            self.stalls += 1
            self.next = time.monotonic()


def _paced(rate_hz: float, count: int | None, seconds: float | None, pacer: Pacer | None = None):
    """Yield step indices at ``rate_hz`` until ``count`` messages or ``seconds * rate_hz`` of them."""
    pacer = pacer or Pacer(rate_hz)
    i = 0
    while (count is None or i < count) and (seconds is None or i < round(seconds * rate_hz)):
        yield i
        i += 1
        pacer.wait()


def run_camera(source: _Source) -> int:
    """Frames of a fixed pattern with the frame index in the first 8 bytes."""
    from sensor_msgs.msg import Image

    args = source.args
    width, height = args.size
    pub = source.publisher(Image, "/camera/image_raw", source.sensor_qos)
    base, step = encode_frame(synthetic_frame(0, width, height), args.encoding)
    buffer = bytearray(base)

    def frame(i: int, ns: int) -> object:
        buffer[0:8] = i.to_bytes(8, "little")
        return _image(source, bytes(buffer), step, width, height, args.encoding, ns)

    if not source.wait_matched({pub: frame(0, PROBE_STAMP_NS)}):
        return 1
    return _publish_paced(source, pub, frame)


def _publish_paced(source: _Source, pub: object, make_message) -> int:
    """Publish ``make_message(i, stamp_ns)`` at the source's rate, then report what was sent."""
    args = source.args
    count, first, last = 0, 0, 0
    pacer = Pacer(args.rate)
    for i in _paced(args.rate, args.count, args.seconds, pacer):
        ns = source.now_ns()
        first = first or ns
        last = ns
        pub.publish(make_message(i, ns))
        count += 1
    acked = source.wait_acked()
    print(
        f"PUBLISHED topic={pub.topic_name} count={count} first_ns={first} last_ns={last} acked={acked} "
        f"max_late_s={pacer.max_late_s:.3f} stalls={pacer.stalls}",
        flush=True,
    )
    return 0


def run_actions(source: _Source) -> int:
    from qt_msgs.msg import ArmAction

    args = source.args
    spec = ActionSpec.default()
    pub = source.publisher(ArmAction, "/qt/action", source.reliable)
    total = args.count or round(args.seconds * args.rate)
    values = synthetic_actions(total, args.seed, spec)
    if not source.wait_matched({pub: _action(source, spec, values[0], PROBE_STAMP_NS)}):
        return 1
    return _publish_paced(source, pub, lambda i, ns: _action(source, spec, values[i], ns))


def run_episodes(source: _Source) -> int:
    """Whole labelled episodes: instruction, START, per step frame/action/state, END."""
    from geometry_msgs.msg import PoseStamped
    from sensor_msgs.msg import Image, JointState
    from std_msgs.msg import String

    from qt_msgs.msg import ArmAction, EpisodeEvent

    args = source.args
    spec = ActionSpec.default()
    width, height = args.size
    camera = source.publisher(Image, "/camera/image_raw", source.sensor_qos)
    action = source.publisher(ArmAction, "/qt/action", source.reliable)
    joints = source.publisher(JointState, "/joint_states", source.reliable)
    pose = source.publisher(PoseStamped, "/ee_pose", source.reliable)
    events = source.publisher(EpisodeEvent, "/episode/events", source.latched)
    instruction_pub = source.publisher(String, "/instruction", source.latched)
    probe_frame, probe_step = encode_frame(synthetic_frame(0, width, height), args.encoding)
    probes = {  # the latched events and instruction reach a late reader anyway
        camera: _image(source, probe_frame, probe_step, width, height, args.encoding, PROBE_STAMP_NS),
        action: _action(source, spec, np.zeros(spec.num_dims), PROBE_STAMP_NS),
        joints: JointState(name=["joint1", "joint2"], position=[0.0, 0.0]),
        pose: PoseStamped(),
    }
    if not source.wait_matched(probes):
        return 1
    outcomes = args.outcomes.split(",")
    manifest: dict[str, Any] = {"size": [width, height], "encoding": args.encoding, "episodes": []}
    frame_index = 0
    for k in range(args.episodes):
        outcome = outcomes[k % len(outcomes)]
        instruction = args.instruction if args.episodes == 1 else f"{args.instruction} #{k % 2}"
        episode_id = f"{args.id_prefix}{k:03d}"
        instruction_pub.publish(String(data=instruction))
        start = EpisodeEvent(
            event=EpisodeEvent.EVENT_START, episode_id=episode_id, instruction=instruction, task_id="synthetic", seed=k
        )
        source.stamp(start.header, source.now_ns())
        if not args.no_events:
            events.publish(start)
        values = synthetic_actions(args.steps, args.seed + k, spec)
        record: dict[str, Any] = {
            "episode_id": episode_id,
            "instruction": instruction,
            "outcome": outcome,
            "frame_index": [],
            "frame_stamps": [],
            "action_stamps": [],
            "action_values": values.tolist(),
            "ee_pose": [],
        }
        for i in _paced(args.rate, args.steps, None):
            ns = source.now_ns()
            data, step = encode_frame(synthetic_frame(frame_index, width, height), args.encoding)
            camera.publish(_image(source, data, step, width, height, args.encoding, ns))
            js = JointState(name=["joint1", "joint2"], position=[0.1 * i, -0.1 * i])
            source.stamp(js.header, ns)
            joints.publish(js)
            ps = PoseStamped()
            ps.header.frame_id = "base_link"
            source.stamp(ps.header, ns)
            ps.pose.position.x, ps.pose.position.y, ps.pose.position.z = 0.01 * i, 0.02 * k, 0.5
            ps.pose.orientation.w = 1.0
            pose.publish(ps)
            action.publish(_action(source, spec, values[i], ns + 1_000_000))
            record["frame_index"].append(frame_index)
            record["frame_stamps"].append(ns)
            record["action_stamps"].append(ns + 1_000_000)
            record["ee_pose"].append([0.01 * i, 0.02 * k, 0.5, 0.0, 0.0, 0.0, 1.0])
            frame_index += 1
            source.rclpy.spin_once(source.node, timeout_sec=0)
        if not (args.leave_open and k == args.episodes - 1):
            # The outcome observation after the last action, as a simulator publishes it right
            # before END; the converter does not make it a step.
            data, step = encode_frame(synthetic_frame(frame_index, width, height), args.encoding)
            camera.publish(_image(source, data, step, width, height, args.encoding, source.now_ns()))
            record["final_frame_index"] = frame_index
            frame_index += 1
        if args.leave_open and k == args.episodes - 1:
            manifest["episodes"].append(record)
            print("MANIFEST " + json.dumps(manifest), flush=True)
            print(f"OPEN episode={episode_id}", flush=True)
            _stream_until_killed(source, camera, width, height, args, frame_index)
            return 0
        source.wait_acked([camera, action, joints, pose])  # every step delivered before END
        code = {
            "success": EpisodeEvent.OUTCOME_SUCCESS,
            "failure": EpisodeEvent.OUTCOME_FAILURE,
            "discard": EpisodeEvent.OUTCOME_DISCARD,
        }[outcome]
        end = EpisodeEvent(
            event=EpisodeEvent.EVENT_END,
            outcome=code,
            episode_id=episode_id,
            instruction=instruction,
            task_id="synthetic",
            seed=k,
        )
        source.stamp(end.header, source.now_ns())
        if not args.no_events:
            events.publish(end)
        print(f"EPISODE_PUBLISHED id={episode_id} steps={args.steps} outcome={outcome}", flush=True)
        manifest["episodes"].append(record)
    source.wait_acked()
    print("MANIFEST " + json.dumps(manifest), flush=True)
    return 0


def _stream_until_killed(source: _Source, camera: Any, width: int, height: int, args: Any, index: int) -> None:
    """Keep an episode open (frames at the same rate) for at most ``--seconds``; for crash tests."""
    data, step = encode_frame(synthetic_frame(index, width, height), args.encoding)
    for _ in _paced(args.rate, None, args.seconds or 60.0):
        camera.publish(_image(source, data, step, width, height, args.encoding, source.now_ns()))


def _size(text: str) -> tuple[int, int]:
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT, got {text!r}") from exc
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["camera", "actions", "episodes"])
    parser.add_argument("--rate", type=float, default=30.0, help="messages (steps) per second")
    parser.add_argument("--seconds", type=float, default=None, help="publish for this long")
    parser.add_argument("--count", type=int, default=None, help="publish this many messages")
    parser.add_argument("--size", type=_size, default=(640, 480), help="camera WIDTHxHEIGHT")
    parser.add_argument("--encoding", default="rgb8")
    parser.add_argument("--prefix", default="", help="prepended to every topic name, e.g. /test42")
    parser.add_argument("--best-effort", action="store_true", help="camera QoS best effort (default reliable)")
    parser.add_argument("--depth", type=int, default=5, help="camera publisher history depth")
    parser.add_argument("--subscribers", type=int, default=1, help="wait for this many subscribers per topic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episodes", type=int, default=1)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--outcomes", default="success", help="comma-separated, cycled over episodes")
    parser.add_argument("--instruction", default="pick up the red cube")
    parser.add_argument("--id-prefix", default="synthetic-")
    parser.add_argument("--leave-open", action="store_true", help="never end the last episode (crash tests)")
    parser.add_argument("--no-events", action="store_true", help="publish the steps only (episodes driven by services)")
    args = parser.parse_args(argv)
    if args.mode in ("camera", "actions") and args.seconds is None and args.count is None:
        parser.error("camera/actions: give --seconds or --count")
    import rclpy

    rclpy.init()
    try:
        source = _Source(args)
        return {"camera": run_camera, "actions": run_actions, "episodes": run_episodes}[args.mode](source)
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
