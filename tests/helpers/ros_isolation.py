"""Keep every test session's DDS traffic on this machine and in a domain of its own.

Imported by tests/conftest.py before anything imports rclpy: Fast DDS reads these variables
when the first participant is created, and without LOCALHOST discovery it would multicast on
the real network card. The random domain keeps parallel test runs from seeing each other.
"""

from __future__ import annotations

import os
import random

# Domains 1..101 keep the DDS port numbers below the ephemeral range on Linux.
_DOMAIN_RANGE = (1, 101)


def isolate_ros_environment() -> int:
    """Set localhost-only discovery and a random domain id for this process and its children."""
    os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    os.environ.pop("ROS_STATIC_PEERS", None)
    domain = os.environ.get("QT_TEST_DOMAIN_ID")
    domain_id = int(domain) if domain else random.SystemRandom().randint(*_DOMAIN_RANGE)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)
    os.environ["QT_TEST_DOMAIN_ID"] = str(domain_id)
    return domain_id
