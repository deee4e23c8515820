"""Policy node latency across processes: camera frame published -> arm command received.

    . ./env.sh && python bench/policy_latency.py                   # 10, 30, 100 Hz, 60 s each
    python bench/policy_latency.py --seconds 20 --rates 30          # quicker
    python bench/policy_latency.py --model models/mine              # a specific artefact
    python bench/policy_latency.py --seconds 20 --rates 30 --modes timer,frame   # both control modes

For each control rate the policy node runs as its own process (``python -m
qt_policy_node.node``, autostart, rate set by parameter) and this process plays the camera at
1 % below the same rate (``--camera-ratio``), so the camera's phase against the control timer
sweeps through a whole period every 100 frames, as an unsynchronised camera's does; at exactly
equal rates the phase would stay wherever it happened to start and decide the result. Every
frame is stamped with its publish time, and the policy's ArmAction carries the stamp of the
frame it decided on, so each frame's latency is the arrival time of the first command made
from it minus its publish time (both wall clock, same machine). That includes the wait for the
next control tick (the node is timer-driven: up to one period, half on average), the decode,
and DDS delivery both ways. PolicyStatus splits it: ``tick wait`` is the frame's age when the
tick started, ``tick->cmd`` the time from the tick to the command's arrival here (decode,
safety layer, publish, delivery), ``inference`` the ONNX Runtime time alone.

``--trace`` starts the node with bench/node_trace on its PYTHONPATH, which times the stages of
each decided frame inside the node process (camera publish -> callback, image conversion,
decode, safety layer, message, publish) and joins them with the command's arrival here.

``--modes``: the node's ``control_mode`` parameter, one run per mode and rate. ``frame`` decides
when a frame arrives (rate-limited to the control rate), which removes the tick wait; the
camera at 1 % below the control rate never hits that rate limit.

Deadline misses: control periods in which no command arrived (gaps between consecutive commands
longer than 1.5 periods, counted in periods), and the node's own count of ticks that started
late or ran longer than one period (/diagnostics).

Model: ``--model``, else models/default when it exists, else an untrained model of the default
("small") architecture exported to a temporary directory (same graph and cost as a trained one).
For a model with proprioception the camera thread also publishes a fixed ``ee_pose`` and
``joint_states`` (``--arm-offset`` periods after each frame, default half a period: an arm-state
stream of its own; 0: just before each frame, as this bench did first), so the node's
stale-proprio hold never fires.

``--idle-decode`` first times the decoder in this process back to back and with one control
period of idle between decodes: an idle core loses its caches, so the node's decode (one per
frame) is slower than a back-to-back benchmark's.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
WARMUP_S = 3.0
WARMUP_DECODES = 20


def export_default_architecture(out_dir: Path) -> Path:
    """Untrained model with the trainer's default ModelConfig at 96x96 (torch: bench only)."""
    import torch
    from qt_common.action_spec import ActionSpec
    from qt_trainer.config import ModelConfig
    from qt_trainer.export import export_policy
    from qt_trainer.model import QTransformer
    from qt_trainer.text import TEXT_ENCODER_ID, SentenceEmbedder

    spec = ActionSpec.default()
    torch.manual_seed(0)
    model = QTransformer(ModelConfig(num_dims=spec.num_dims, num_bins=spec.num_bins)).eval()
    instruction = "pick up the red cube"
    embeddings = {instruction: SentenceEmbedder().embed([instruction])[0].tolist()}
    return export_policy(model, spec, out_dir, name="bench-small-untrained", embeddings=embeddings,
                         text_encoder_id=TEXT_ENCODER_ID, control_rate_hz=10.0,
                         training={"data_digest": "untrained", "command": "bench/policy_latency.py"})


def pick_model(arg: str | None, scratch: Path) -> tuple[Path, str]:
    if arg:
        return Path(arg), "given with --model"
    shipped = ROOT / "models" / "default"
    if (shipped / "policy.onnx").is_file():
        return shipped, "the shipped default model (models/default)"
    untrained = "untrained, default 'small' architecture (no models/default yet)"
    return export_default_architecture(scratch / "small"), untrained


