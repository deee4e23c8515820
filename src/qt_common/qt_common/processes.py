"""Stopping a child process we started, and everything it started, without touching others.

Children are started with ``start_new_session=True`` so each leads its own process group;
signalling that group reaches the child's own children too (a ROS node's helpers), while no
process is ever looked up or killed by name.
"""

from __future__ import annotations

import os
import signal
import subprocess

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)


def stop_process_group(popen: subprocess.Popen, grace_s: float = 10.0) -> int | None:
    """SIGINT, then SIGTERM, then SIGKILL to ``popen``'s own process group, each given
    ``grace_s`` to work (SIGINT lets a ROS node finalise, e.g. close its bag); the exit code."""
    for sig in STOP_SIGNALS:
        if popen.poll() is not None:
            break
        try:
            os.killpg(popen.pid, sig)
        except ProcessLookupError:
            break
        try:
            popen.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            continue
    return popen.poll()
