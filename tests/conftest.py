"""Session-wide test setup: isolate DDS before anything imports rclpy, and shared fixtures."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.processes import ChildProcess
from helpers.ros_isolation import isolate_ros_environment


def pytest_configure(config: pytest.Config) -> None:
    domain_id = isolate_ros_environment()
    config.stash[_DOMAIN_KEY] = domain_id
    _let_children_take_ctrl_c()


def _let_children_take_ctrl_c() -> None:
    """Tests send SIGINT to their child processes as a user's Ctrl-C. A shell without job control
    starts background commands (``cmd &``, as CI scripts and nohup do) with SIGINT ignored, and an
    ignored signal is inherited across exec: every child would ignore the Ctrl-C (qt collect then
    ran all its episodes, exit 0, in such a run). A handled signal is reset to the default on exec,
    so handling it here gives the children the terminal's default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


def pytest_report_header(config: pytest.Config) -> str:
    return f"ROS_DOMAIN_ID={config.stash[_DOMAIN_KEY]} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST"


_DOMAIN_KEY = pytest.StashKey[int]()


@pytest.fixture
def children() -> Iterator[list[ChildProcess]]:
    """Collects the child processes a test starts and stops each one afterwards."""
    started: list[ChildProcess] = []
    yield started
    for child in started:
        child.stop()


@pytest.fixture
def peer() -> Iterator[Any]:
    """A test-side ROS node (helpers.ros_peer.RosPeer), closed afterwards; rclpy is imported only
    by the tests that ask for one."""
    from helpers.ros_peer import RosPeer

    p = RosPeer()
    yield p
    p.close()