class Camera(threading.Thread):
    """Publishes frames at a fixed rate from its own thread, remembering each publish time."""

    def __init__(self, publisher, height: int, width: int, rate_hz: float, seconds: float, arm=None,
                 arm_offset: float = 0.5) -> None:
        super().__init__(daemon=True)
        from sensor_msgs.msg import Image

        self.publisher, self.period, self.seconds = publisher, 1.0 / rate_hz, seconds
        self.arm = arm  # (pose publisher, joint_states publisher): models with proprio need both
        self.arm_offset = arm_offset  # arm state this many periods after each frame (0: just before it)
        rng = np.random.default_rng(0)
        self.frames = []
        for _ in range(8):  # a few different images, so the model sees changing input
            msg = Image(height=height, width=width, encoding="rgb8", step=width * 3)
            msg.header.frame_id = "camera_optical_frame"
            msg.data = rng.integers(0, 256, height * width * 3, dtype=np.uint8).tobytes()
            self.frames.append(msg)
        self.published: dict[int, float] = {}
        self.stop_flag = threading.Event()

    def run(self) -> None:
        next_time = time.monotonic()
        end = next_time + self.seconds
        i = 0
        while not self.stop_flag.is_set() and time.monotonic() < end:
            msg = self.frames[i % len(self.frames)]
            now = time.time()
            stamp_ns = int(now * 1e9)
            msg.header.stamp.sec, msg.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
            self.published[stamp_ns] = now
            if self.arm is not None and not self.arm_offset:
                self._publish_arm()
            self.publisher.publish(msg)
            i += 1
            next_time += self.period
            if self.arm is not None and self.arm_offset:
                time.sleep(max(0.0, next_time - (1.0 - self.arm_offset) * self.period - time.monotonic()))
                self._publish_arm()
            time.sleep(max(0.0, next_time - time.monotonic()))

    def _publish_arm(self) -> None:
        """A fixed arm state, stamped now, so proprio is never stale. By default half a period
        after each frame, as an arm-state stream of its own: sent just before each frame
        (``--arm-offset 0``), the node handles those two messages first and every frame's
        latency carries them."""
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        stamp_ns = time.time_ns()
        pose = PoseStamped()
        pose.header.stamp.sec, pose.header.stamp.nanosec = divmod(stamp_ns, 1_000_000_000)
        pose.pose.position.z, pose.pose.orientation.w = 0.2, 1.0
        joints = JointState(name=["finger_left", "finger_right"], position=[0.02, 0.02])
        joints.header.stamp = pose.header.stamp
        self.arm[0].publish(pose)
        self.arm[1].publish(joints)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    if not values:
        return float("nan"), float("nan"), float("nan")
    array = np.asarray(values)
    return float(np.percentile(array, 50)), float(np.percentile(array, 99)), float(array.max())


TRACE_STAGES = (  # (name, from event, to event); events of bench/node_trace, "arrival" = command here
    ("camera publish -> node callback", "stamp", "callback"),
    ("image conversion", "callback", "converted"),
    ("callback -> decode (holds, trigger)", "converted", "decode"),
    ("decode (in the node)", "decode", "decoded"),
    ("safety layer", "decoded", "tick done"),
    ("tick -> publish (message, bins)", "tick done", "publish ArmAction"),
    ("publish -> arrival here", "publish ArmAction", "arrival"),
    ("after the command: twist, gripper, status", "published ArmAction", "published PolicyStatus"),
)


def trace_stages(path: Path, first_command: dict[int, float], frames: dict[int, float]) -> dict[str, list[float]]:
    """p50 and p90 ms of each TRACE_STAGES stage over the measured frames the node decided on."""
    per_frame: list[dict[str, float]] = []
    for stage, when, stamp in json.loads(path.read_text()):
        if stage == "callback":
            per_frame.append({"stamp": stamp / 1e9, "callback": when, "arrival": first_command.get(stamp, 0.0),
                              "measured": stamp in frames})
        elif per_frame and stage not in per_frame[-1]:
            per_frame[-1][stage] = when
    out = {}
    for name, start, end in TRACE_STAGES:
        ms = [(f[end] - f[start]) * 1e3 for f in per_frame
              if f["measured"] and f.get(start) and f.get(end) and "decoded" in f]
        out[name] = [round(float(np.percentile(ms, q)), 3) for q in (50, 90)] if ms else []
    return out


def idle_decode(model: Path, rates: list[float], decodes: int = 200) -> dict[str, float]:
    """Decode p50 ms back to back and with one period of each rate idle between decodes."""
    from qt_policy_node.decoder import PolicyDecoder

    decoder = PolicyDecoder(model, threads=1)
    rng = np.random.default_rng(0)
    height, width = decoder.image_size
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    embedding = rng.standard_normal(decoder.embed_dim).astype(np.float32)
    proprio = np.zeros(decoder.proprio_dim, np.float32) if decoder.proprio_dim else None
    out = {}
    for label, gap in [("back to back", 0.0)] + [(f"{rate:g} Hz", 1.0 / rate) for rate in rates]:
        times = []
        for _ in range(WARMUP_DECODES + decodes):
            time.sleep(gap)
            started = time.perf_counter()
            decoder.decode(image, embedding, proprio)
            times.append(time.perf_counter() - started)
        out[label] = round(float(np.median(times[WARMUP_DECODES:])) * 1e3, 3)
    return out


