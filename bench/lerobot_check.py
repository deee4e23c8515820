"""Load a `qt convert --format lerobot` dataset with the real `lerobot` package and compare it
with the qt dataset of the same bags (issue 17).

    . ./env.sh && python bench/lerobot_check.py                     # 12 sim episodes, pick tasks
    python bench/lerobot_check.py --episodes 40 --image 96
    python bench/lerobot_check.py --bags bags/                      # bags you already have

Steps: record sim episodes in process (`qt collect --inprocess`), convert the same bags twice
(`qt convert` and `qt convert --format lerobot`), then, in a separate virtual environment that
has lerobot 0.4.4 (created on first use; never a dependency of the project), open the LeRobot
dataset with `lerobot.datasets.lerobot_dataset.LeRobotDataset`, read every frame through its
`__getitem__` (video decoded by torchcodec) and compare with the qt dataset: action values ->
the same bins, rewards, done, success, proprio state, task strings exactly; frames within the
video codec's tolerance (mean and 99th percentile absolute difference, 0-255 scale, printed).

Why the separate venv looks like this (measured on the project's machines): lerobot 0.4.4 pins
torch < 2.11 and torchcodec < 0.11, whose PyPI builds pull gigabytes of CUDA; the only torch that
installs without CUDA here is the CPU build of 2.13.0. So the venv gets torch==2.13.0 and lerobot
with `--no-deps` plus its dataset dependencies, torchcodec 0.13 (built for torch 2.13) and
torchvision 0.28. PyPI's torchvision is built against CUDA torch: its C++ ops cannot load with the
CPU torch, and its import then fails registering fake kernels for two of them (nms, qnms); the
loader declares those two operator schemas first (no torchvision operator is used to load a
dataset). torchcodec decodes with the system FFmpeg: Debian 12 `apt-get install libavcodec59
libavformat59 libavutil57 libswscale6 libswresample4 libavdevice59 libavfilter8`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

VENV_PINS_FIRST = ["torch==2.13.0"]  # the CPU wheel (no CUDA download); before anything pulls torch
VENV_PINS_NO_DEPS = ["lerobot==0.4.4", "torchvision==0.28.0", "torchcodec==0.13.0"]
VENV_PINS = [
    "accelerate==1.15.0", "av==15.1.0", "datasets==4.8.5", "deepdiff==8.6.2", "draccus==0.10.0", "einops==0.8.2",
    "fsspec==2026.2.0", "huggingface-hub==0.35.3", "imageio==2.38.1", "jsonlines==4.0.0", "numpy==2.4.6",
    "packaging==25.0", "pandas==3.1.1", "pillow==13.0.0", "pyarrow==26.0.1", "termcolor==3.3.0",
]
FFMPEG_LIBS = ("libavutil.so.57", "libavcodec.so.59", "libavformat.so.59")

LOADER = r'''
import json, sys
import numpy as np
import torch
# PyPI torchvision + CPU torch: declare the two operators whose fake kernels torchvision registers
# at import (see bench/lerobot_check.py); nothing here calls them.
_tv = torch.library.Library("torchvision", "DEF")
for _op in ("nms", "qnms"):
    _tv.define(_op + "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
import lerobot
from lerobot.datasets.lerobot_dataset import LeRobotDataset

root, out = sys.argv[1], sys.argv[2]
ds = LeRobotDataset("local/qt_export", root=root, video_backend="torchcodec")
keys = ["action", "next.reward", "next.done", "next.success", "episode_index", "frame_index", "timestamp"]
if "observation.state" in ds.features:
    keys.append("observation.state")
arrays = {k: [] for k in keys}
images, tasks = [], []
for i in range(len(ds)):
    item = ds[i]
    for k in keys:
        arrays[k].append(np.asarray(item[k]))
    images.append((item["observation.images.camera"].numpy().transpose(1, 2, 0) * 255.0).round().astype(np.uint8))
    tasks.append(item["task"])
np.savez(out, images=np.stack(images), **{k.replace(".", "_"): np.stack(v) for k, v in arrays.items()})
print(json.dumps({"lerobot": lerobot.__version__ if hasattr(lerobot, "__version__") else "",
                  "frames": len(ds), "episodes": ds.meta.total_episodes, "fps": ds.fps, "tasks": tasks,
                  "codec": ds.meta.features["observation.images.camera"]["info"]["video.codec"]}))
'''


def run(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    print("+ " + " ".join(cmd), flush=True)
    return subprocess.run(cmd, check=True, **kwargs)


def default_venv() -> Path:
    return Path(os.environ.get("QT_CACHE_DIR") or Path.home() / ".cache" / "qt-robot") / "lerobot-venv"


def ensure_venv(venv: Path) -> Path:
    """The loader's venv, created once (a stamp records the pins it was built with)."""
    python = venv / "bin" / "python"
    stamp = venv / ".qt-lerobot-pins"
    wanted = json.dumps([VENV_PINS_FIRST, VENV_PINS_NO_DEPS, VENV_PINS])
    if python.exists() and stamp.exists() and stamp.read_text() == wanted:
        return python
    base = os.environ.get("QT_PYTHON") or "python3.11"
    run([base, "-m", "venv", str(venv)])
    pip = [str(python), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run(pip + VENV_PINS_FIRST)
    run([*pip, "--no-deps", *VENV_PINS_NO_DEPS])
    run(pip + VENV_PINS)
    stamp.write_text(wanted)
    return python


def check_ffmpeg() -> None:
    found = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    missing = [lib for lib in FFMPEG_LIBS if lib not in found]
    if missing:
        sys.exit(f"lerobot_check: torchcodec needs FFmpeg's shared libraries ({missing} missing); on Debian 12: "
                 "apt-get install libavcodec59 libavformat59 libavutil57 libswscale6 libswresample4 "
                 "libavdevice59 libavfilter8")


def compare(qt_dir: Path, loaded: Path, meta: dict) -> dict:
    """Figures and exact checks: the LeRobot frames as lerobot returns them vs the qt dataset."""
    from qt_common.dataset import Dataset

    qt = Dataset(qt_dir)
    got = np.load(loaded)
    spec = qt.action_spec
    n = len(qt)
    problems = []
    if int(meta["frames"]) != n:
        problems.append(f"frames: lerobot {meta['frames']}, qt {n}")
    bins = spec.values_to_bins(got["action"].astype(np.float64))
    if not np.array_equal(bins, np.asarray(qt.bins)):
        problems.append(f"action: {int((bins != np.asarray(qt.bins)).any(axis=1).sum())} frame(s) map to other bins")
    if not np.array_equal(got["next_reward"].reshape(-1), np.asarray(qt.reward)):
        problems.append("next.reward differs from the qt reward")
    if not np.array_equal(got["next_done"].reshape(-1).astype(bool), np.asarray(qt.done).astype(bool)):
        problems.append("next.done differs from the qt done")
    success = np.asarray(qt.reward) > 0
    if not np.array_equal(got["next_success"].reshape(-1).astype(bool), success):
        problems.append("next.success differs from the last step of the successful episodes")
    if not np.array_equal(got["episode_index"].reshape(-1), np.asarray(qt.episode_index)):
        problems.append("episode_index differs")
    if "observation_state" in got.files and not np.allclose(got["observation_state"], qt.proprio, atol=1e-6):
        problems.append("observation.state differs from the qt proprio")
    instructions = [qt.instructions[i] for i in np.asarray(qt.arrays["instruction_index"])]
    if list(meta["tasks"]) != instructions:
        problems.append("task strings differ from the qt instructions")
    diff = np.abs(got["images"].astype(np.int16) - np.asarray(qt.images).astype(np.int16))
    figures = {
        "frames": n, "episodes": int(meta["episodes"]), "codec": meta["codec"], "fps": meta["fps"],
        "image_mean_abs_diff": round(float(diff.mean()), 3),
        "image_p99_abs_diff": float(np.percentile(diff, 99)),
        "image_max_abs_diff": int(diff.max()),
        # the worst frame's mean: a frame decoded at the wrong time would stand out here
        "image_worst_frame_mean_abs_diff": round(float(diff.mean(axis=(1, 2, 3)).max()), 3),
        "actions_bins_equal": not any(p.startswith("action") for p in problems),
        "problems": problems,
    }
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bags", default="", help="existing bags (default: record --episodes sim episodes)")
    parser.add_argument("--episodes", type=int, default=12)
    parser.add_argument("--tasks", default="pick/")
    parser.add_argument("--image", type=int, default=64, help="sim camera and dataset image size")
    parser.add_argument("--venv", default=str(default_venv()), help="the lerobot venv (created on first use)")
    parser.add_argument("--crf", type=int, default=30, help="video quality of the export (LeRobot's default 30)")
    parser.add_argument("--max-mean-diff", type=float, default=8.0,
                        help="fail when the mean absolute pixel difference exceeds this (0-255 scale)")
    parser.add_argument("--work", default="", help="keep the bags and datasets here (default: a temporary folder)")
    args = parser.parse_args(argv)
    check_ffmpeg()
    python = ensure_venv(Path(args.venv))
    with tempfile.TemporaryDirectory(prefix="qt-lerobot-check-") as tmp:
        work = Path(args.work or tmp)
        work.mkdir(parents=True, exist_ok=True)
        bags = Path(args.bags) if args.bags else work / "bags"
        qt = [str(Path(sys.executable).parent / "qt")]
        if not args.bags:
            run([*qt, "collect", "--inprocess", "--episodes", str(args.episodes), "--bags", str(bags), "--tasks",
                      args.tasks, "--image", str(args.image), "--seed", "0"], stdout=subprocess.DEVNULL)
        size = ["--image-size", str(args.image), "--no-progress", "-j", "1"]
        run([*qt, "convert", str(bags), "-o", str(work / "qt"), "--overwrite", *size])
        started = time.perf_counter()
        run([*qt, "convert", str(bags), "-o", str(work / "lerobot"), "--format", "lerobot", "--overwrite",
                  "--crf", str(args.crf), *size])
        export_s = time.perf_counter() - started
        loader = work / "load_with_lerobot.py"
        loader.write_text(LOADER)
        started = time.perf_counter()
        out = run([str(python), str(loader), str(work / "lerobot"), str(work / "loaded.npz")], capture_output=True,
                  text=True)
        load_s = time.perf_counter() - started
        meta = json.loads(out.stdout.strip().splitlines()[-1])
        figures = compare(work / "qt", work / "loaded.npz", meta)
        figures.update({"export_s": round(export_s, 2), "lerobot_load_s": round(load_s, 2), "crf": args.crf,
                        "mp4_bytes": sum(p.stat().st_size for p in (work / "lerobot" / "videos").rglob("*.mp4"))})
        if figures["image_mean_abs_diff"] > args.max_mean_diff:
            figures["problems"].append(f"frames: mean absolute difference {figures['image_mean_abs_diff']} > "
                                       f"{args.max_mean_diff}")
        print(json.dumps(figures, indent=2))
        return 1 if figures["problems"] else 0


if __name__ == "__main__":
    sys.exit(main())
