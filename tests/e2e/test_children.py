"""qt_eval.children: the node processes of qt collect / qt eval are stopped together, a dead one is
reported with its output, and none outlives its parent, even a parent killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from qt_eval.children import ChildDied, ChildGroup

# A child that only sleeps: python -m timeit runs the statement once.
SLEEPER = ("timeit", "-n", "1", "-r", "1", "import time; print('sleeping', flush=True); time.sleep(120)")


def _gone(pid: int) -> bool:
    """True when the process no longer exists (or is a zombie nobody reaped yet)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _gone(pid):
            return True
        time.sleep(0.05)
    return False


def test_group_stops_every_child_and_reports_a_dead_one(tmp_path):
    with ChildGroup(tmp_path / "logs") as group:
        sleeper = group.start("sleeper", *SLEEPER)
        sleeper.wait_for("sleeping", 30)
        last_words = "import os; print('last words', flush=True); os._exit(3)"
        dying = group.start("dying", "timeit", "-n", "1", "-r", "1", last_words)
        deadline = time.monotonic() + 30
        while dying.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        with pytest.raises(ChildDied, match=r"dying \(pid \d+\) exited with code 3(.|\n)*last words"):
            group.check()
        pids = [sleeper.pid, dying.pid]
        with pytest.raises(ChildDied, match="exited with code 3 before"):
            dying.wait_for("never printed", 5)
    assert all(_gone(pid) for pid in pids)
    assert "sleeping" in (tmp_path / "logs" / "sleeper.log").read_text()


def test_children_die_with_a_parent_killed_by_sigkill(tmp_path):
    script = (
        "import time\n"
        "from qt_eval.children import ChildGroup\n"
        "group = ChildGroup().__enter__()\n"
        f"child = group.start('sleeper', *{SLEEPER!r})\n"
        "child.wait_for('sleeping', 30)\n"
        "print('CHILD', child.pid, flush=True)\n"
        "time.sleep(120)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True, env=dict(os.environ))
    child_pid = None
    try:
        line = parent.stdout.readline()
        assert line.startswith("CHILD "), line
        child_pid = int(line.split()[1])
        assert not _gone(child_pid)
        os.killpg(parent.pid, signal.SIGKILL)  # no cleanup code in the parent can run
        parent.wait(timeout=10)
        assert _wait_gone(child_pid, 10), "the child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait(timeout=10)
        if child_pid is not None and not _gone(child_pid):
            os.killpg(child_pid, signal.SIGKILL)  # the child leads its own process group


def test_sigterm_to_the_parent_stops_the_children_like_ctrl_c():
    script = (
        "import time\n"
        "from qt_eval.children import ChildGroup\n"
        "try:\n"
        "    with ChildGroup() as group:\n"
        f"        child = group.start('sleeper', *{SLEEPER!r})\n"
        "        child.wait_for('sleeping', 30)\n"
        "        print('CHILD', child.pid, flush=True)\n"
        "        time.sleep(120)\n"
        "except KeyboardInterrupt:\n"
        "    print('STOPPED', flush=True)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    child_pid = None
    try:
        child_pid = int(parent.stdout.readline().split()[1])
        parent.send_signal(signal.SIGTERM)
        assert parent.stdout.readline().strip() == "STOPPED"
        assert parent.wait(timeout=20) == 0
        assert _gone(child_pid)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
            parent.wait(timeout=10)
        if child_pid is not None and not _gone(child_pid):
            os.killpg(child_pid, signal.SIGKILL)
