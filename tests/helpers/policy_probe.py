"""Drive a policy node running in another process: be its camera, operator and robot.

``start_policy_node`` starts ``python -m qt_policy_node.node`` as a child process (its own
process group, stopped by the ``children`` fixture); ``PolicyProbe`` is an rclpy node in the
test process, on a private rclpy Context, that publishes camera frames, instructions, e-stop
and heartbeat, records everything the policy node publishes with its arrival time, and calls
its services. Each test uses its own namespace so that nodes of earlier tests cannot leak in.
Waits are for DDS matching or for messages, never fixed sleeps.
"""

from __future__ import annotations

import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import TwistStamped
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.signals import SignalHandlerOptions
from sensor_msgs.msg import CompressedImage, Image
from std_msgs.msg import Bool, Float64, Header, String
from std_srvs.srv import Trigger

from helpers.processes import ChildProcess
from qt_msgs.msg import ArmAction, PolicyStatus

TRANSITIONS = {
    "configure": Transition.TRANSITION_CONFIGURE,
    "activate": Transition.TRANSITION_ACTIVATE,
    "deactivate": Transition.TRANSITION_DEACTIVATE,
    "cleanup": Transition.TRANSITION_CLEANUP,
}


def unique_namespace() -> str:
    return "t" + uuid.uuid4().hex[:10]


