"""Soak test of the episode recorder: 640x480 rgb8 camera at 30 Hz + actions at 30 Hz.

    . ./env.sh && python bench/logger_soak.py                 # 5 minutes (the judged run)
    python bench/logger_soak.py --seconds 15                  # short run
    python bench/logger_soak.py --recorder-qos best_effort    # compare subscriber QoS

Three processes talk over real DDS on this machine only (localhost discovery, a random
domain): a camera publisher, an action publisher and the recorder (qt_data_logger). This
process drives the episode through the recorder's services, then reads the finished bag
back and checks that every published message is in it: recorded count == published count,
and every camera frame index 0..N-1 present exactly once. It prints the recorder's CPU use
and the recorded MB/s. Exit status 0 only if nothing was dropped.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from helpers.processes import ChildProcess  # noqa: E402
from helpers.ros_isolation import isolate_ros_environment  # noqa: E402
from qt_data_logger.bag_status import load_metadata  # noqa: E402

CAMERA_TOPIC = "/camera/image_raw"
ACTION_TOPIC = "/qt/action"


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _call(node: object, client: object, request: object, timeout: float = 30.0) -> object:
    import rclpy

    if not client.wait_for_service(timeout_sec=timeout):
        raise RuntimeError(f"service {client.srv_name} not available")
    future = client.call_async(request)
    rclpy.spin_until_future_complete(node, future, timeout_sec=timeout)
    if not future.done():
        raise RuntimeError(f"service {client.srv_name} did not answer within {timeout} s")
    return future.result()


def _published(child: ChildProcess) -> tuple[int, dict[str, object]]:
    """(count, publisher diagnostics): whether every sample was acked and how late it ran."""
    match = child.wait_for_line(
        r"PUBLISHED topic=\S+ count=(\d+) .*acked=(\w+) max_late_s=([\d.]+) stalls=(\d+)", timeout=5
    )
    return int(match.group(1)), {
        "acked": match.group(2) == "True",
        "max_late_s": float(match.group(3)),
        "stalls": int(match.group(4)),
    }


def count_bag(bag: Path, prefix: str = "") -> dict[str, object]:
    """Messages per topic in the bag and the set of camera frame indices (first 8 data bytes)."""
    from rosbags.highlevel import AnyReader

    counts: dict[str, int] = {}
    frame_indices: list[int] = []
    with AnyReader([bag]) as reader:
        for connection, _, raw in reader.messages():
            topic = connection.topic.removeprefix(prefix)
            counts[topic] = counts.get(topic, 0) + 1
            if topic == CAMERA_TOPIC:
                msg = reader.deserialize(raw, connection.msgtype)
                frame_indices.append(int.from_bytes(bytes(msg.data[:8]), "little"))
    return {"counts": counts, "frame_indices": frame_indices}


def run_soak(
    seconds: float,
    workdir: Path,
    recorder_qos: str = "auto",
    camera_best_effort: bool = False,
    rate_hz: float = 30.0,
    size: str = "640x480",
    prefix: str = "",
) -> dict[str, object]:
    """Run one soak and return its figures (``ok`` is True only with zero drops).

    ``prefix`` is prepended to the camera/action topics, so a run cannot record another
    session's traffic on a shared machine.
    """
    isolate_ros_environment()
    import rclpy

    from qt_msgs.srv import EndEpisode, StartEpisode

    python = sys.executable
    bags = workdir / "bags"
    recorder = ChildProcess(
        [
            python,
            "-m",
            "qt_data_logger.recorder_node",
            "--ros-args",
            "-p",
            f"output_dir:={bags}",
            "-p",
            f"reliability:={recorder_qos}",
            "-p",
            f"control_rate_hz:={rate_hz}",
            "-p",
            f"camera_topic:={prefix}{CAMERA_TOPIC}",
            "-p",
            f"action_topic:={prefix}{ACTION_TOPIC}",
        ]
    )
    publishers: list[ChildProcess] = []
    rclpy.init()
    node = rclpy.create_node("qt_soak_driver")
    try:
        recorder.wait_for_line("RECORDER_READY", timeout=60)
        start = _call(
            node,
            node.create_client(StartEpisode, "/recorder/start_episode"),
            StartEpisode.Request(instruction="soak: hold still", task_id="soak", seed=-1),
        )
        if not start.accepted:
            raise RuntimeError(f"recorder refused the episode: {start.message}")
        camera_args = [
            python,
            "-m",
            "qt_data_logger.synthetic_source",
            "camera",
            "--rate",
            str(rate_hz),
            "--seconds",
            str(seconds),
            "--size",
            size,
            "--prefix",
            prefix,
        ]
        if camera_best_effort:
            camera_args.append("--best-effort")
        publishers.append(ChildProcess(camera_args))
        publishers.append(
            ChildProcess(
                [
                    python,
                    "-m",
                    "qt_data_logger.synthetic_source",
                    "actions",
                    "--rate",
                    str(rate_hz),
                    "--seconds",
                    str(seconds),
                    "--prefix",
                    prefix,
                ]
            )
        )
        for child in publishers:
            child.wait_for_line("MATCHED", timeout=60)
        cpu0, wall0 = _cpu_seconds(recorder.popen.pid), time.monotonic()
        for child in publishers:
            child.wait(timeout=seconds + 120)
        cpu1, wall1 = _cpu_seconds(recorder.popen.pid), time.monotonic()
        (camera_count, camera_info), (action_count, action_info) = (_published(p) for p in publishers)
        published = {CAMERA_TOPIC: camera_count, ACTION_TOPIC: action_count}
        end = _call(node, node.create_client(EndEpisode, "/recorder/end_episode"), EndEpisode.Request(outcome=1))
        if not end.accepted:
            raise RuntimeError(f"recorder refused to end the episode: {end.message}")
        written = recorder.wait_for_line(r"EPISODE_WRITTEN .*bytes=(\d+) parts=(\d+) path=(\S+)", timeout=60)
        bag = Path(written.group(3))
    finally:
        node.destroy_node()
        rclpy.try_shutdown()
        for child in publishers:
            child.stop()
        code = recorder.stop()
    found = count_bag(bag, prefix)
    counts = found["counts"]
    indices = found["frame_indices"]
    wall = wall1 - wall0
    recorded = {topic: counts.get(topic, 0) for topic in published}
    missing = sorted(set(range(published[CAMERA_TOPIC])) - set(indices))
    duplicates = len(indices) - len(set(indices))
    bag_bytes = sum(f.stat().st_size for f in bag.glob("*.mcap"))
    custom = load_metadata(bag).get("custom_data") or {}
    log = recorder.output()
    return {
        "seconds": round(wall, 2),
        "recorder_qos": recorder_qos,
        "camera_qos": "best_effort" if camera_best_effort else "reliable",
        "published": published,
        "recorded": recorded,
        "dropped": {topic: published[topic] - recorded[topic] for topic in published},
        "missing_frame_indices": missing[:20],
        "duplicate_frames": duplicates,
        "camera_hz": round(published[CAMERA_TOPIC] / wall, 2),
        "recorder_cpu_percent": round(100.0 * (cpu1 - cpu0) / wall, 1),
        "mb_per_s": round(int(written.group(1)) / 1e6 / wall, 2),
        "bag_mb": round(bag_bytes / 1e6, 1),
        "parts": int(written.group(2)),
        "recorder_exit": code,
        "recorder_dropped_messages": int(custom.get("dropped_messages", -1)),
        "recorder_sequence_gaps": int(custom.get("sequence_gaps", -1)),
        "recorder_late_messages": log.count("LATE_MESSAGE"),
        "publishers": {CAMERA_TOPIC: camera_info, ACTION_TOPIC: action_info},
        "bag": str(bag),
        "ok": recorded == published and not missing and duplicates == 0 and code == 0,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=300.0, help="publishing time (default 300 = 5 minutes)")
    parser.add_argument("--recorder-qos", choices=["auto", "reliable", "best_effort"], default="auto")
    parser.add_argument("--camera-best-effort", action="store_true", help="camera publisher QoS best effort")
    parser.add_argument("--keep", action="store_true", help="keep the bag (printed path)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="qt-soak-") as tmp:
        workdir = Path(tmp)
        if args.keep:
            workdir = Path(tempfile.mkdtemp(prefix="qt-soak-keep-"))
        result = run_soak(
            args.seconds, workdir, args.recorder_qos, args.camera_best_effort, prefix=f"/qt_soak_{os.getpid()}"
        )
    print(json.dumps(result, indent=1))
    print(
        f"SOAK {'PASS' if result['ok'] else 'FAIL'}: {result['seconds']} s, camera {result['published'][CAMERA_TOPIC]} "
        f"published / {result['recorded'][CAMERA_TOPIC]} recorded ({result['camera_hz']} Hz), actions "
        f"{result['published'][ACTION_TOPIC]} / {result['recorded'][ACTION_TOPIC]}, recorder CPU "
        f"{result['recorder_cpu_percent']} %, {result['mb_per_s']} MB/s"
    )
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
