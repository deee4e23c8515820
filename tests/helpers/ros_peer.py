"""An rclpy peer inside the test process: subscribe, publish, call services, spin until.

It uses its own rclpy Context, so tests never touch the global one, and it is the "other
process" of a cross-process test whose node under test runs as a child. Every wait is bounded.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.executors import SingleThreadedExecutor
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy


def qos(depth: int = 10, latched: bool = False) -> QoSProfile:
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


class RosPeer:
    def __init__(self, name: str = "qt_test_peer"):
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node(name, context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = {}

    def subscribe(self, msg_type: type, topic: str, depth: int = 50, latched: bool = False) -> list[Any]:
        """Collect every message on ``topic``; returns the (live) list."""
        messages: list[Any] = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, messages.append, qos(depth, latched))
        return messages

    def publisher(self, msg_type: type, topic: str, depth: int = 10) -> Any:
        return self.node.create_publisher(msg_type, topic, qos(depth))

    def spin_until(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{what} not reached within {timeout}s")
            self.executor.spin_once(timeout_sec=0.02)

    def spin_for(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.executor.spin_once(timeout_sec=0.02)

    def call(self, srv_type: type, name: str, request: Any, timeout: float = 30.0) -> Any:
        client = self.node.create_client(srv_type, name)
        self.spin_until(client.service_is_ready, timeout, f"service {name}")
        future = client.call_async(request)
        self.spin_until(future.done, timeout, f"response from {name}")
        return future.result()

    def close(self) -> None:
        self.executor.shutdown(timeout_sec=1.0)
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)