def ros_value(value: Any) -> str:
    """A Python value as a ``-p name:=value`` literal (YAML)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(ros_value(v) for v in value) + "]"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def start_policy_node(model: Path | str, namespace: str, **params: Any) -> ChildProcess:
    """The policy node in a child process; ``params`` become ``-p name:=value`` overrides."""
    args = [sys.executable, "-m", "qt_policy_node.node", "--ros-args", "-p", f"model_path:={model}"]
    if namespace:
        args += ["-r", f"__ns:=/{namespace}"]
    for name, value in params.items():
        args += ["-p", f"{name}:={ros_value(value)}"]
    return ChildProcess(args)


def _qos(depth: int, transient_local: bool = False) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if transient_local else DurabilityPolicy.VOLATILE,
    )


class Recorder:
    """Messages of one topic with their arrival times (time.monotonic and time.time)."""

    def __init__(self) -> None:
        self.items: list[tuple[float, float, Any]] = []

    def __call__(self, msg: Any) -> None:
        self.items.append((time.monotonic(), time.time(), msg))

    def __len__(self) -> int:
        return len(self.items)

    @property
    def messages(self) -> list[Any]:
        return [m for _, _, m in self.items]

    def since(self, t_monotonic: float) -> list[Any]:
        return [m for t, _, m in self.items if t >= t_monotonic]

    def items_since(self, t_monotonic: float) -> list[tuple[float, float, Any]]:
        """(monotonic, wall, message) of the messages that arrived at or after ``t_monotonic``."""
        return [item for item in self.items if item[0] >= t_monotonic]

    def clear(self) -> None:
        self.items.clear()


class PolicyProbe:
    """See the module docstring. Use as a context manager so the node is always destroyed."""

    def __init__(self, namespace: str, image_size: tuple[int, int]) -> None:
        self.namespace = namespace
        self.height, self.width = image_size
        self.context = rclpy.Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        self.node = rclpy.create_node("policy_probe", namespace=namespace, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        node = self.node
        self.image_pub = node.create_publisher(Image, "camera/image_raw", _qos(5))
        self.compressed_pub = node.create_publisher(CompressedImage, "camera/image_raw/compressed", _qos(5))
        self.instruction_pub = node.create_publisher(String, "instruction", _qos(1, transient_local=True))
        self.estop_pub = node.create_publisher(Bool, "estop", _qos(10))
        self.heartbeat_pub = node.create_publisher(Header, "heartbeat", _qos(10))
        self.actions, self.twists, self.grippers = Recorder(), Recorder(), Recorder()
        self.statuses, self.diagnostics = Recorder(), Recorder()
        node.create_subscription(ArmAction, "qt/action", self.actions, _qos(100))
        node.create_subscription(TwistStamped, "servo_node/delta_twist_cmds", self.twists, _qos(100))
        node.create_subscription(Float64, "gripper/command", self.grippers, _qos(100))
        node.create_subscription(PolicyStatus, "qt/policy_status", self.statuses, _qos(100))
        node.create_subscription(DiagnosticArray, "/diagnostics", self.diagnostics, _qos(100))
        self.reset_client = node.create_client(Trigger, "qt/reset_estop")
        self.change_state_client = node.create_client(ChangeState, "policy_node/change_state")
        self.get_state_client = node.create_client(GetState, "policy_node/get_state")
        self._camera_timer: Any = None
        self._frame_seed = 0
        self.frames_sent = 0

    # ---- plumbing ------------------------------------------------------------------------

    def __enter__(self) -> PolicyProbe:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)

    def spin(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=min(0.02, max(0.0, end - time.monotonic())))

    def wait_until(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        end = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > end:
                raise TimeoutError(f"{what} not reached within {timeout} s")
            self.executor.spin_once(timeout_sec=0.02)

    def resolve(self, relative: str) -> str:
        return f"/{self.namespace}/{relative}" if self.namespace else f"/{relative}"

    def every(self, rate_hz: float, action: Callable[[], None]) -> Any:
        """Run ``action`` periodically while the probe spins; returns the timer (see cancel)."""
        return self.node.create_timer(1.0 / rate_hz, action)

    def cancel(self, timer: Any) -> None:
        self.node.destroy_timer(timer)

    def wait_for_policy_node(self, timeout: float = 30.0) -> None:
        """Until the node's subscriptions and command publishers have matched ours."""
        self.wait_until(
            lambda: self.image_pub.get_subscription_count() > 0
            and self.instruction_pub.get_subscription_count() > 0
            and self.estop_pub.get_subscription_count() > 0
            and self.node.count_publishers(self.resolve("qt/action")) > 0,
            timeout,
            "policy node discovery",
        )

    # ---- inputs ----------------------------------------------------------------------------

    def frame(self, encoding: str = "rgb8", stamp_s: float | None = None, size: tuple[int, int] | None = None
              ) -> Image:
        height, width = size or (self.height, self.width)
        channels = 4 if encoding in ("rgba8", "bgra8") else 3
        self._frame_seed += 1
        pixels = np.random.default_rng(self._frame_seed).integers(0, 256, (height, width, channels), np.uint8)
        msg = Image(height=height, width=width, encoding=encoding, step=width * channels)
        msg.header.frame_id = "camera_optical_frame"
        msg.header.stamp = rclpy.time.Time(seconds=time.time() if stamp_s is None else stamp_s).to_msg()
        msg.data = pixels.tobytes()
        return msg

    def publish_compressed(self, image_format: str = "png") -> None:
        """A compressed frame of the configured size (OpenCV encodes BGR)."""
        import cv2

        raw = self.frame()
        pixels = np.frombuffer(raw.data, np.uint8).reshape(self.height, self.width, 3)
        ok, encoded = cv2.imencode(f".{image_format}", pixels[..., ::-1])
        assert ok, image_format
        msg = CompressedImage(header=raw.header, format=image_format)
        msg.data = encoded.tobytes()
        self.compressed_pub.publish(msg)
        self.frames_sent += 1

    def publish_frame(self, **kwargs: Any) -> None:
        self.image_pub.publish(self.frame(**kwargs))
        self.frames_sent += 1

    def start_camera(self, rate_hz: float, **frame_kwargs: Any) -> None:
        self.stop_camera()
        self._camera_timer = self.every(rate_hz, lambda: self.publish_frame(**frame_kwargs))

    def stop_camera(self) -> None:
        if self._camera_timer is not None:
            self.cancel(self._camera_timer)
            self._camera_timer = None

    def instruct(self, text: str) -> None:
        self.instruction_pub.publish(String(data=text))

    def estop(self, asserted: bool) -> None:
        self.estop_pub.publish(Bool(data=asserted))

    def heartbeat(self) -> None:
        msg = Header()
        msg.stamp = rclpy.time.Time(seconds=time.time()).to_msg()
        self.heartbeat_pub.publish(msg)

    # ---- services ----------------------------------------------------------------------------

    def call(self, client: Any, request: Any, timeout: float = 15.0) -> Any:
        self.wait_until(lambda: client.service_is_ready(), timeout, f"service {client.srv_name}")
        future = client.call_async(request)
        self.wait_until(future.done, timeout, f"reply from {client.srv_name}")
        return future.result()

    def reset_estop(self) -> Trigger.Response:
        return self.call(self.reset_client, Trigger.Request())

    def transition(self, name: str) -> bool:
        request = ChangeState.Request()
        request.transition.id = TRANSITIONS[name]
        return bool(self.call(self.change_state_client, request).success)

    def state(self) -> str:
        return str(self.call(self.get_state_client, GetState.Request()).current_state.label)
