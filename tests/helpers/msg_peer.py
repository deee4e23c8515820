"""A ROS 2 peer process for the middleware tests: publishes, subscribes or serves one type.

    python -m helpers.msg_peer pub   TYPE SEED [--count N --rate HZ --image 640x480]
    python -m helpers.msg_peer sub   TYPE [--count N]
    python -m helpers.msg_peer serve SRV_TYPE SEED

``pub`` waits until a subscriber has matched (never a fixed sleep), then publishes the
deterministic sample for SEED. ``sub`` prints each received message as one JSON line
("RECEIVED {...}"). ``serve`` answers every request with the sample response for SEED plus the
request's own fields echoed as "REQUEST {...}". All loops are bounded in count and time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy

from helpers.messages import import_interface, message_to_dict, sample_message

TOPIC = "qt_test/peer"
SERVICE = "qt_test/service"
MATCH_TIMEOUT_S = 30.0


def _reliable(depth: int) -> QoSProfile:
    return QoSProfile(depth=depth, reliability=ReliabilityPolicy.RELIABLE)


def camera_frame(size: str) -> object:
    """A sensor_msgs/Image of WIDTHxHEIGHT rgb8 with a recognisable byte pattern."""
    from sensor_msgs.msg import Image

    width, height = (int(v) for v in size.split("x"))
    msg = Image(width=width, height=height, encoding="rgb8", step=width * 3)
    msg.data = bytes(range(256)) * (width * height * 3 // 256) + bytes(width * height * 3 % 256)
    return msg


def publish(type_name: str, seed: int, count: int, rate_hz: float, image: str | None) -> int:
    cls = import_interface(type_name)
    node = rclpy.create_node("qt_test_publisher")
    publisher = node.create_publisher(cls, TOPIC, _reliable(max(count, 10)))
    deadline = time.monotonic() + MATCH_TIMEOUT_S
    while publisher.get_subscription_count() == 0:
        if time.monotonic() > deadline:
            print("NO_SUBSCRIBER", flush=True)
            return 1
        rclpy.spin_once(node, timeout_sec=0.05)
    print("MATCHED", flush=True)
    msg = camera_frame(image) if image else sample_message(cls, seed)
    period = 1.0 / rate_hz
    next_time = time.monotonic()
    for _ in range(count):
        publisher.publish(msg)
        next_time += period
        time.sleep(max(0.0, next_time - time.monotonic()))
    print(f"PUBLISHED {count}", flush=True)
    # Give reliable QoS time to deliver before the participant disappears.
    end = time.monotonic() + 10.0
    while time.monotonic() < end and publisher.get_subscription_count() > 0:
        rclpy.spin_once(node, timeout_sec=0.05)
    return 0


def subscribe(type_name: str, count: int, timeout_s: float, summary_only: bool) -> int:
    cls = import_interface(type_name)
    node = rclpy.create_node("qt_test_subscriber")
    received: list[object] = []

    def on_message(msg: object) -> None:
        received.append(msg)
        if not summary_only:
            print("RECEIVED " + json.dumps(message_to_dict(msg)), flush=True)

    node.create_subscription(cls, TOPIC, on_message, _reliable(max(count, 10)))
    print("SUBSCRIBED", flush=True)
    deadline = time.monotonic() + timeout_s
    while len(received) < count and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    print(f"COUNT {len(received)}", flush=True)
    return 0 if len(received) >= count else 1


def serve(type_name: str, seed: int, timeout_s: float) -> int:
    cls = import_interface(type_name)
    node = rclpy.create_node("qt_test_server")
    served = []

    def on_request(request: object, response: object) -> object:
        print("REQUEST " + json.dumps(message_to_dict(request)), flush=True)
        served.append(request)
        return sample_message(cls.Response, seed)

    node.create_service(cls, SERVICE, on_request)
    print("SERVING", flush=True)
    deadline = time.monotonic() + timeout_s
    while not served and time.monotonic() < deadline:
        rclpy.spin_once(node, timeout_sec=0.05)
    # Keep spinning briefly so the response is sent before the process exits.
    end = time.monotonic() + 1.0
    while time.monotonic() < end:
        rclpy.spin_once(node, timeout_sec=0.05)
    return 0 if served else 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["pub", "sub", "serve"])
    parser.add_argument("type")
    parser.add_argument("seed", type=int, nargs="?", default=0)
    parser.add_argument("--count", type=int, default=1)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--summary-only", action="store_true")
    parser.add_argument("--image", help="publish WIDTHxHEIGHT rgb8 frames instead of samples")
    args = parser.parse_args()
    rclpy.init()
    try:
        if args.mode == "pub":
            return publish(args.type, args.seed, args.count, args.rate, args.image)
        if args.mode == "sub":
            return subscribe(args.type, args.count, args.timeout, args.summary_only)
        return serve(args.type, args.seed, args.timeout)
    finally:
        rclpy.try_shutdown()


if __name__ == "__main__":
    sys.exit(main())
