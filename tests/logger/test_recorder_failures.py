"""Nothing lost, nothing corrupt: kill -9, a full disk and a read-only disk under the real recorder."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
from qt_common.dataset import Dataset
from qt_data_logger.bag_status import inspect_bag
from qt_data_logger.synthetic_source import synthetic_frame
from rosbags.highlevel import AnyReader

from qt_data_logger import bag_format as bf


def _wait_for_data(bag: Path, min_bytes: int, timeout: float = 30.0) -> None:
    """Until the open episode's MCAP data (flushed chunks) reaches min_bytes on disk."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sum(f.stat().st_size for f in bag.rglob("*.mcap")) >= min_bytes:
            return
        time.sleep(0.1)
    raise TimeoutError(f"{bag}: less than {min_bytes} bytes written within {timeout} s")


def test_kill_9_mid_episode_never_reaches_the_dataset(
    tmp_path: Path, recorder, children, qt_cli, topic_prefix, convert_flags, fastdds_shm_cleanup
) -> None:
    from helpers.processes import python_child

    bags = tmp_path / "bags"
    rec = recorder(bags)
    src = python_child(
        "qt_data_logger.synthetic_source",
        "episodes",
        "--prefix",
        topic_prefix,
        "--episodes",
        "2",
        "--steps",
        "10",
        "--rate",
        "10",
        "--size",
        "320x240",
        "--leave-open",
        "--seconds",
        "60",
    )
    children.append(src)
    src.wait_for_line("OPEN episode=synthetic-001", timeout=90)
    rec.wait_for_line("EPISODE_WRITTEN id=synthetic-000", timeout=30)
    _wait_for_data(bags / "synthetic-001", 4_000_000)  # ~17 frames of 230 kB flushed
    rec.send_signal(signal.SIGKILL)
    assert rec.wait(timeout=30) == -signal.SIGKILL
    src.stop()
    crashed = bags / "synthetic-001"
    assert inspect_bag(crashed).state == "interrupted"
    spare = tmp_path / "spare"
    shutil.copytree(crashed, spare / crashed.name)  # for the quarantine path below

    flags = ["--image-size", "60x80", *convert_flags]
    refused = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), *flags)
    assert refused.returncode == 1
    assert f"{crashed}: topic -, field metadata.yaml: bag is interrupted" in refused.stderr
    assert not (tmp_path / "ds").exists()
    skipped = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), "--skip-bad", *flags)
    assert skipped.returncode == 0, skipped.stderr
    assert "converted 1 episode(s), 10 frames" in skipped.stdout and "skipped 1 bad bag(s)" in skipped.stdout
    ds = Dataset(tmp_path / "ds")
    assert [e["episode_id"] for e in ds.episodes] == ["synthetic-000"]
    import cv2

    first = cv2.resize(synthetic_frame(0, 320, 240), (80, 60), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(ds.images[0], first)

    check = qt_cli("bags", "check", str(bags))
    assert check.returncode == 1 and "interrupted" in check.stdout and "synthetic-001" in check.stdout

    repaired = qt_cli("bags", "repair", str(bags))
    assert repaired.returncode == 0, repaired.stderr
    assert "repaired" in repaired.stdout and "outcome interrupted" in repaired.stdout
    status = inspect_bag(crashed)
    assert status.state == "unlabelled" and status.custom["episode_id"] == "synthetic-001"
    assert status.custom["instruction"] == "pick up the red cube #1"  # recovered from the START event
    assert (bags / bf.QUARANTINE_DIR / "synthetic-001").is_dir()  # the original files are kept
    with AnyReader([crashed]) as reader:  # every recovered frame is whole and in order
        camera = [c for c in reader.connections if c.topic.endswith("/camera/image_raw")]
        stamps = []
        for connection, _, raw in reader.messages(connections=camera):
            msg = reader.deserialize(raw, connection.msgtype)
            assert msg.data.size == 320 * 240 * 3
            stamps.append(bf.header_stamp_ns(raw))
    assert len(stamps) >= 10 and stamps == sorted(stamps)
    still_refused = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), "--skip-bad", *flags)
    assert "episode without outcome" in still_refused.stdout
    assert len(Dataset(tmp_path / "ds").episodes) == 1

    moved = qt_cli("bags", "quarantine", str(spare))
    assert moved.returncode == 0 and "1 bag(s) quarantined" in moved.stdout
    assert (spare / bf.QUARANTINE_DIR / crashed.name).is_dir() and not (spare / crashed.name).exists()
    assert qt_cli("bags", "check", str(spare)).stdout.strip() == "no bags found"


