"""Conversion throughput of `qt convert` against the raw rosbags read speed of the same bags.

    . ./env.sh && python bench/logger_convert.py                       # 8 bags x 100 steps, 640x480
    python bench/logger_convert.py --bags 4 --steps 50 --size 320x240

Writes episode bags (camera rgb8 + one action per frame, and the outcome frame after the last
action, as the recorder stores a sim episode) into a temporary folder, then in one run measures:
  raw read      rosbags AnyReader iterating every message (bytes only, no decoding)
  convert -j1   qt convert in one process (validate, decode, resize to 96x96, digest, write)
  convert -jN   the same with N worker processes
and prints camera frames/s of each and the ratio convert / raw read. The raw read runs once
untimed first, so every timed pass reads from the page cache.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from qt_data_logger.bag_writer import EpisodeBagWriter
from qt_data_logger.convert import ConvertOptions, convert
from qt_data_logger.synthetic_source import encode_frame, synthetic_actions, synthetic_frame

from qt_data_logger import bag_format as bf

T0 = 1_700_000_000_000_000_000


def _header(types: dict, ns: int, frame_id: str) -> object:
    stamp = types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)
    return types["std_msgs/msg/Header"](stamp=stamp, frame_id=frame_id)


def make_bags(root: Path, count: int, steps: int, width: int, height: int, rate_hz: float = 30.0) -> list[Path]:
    """Episode bags with the recorder's layout and labels (written by EpisodeBagWriter)."""
    store = bf.episode_typestore()
    types = store.types
    specs = [
        bf.TopicSpec.make(t, m, store)
        for t, m in (
            ("/camera/image_raw", "sensor_msgs/msg/Image"),
            ("/qt/action", "qt_msgs/msg/ArmAction"),
            ("/episode/events", "qt_msgs/msg/EpisodeEvent"),
        )
    ]
    period = int(1e9 / rate_hz)
    frames = [encode_frame(synthetic_frame(i, width, height), "rgb8")[0] for i in range(16)]

    def camera_image(ns: int, frame: bytes) -> object:
        return types["sensor_msgs/msg/Image"](
            header=_header(types, ns, "camera_optical_frame"), height=height, width=width, encoding="rgb8",
            is_bigendian=0, step=width * 3, data=np.frombuffer(frame, np.uint8),
        )

    paths = []
    for b in range(count):
        path = root / f"episode_{b:03d}"
        writer = EpisodeBagWriter(path, specs, path.name, fsync=False)
        writer.open()
        values = synthetic_actions(steps, b)
        for i in range(steps):
            ns = T0 + b * 10**12 + i * period
            image = camera_image(ns, frames[(b + i) % len(frames)])
            writer.write("/camera/image_raw", ns, bytes(store.serialize_cdr(image, "sensor_msgs/msg/Image")))
            action = types["qt_msgs/msg/ArmAction"](
                header=_header(types, ns + 1000, "base_link"),
                dimension_names=["dx", "dy", "dz", "dyaw", "gripper"],
                values=values[i],
                bins=np.zeros(5, np.uint16),
                num_bins=256,
                source=2,
            )
            writer.write("/qt/action", ns + 1000, bytes(store.serialize_cdr(action, "qt_msgs/msg/ArmAction")))
        final = T0 + b * 10**12 + steps * period  # the outcome frame after the last action
        image = camera_image(final, frames[0])
        writer.write("/camera/image_raw", final, bytes(store.serialize_cdr(image, "sensor_msgs/msg/Image")))
        outcome = "success" if b % 2 == 0 else "failure"
        writer.finalize(
            {
                bf.KEY_FORMAT: bf.BAG_FORMAT,
                bf.KEY_EPISODE_ID: path.name,
                bf.KEY_OUTCOME: outcome,
                bf.KEY_INSTRUCTION: f"task {b % 3}",
                bf.KEY_CONTROL_RATE: f"{rate_hz:g}",
            }
        )
        paths.append(path)
    return paths


def raw_read(bags: list[Path]) -> tuple[int, int]:
    """(camera frames, bytes) read by rosbags with no deserialisation."""
    from rosbags.highlevel import AnyReader

    frames = size = 0
    for bag in bags:
        with AnyReader([bag]) as reader:
            for connection, _, raw in reader.messages():
                size += len(raw)
                frames += connection.topic == "/camera/image_raw"
    return frames, size


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bags", type=int, default=8)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--size", default="640x480", help="camera WIDTHxHEIGHT")
    parser.add_argument("--image-size", type=int, default=96, help="dataset image side")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="qt-convert-bench-") as tmp:
        root = Path(tmp)
        bags = make_bags(root / "bags", args.bags, args.steps, width, height)
        raw_read(bags)  # warm the page cache
        t = time.perf_counter()
        frames, size = raw_read(bags)
        raw_s = time.perf_counter() - t
        options = ConvertOptions(image_shape=(args.image_size, args.image_size, 3))
        results = {}
        for jobs in sorted({1, args.jobs}):
            t = time.perf_counter()
            report = convert(bags, root / f"ds_{jobs}", options, jobs=jobs, progress=False, overwrite=True)
            results[jobs] = (time.perf_counter() - t, report.frames)
    raw_fps = frames / raw_s
    out = {
        "bags": args.bags,
        "frames": frames,
        "camera": args.size,
        "dataset_image": args.image_size,
        "bag_mb": round(size / 1e6, 1),
        "cpus": os.cpu_count(),
        "raw_read_frames_per_s": round(raw_fps, 1),
        "raw_read_mb_per_s": round(size / 1e6 / raw_s, 1),
    }
    for jobs, (seconds, steps) in results.items():
        assert steps == args.bags * args.steps, (steps, args.bags * args.steps)
        # Same unit as the raw read: camera frames read (and decoded) per second.
        out[f"convert_j{jobs}_frames_per_s"] = round(frames / seconds, 1)
        out[f"convert_j{jobs}_ratio_to_raw_read"] = round(frames / seconds / raw_fps, 3)
    out["dataset_frames"] = args.bags * args.steps
    print(json.dumps(out, indent=1))
    best = min(results, key=lambda j: results[j][0])
    print(
        f"CONVERT {frames} frames ({args.size} -> {args.image_size}px): raw rosbags read {raw_fps:.0f} frames/s; "
        + "; ".join(
            f"qt convert -j{j} {out[f'convert_j{j}_frames_per_s']:.0f} frames/s "
            f"(ratio {out[f'convert_j{j}_ratio_to_raw_read']:.2f})"
            for j in results
        )
        + f"; best -j{best}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
