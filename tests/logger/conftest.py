"""Fixtures of the logger tests: crafted bags, the real recorder and source processes, the qt CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from helpers.episode_bags import CraftedEpisode, craft_episode, write_bag
from helpers.processes import REPO_ROOT, ChildProcess, python_child

# Topics of the logger tests carry this prefix (recorder parameters, source --prefix), so a test
# never records another session's traffic even if it drew the same random DDS domain.
PREFIX = f"/qt_test_{os.getpid()}"
TOPIC_PARAMETERS = {
    "camera_topic": "/camera/image_raw",
    "compressed_camera_topic": "/camera/image_raw/compressed",
    "instruction_topic": "/instruction",
    "action_topic": "/qt/action",
    "label_topic": "/qt/action_label",
    "joint_states_topic": "/joint_states",
    "ee_pose_topic": "/ee_pose",
    "object_poses_topic": "/sim/object_poses",
    "events_topic": "/episode/events",
}


def start_recorder(children: list[ChildProcess], out: Path, *params: str, ulimit_kb: int = 0) -> ChildProcess:
    """The recorder node as its own process (test-prefixed topics), waiting until it is ready."""
    topics = [a for name, topic in TOPIC_PARAMETERS.items() for a in ("-p", f"{name}:={PREFIX}{topic}")]
    args = ["--ros-args", "-p", f"output_dir:={out}", "-p", "end_grace_s:=0.3", "-p", "fsync:=false", *topics, *params]
    if ulimit_kb:
        # A per-file size limit makes writes fail with EFBIG, like a full disk, without privileges.
        command = " ".join(
            [
                f"ulimit -f {ulimit_kb};",
                "exec",
                sys.executable,
                "-m",
                "qt_data_logger.recorder_node",
                *(f"'{a}'" for a in args),
            ]
        )
        child = ChildProcess(["bash", "-c", command])
    else:
        child = python_child("qt_data_logger.recorder_node", *args)
    children.append(child)
    child.wait_for_line("RECORDER_READY", timeout=60)
    return child


def run_source(children: list[ChildProcess], *args: str, timeout: float = 120) -> dict[str, Any]:
    """Run the synthetic episode source to completion; returns its MANIFEST."""
    child = python_child("qt_data_logger.synthetic_source", "episodes", "--prefix", PREFIX, *args)
    children.append(child)
    manifest = json.loads(child.wait_for_line(r"^MANIFEST (.*)$", timeout=timeout).group(1))
    assert child.wait(timeout=60) == 0, child.output()
    return manifest


def qt(*args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    """The `qt` command line (as users run it), in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "qt_common.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def clean_fastdds_shm() -> None:
    """Remove shared-memory segments a SIGKILLed participant left behind (only unused ones)."""
    tool = Path(sys.executable).with_name("fastdds")
    if tool.exists():
        subprocess.run([str(tool), "shm", "clean"], capture_output=True, timeout=60)


@pytest.fixture
def crafted(tmp_path: Path):
    """Factory: crafted(name, **craft_episode kwargs) -> (bag path, CraftedEpisode)."""

    def make(name: str = "bag", **kwargs: Any) -> tuple[Path, CraftedEpisode]:
        episode = craft_episode(**kwargs)
        return write_bag(tmp_path / "bags" / name, episode.messages, episode.custom), episode

    return make


@pytest.fixture
def recorder(children: list[ChildProcess]) -> Callable[..., ChildProcess]:
    """recorder(out, *ros_params, ulimit_kb=0) -> the running recorder process."""
    return lambda out, *params, ulimit_kb=0: start_recorder(children, out, *params, ulimit_kb=ulimit_kb)


@pytest.fixture
def source(children: list[ChildProcess]) -> Callable[..., dict[str, Any]]:
    """source(*synthetic_source episodes args) -> its MANIFEST, after it exited."""
    return lambda *args, timeout=120: run_source(children, *args, timeout=timeout)


@pytest.fixture
def topic_prefix() -> str:
    """Prefix of every topic the logger tests' processes use."""
    return PREFIX


@pytest.fixture
def convert_flags() -> list[str]:
    """qt convert options naming the test-prefixed topics."""
    flags = {
        "camera": "camera_topic",
        "compressed-camera": "compressed_camera_topic",
        "action": "action_topic",
        "events": "events_topic",
        "instruction": "instruction_topic",
        "ee-pose": "ee_pose_topic",
        "joint-states": "joint_states_topic",
        "label": "label_topic",
        "object-poses": "object_poses_topic",
    }
    return [item for flag, name in flags.items() for item in (f"--{flag}-topic", PREFIX + TOPIC_PARAMETERS[name])]


@pytest.fixture
def qt_cli() -> Callable[..., subprocess.CompletedProcess[str]]:
    """qt_cli(*args) -> the finished `qt ...` command (stdout, stderr, returncode)."""
    return qt


@pytest.fixture
def fastdds_shm_cleanup() -> Any:
    """For tests that SIGKILL a DDS participant: remove its orphaned shared memory afterwards."""
    yield
    clean_fastdds_shm()