def test_file_size_limit_stops_the_episode_and_keeps_the_others(
    tmp_path: Path, recorder, source, qt_cli, convert_flags
) -> None:
    """A write that fails (here EFBIG from `ulimit -f`, as a full disk would) ends only that episode."""
    bags = tmp_path / "bags"
    rec = recorder(bags, ulimit_kb=3000)
    source("--steps", "5", "--rate", "20", "--size", "64x48", "--id-prefix", "small-")
    rec.wait_for_line("EPISODE_WRITTEN id=small-000", timeout=30)
    source("--steps", "40", "--rate", "20", "--size", "320x240", "--id-prefix", "big-")
    failed = rec.wait_for_line(r"RECORDING_FAILED id=big-000 error=(.*)", timeout=30)
    assert "File too large" in failed.group(1) and "earlier episodes are intact" in failed.group(1)
    source("--steps", "5", "--rate", "20", "--size", "64x48", "--id-prefix", "after-")
    rec.wait_for_line("EPISODE_WRITTEN id=after-000", timeout=30)  # the node kept running
    assert rec.popen.poll() is None
    assert inspect_bag(bags / "small-000").state == "ok"
    big = inspect_bag(bags / "big-000")
    assert big.state == "interrupted" and "File too large" in big.detail
    out = qt_cli(
        "convert", str(bags), "-o", str(tmp_path / "ds"), "--skip-bad", "--image-size", "48x64", *convert_flags
    )
    assert out.returncode == 0, out.stderr
    assert [e["episode_id"] for e in Dataset(tmp_path / "ds").episodes] == ["after-000", "small-000"]  # sorted bags


def _can_mount() -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    probe = Path(f"/tmp/qt-mount-probe-{os.getpid()}")
    probe.mkdir(exist_ok=True)
    ok = (
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(probe)], capture_output=True).returncode
        == 0
    )
    if ok:
        subprocess.run(["umount", str(probe)], check=True)
    probe.rmdir()
    return ok


@pytest.mark.skipif(not _can_mount(), reason="needs root and permission to mount a tmpfs")
def test_full_disk_and_read_only_disk(tmp_path: Path, recorder, source, qt_cli, convert_flags) -> None:
    """Real ENOSPC on a 6 MB tmpfs, then EROFS after remounting it read-only."""
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=6m", "tmpfs", str(disk)], check=True)
    try:
        rec = recorder(disk / "bags", "-p", "min_free_mb:=0.0")
        source("--steps", "5", "--rate", "20", "--size", "64x48", "--id-prefix", "small-")
        rec.wait_for_line("EPISODE_WRITTEN id=small-000", timeout=30)
        source("--steps", "40", "--rate", "20", "--size", "320x240", "--id-prefix", "big-")
        failed = rec.wait_for_line(r"RECORDING_FAILED id=big-000 error=(.*)", timeout=30)
        assert "No space left on device" in failed.group(1)
        shutil.rmtree(disk / "bags" / "big-000")  # the operator frees space
        subprocess.run(["mount", "-o", "remount,ro", str(disk)], check=True)
        source("--steps", "3", "--rate", "20", "--size", "64x48", "--id-prefix", "ro-")
        refused = rec.wait_for_line(r"RECORDING_REFUSED id=ro-000 error=(.*)", timeout=30)
        assert "Read-only file system" in refused.group(1)
        assert rec.popen.poll() is None
        out = qt_cli("convert", str(disk / "bags"), "-o", str(tmp_path / "ds"), "--image-size", "48x64", *convert_flags)
        assert out.returncode == 0, out.stderr
        assert [e["episode_id"] for e in Dataset(tmp_path / "ds").episodes] == ["small-000"]
        rec.stop()
    finally:
        subprocess.run(["umount", "-l", str(disk)], capture_output=True)