def measure(model: Path, card: dict, rate: float, seconds: float, camera_ratio: float, mode: str = "timer",
            trace: Path | None = None, arm_offset: float = 0.5) -> dict:
    import rclpy
    from diagnostic_msgs.msg import DiagnosticArray
    from helpers.processes import ChildProcess
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
    from rclpy.signals import SignalHandlerOptions
    from sensor_msgs.msg import Image
    from std_msgs.msg import String

    from qt_msgs.msg import ArmAction, PolicyStatus

    height, width = int(card["image"]["height"]), int(card["image"]["width"])
    instruction = next(iter(card["text_encoder"]["embeddings"]))
    node_proc = ChildProcess([
        sys.executable, "-m", "qt_policy_node.node", "--ros-args", "-r", "__ns:=/bench",
        "-p", f"model_path:={model}", "-p", "autostart:=true", "-p", f"control_rate_hz:={float(rate)}",
        "-p", f"image_height:={height}", "-p", f"image_width:={width}", "-p", "use_text_encoder:=false",
        "-p", f"image_timeout_s:={max(0.5, 5.0 / rate)}", "-p", "diagnostics_period_s:=0.5",
        "-p", f"control_mode:={mode}",
    ], env=None if trace is None else {**os.environ, "QT_NODE_TRACE": str(trace), "PYTHONPATH": os.pathsep.join(
        p for p in (str(ROOT / "bench" / "node_trace"), os.environ.get("PYTHONPATH", "")) if p)})
    context = rclpy.Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    node = rclpy.create_node("latency_bench", namespace="bench", context=context)
    executor = SingleThreadedExecutor(context=context)
    executor.add_node(node)
    reliable = QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE)
    image_pub = node.create_publisher(Image, "camera/image_raw", QoSProfile(depth=5,
                                                                            reliability=ReliabilityPolicy.RELIABLE))
    instruction_pub = node.create_publisher(
        String, "instruction",
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL))
    arm = None
    if int(card.get("proprio_dim", 0)) > 0:
        from geometry_msgs.msg import PoseStamped
        from sensor_msgs.msg import JointState

        arm = (node.create_publisher(PoseStamped, "ee_pose", reliable),
               node.create_publisher(JointState, "joint_states", reliable))
    commands: list[tuple[float, int]] = []  # (arrival wall time, observation stamp ns)
    statuses: list[tuple[float, float, float]] = []  # (tick time s, tick wait ms, inference ms), decoding ticks
    diagnostics: dict[str, str] = {}
    node.create_subscription(ArmAction, "qt/action", lambda m: commands.append(
        (time.time(), m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec)), reliable)
    node.create_subscription(PolicyStatus, "qt/policy_status", lambda m: statuses.append(
        (m.header.stamp.sec + m.header.stamp.nanosec * 1e-9, m.observation_age_ms, m.inference_latency_ms))
        if m.inference_latency_ms > 0 else None, reliable)
    node.create_subscription(DiagnosticArray, "/diagnostics", lambda m: diagnostics.update(
        {kv.key: kv.value for kv in m.status[0].values}) if m.status else None, reliable)
    try:
        node_proc.wait_for_line(r"policy_node: ready", 120)
        deadline = time.monotonic() + 30
        while image_pub.get_subscription_count() == 0 or instruction_pub.get_subscription_count() == 0:
            if time.monotonic() > deadline:
                raise RuntimeError("policy node did not match the camera within 30 s")
            executor.spin_once(timeout_sec=0.05)
        instruction_pub.publish(String(data=instruction))
        camera = Camera(image_pub, height, width, rate * camera_ratio, WARMUP_S + seconds, arm, arm_offset)
        camera.start()
        measure_from = time.time() + WARMUP_S
        while camera.is_alive():
            executor.spin_once(timeout_sec=0.01)
        end = time.time()
        drain = time.monotonic() + 1.0
        while time.monotonic() < drain:
            executor.spin_once(timeout_sec=0.01)
    finally:
        node_proc.stop()
        executor.shutdown()
        node.destroy_node()
        rclpy.try_shutdown(context=context)

    first_command: dict[int, float] = {}
    for arrival, stamp in commands:
        first_command.setdefault(stamp, arrival)
    frames = {s: t for s, t in camera.published.items() if measure_from <= t <= end}
    latencies = [(first_command[s] - t) * 1e3 for s, t in frames.items() if s in first_command]
    arrivals = [a for a, _ in commands if measure_from <= a <= end]
    period = 1.0 / rate
    gaps = np.diff(arrivals) if len(arrivals) > 1 else np.array([])
    missed = int(sum(round(g / period) - 1 for g in gaps if g > 1.5 * period))
    measured = [s for s in statuses if measure_from <= s[0] <= end]
    stamps = np.array(sorted(camera.published))
    tick_to_command = []
    for tick, wait_ms, _ in measured:  # the frame a decoding tick used: tick time - its age
        target = (tick - wait_ms / 1e3) * 1e9
        index = int(np.clip(np.searchsorted(stamps, target), 1, len(stamps) - 1))
        nearest = int(min(stamps[index - 1], stamps[index], key=lambda s: abs(s - target)))
        if nearest in first_command:
            tick_to_command.append((first_command[nearest] - tick) * 1e3)
    stages = trace_stages(trace, first_command, frames) if trace is not None else {}
    return {
        "trace_ms_p50_p90": stages,
        "mode": mode,
        "rate": rate,
        "frames": len(frames),
        "acted": len(latencies),
        "commands": len(arrivals),
        "expected_commands": round((end - measure_from) * rate),
        "latency_ms": percentiles(latencies),
        "tick_wait_ms": percentiles([w for _, w, _ in measured]),
        "tick_to_command_ms": percentiles(tick_to_command),
        "inference_ms": percentiles([i for _, _, i in measured]),
        "missed_periods": missed,
        "node_deadline_misses": diagnostics.get("deadline_misses", "?"),
        "provider": diagnostics.get("execution_provider", "?"),
        "dropped_frames": len(frames) - len(latencies),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measured seconds per rate (default 60)")
    parser.add_argument("--rates", default="10,30,100", help="control rates in Hz, comma-separated")
    parser.add_argument("--model", default=None, help="policy directory; default models/default or untrained")
    parser.add_argument("--camera-ratio", type=float, default=0.99, help="camera rate / control rate (0.99)")
    parser.add_argument("--modes", default="timer", help="policy node control_mode(s), comma-separated: timer, frame")
    parser.add_argument("--arm-offset", type=float, default=0.5,
                        help="models with proprio: arm state this many periods after each frame (0: just before)")
    parser.add_argument("--idle-decode", action="store_true",
                        help="first: decode p50 back to back and with one control period idle in between")
    parser.add_argument("--trace", action="store_true", help="time the stages inside the node (bench/node_trace)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    with tempfile.TemporaryDirectory(prefix="qt-policy-bench-") as scratch:
        model, what = pick_model(args.model, Path(scratch))
        card = json.loads((model / "policy.json").read_text())
        print(f"model: {card['model_id']} at {model} ({what}); image {card['image']['height']}x"
              f"{card['image']['width']}; {args.seconds:g} s per rate after {WARMUP_S:g} s warm-up; "
              f"{os.cpu_count()} CPUs", flush=True)
        results = []
        rates = [float(r) for r in args.rates.split(",")]
        idle = idle_decode(model, rates) if args.idle_decode else {}
        if idle:
            print("decode p50 in this process: " + ", ".join(f"{k} {v:.3f} ms" for k, v in idle.items())
                  + " (idle between decodes: one control period)", flush=True)
        for rate, mode in ((float(r), m) for r in args.rates.split(",") for m in args.modes.split(",")):
            trace = Path(scratch) / f"trace-{rate:g}-{mode}.json" if args.trace else None
            result = measure(model, card, rate, args.seconds, args.camera_ratio, mode, trace, args.arm_offset)
            results.append(result)
            lat, wait, inf = result["latency_ms"], result["tick_wait_ms"], result["inference_ms"]
            proc = result["tick_to_command_ms"]
            print(
                f"{rate:5.0f} Hz {mode:5s}  frames {result['frames']:6d}  acted on {result['acted']:6d}  "
                f"latency p50 {lat[0]:6.2f}  p99 {lat[1]:6.2f}  max {lat[2]:7.2f} ms  |  "
                f"tick wait p50 {wait[0]:5.2f}  tick->cmd p50 {proc[0]:5.2f} p99 {proc[1]:5.2f} max {proc[2]:6.2f}  "
                f"inference p50 {inf[0]:5.2f} p99 {inf[1]:5.2f} ms  |  "
                f"commands {result['commands']}/{result['expected_commands']}  "
                f"missed periods {result['missed_periods']}  node deadline misses {result['node_deadline_misses']}  "
                f"[{result['provider']}]",
                flush=True,
            )
            for stage, (p50, p90) in ((k, v) for k, v in result["trace_ms_p50_p90"].items() if v):
                print(f"    {stage:<44} p50 {p50:6.3f}  p90 {p90:6.3f} ms", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(model), "what": what, "idle_decode_ms_p50": idle,
                                         "results": results}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
