"""Small rclpy helpers shared by the qt_sim nodes (QoS profiles, stamps)."""

from __future__ import annotations

from typing import Any

from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy


def reliable(depth: int, latched: bool = False) -> QoSProfile:
    """Reliable QoS of ``depth``; ``latched`` adds transient-local durability (late joiners get it)."""
    return QoSProfile(
        depth=depth,
        reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if latched else DurabilityPolicy.VOLATILE,
    )


def stamp_ns(stamp: Any) -> int:
    """builtin_interfaces/Time -> integer nanoseconds."""
    return int(stamp.sec) * 1_000_000_000 + int(stamp.nanosec)
