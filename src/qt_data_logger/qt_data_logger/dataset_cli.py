"""``qt dataset info DATASET`` and ``qt dataset sheet DATASET --episode N -o sheet.png``.

The sheet shows an episode as people check it: frames in time order, under each one a bar
per action dimension (drawn from the neutral bin: right/green = positive, left/red =
negative, through qt_common.action_spec) and a caption with the bins, reward and return.
"""

from __future__ import annotations

import argparse
import json
import sys

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.contact_sheet import make_contact_sheet, save_png
from qt_common.dataset import Dataset, DatasetError

BAR_ROW_PX = 7


def action_strip(bins: np.ndarray, spec: ActionSpec, width: int) -> np.ndarray:
    """One row per dimension: a bar from the neutral bin to the chosen bin, on a grey track."""
    rows = spec.num_dims
    strip = np.full((rows * BAR_ROW_PX, width, 3), 235, np.uint8)
    last = spec.num_bins - 1
    neutral = spec.neutral_bins
    for d in range(rows):
        top = d * BAR_ROW_PX + 1
        bottom = top + BAR_ROW_PX - 2
        centre = round(neutral[d] / last * (width - 1))
        x = round(int(bins[d]) / last * (width - 1))
        colour = (40, 160, 60) if x >= centre else (200, 50, 40)
        lo, hi = sorted((centre, x))
        strip[top:bottom, lo : hi + 1] = colour
        strip[top:bottom, centre] = (60, 60, 60)
    return strip


def sheet_for_episode(
    dataset: Dataset, episode: int, max_frames: int = 32, scale: int = 2, columns: int = 8
) -> np.ndarray:
    """Contact sheet (HxWx3 uint8) of one episode with its action bins drawn under every frame."""
    if not 0 <= episode < len(dataset.episodes):
        raise DatasetError(f"episode: expected 0..{len(dataset.episodes) - 1}, got {episode}")
    record = dataset.episodes[episode]
    frames = dataset.episode_frames(episode)
    length = frames.stop - frames.start
    picks = np.unique(np.linspace(0, length - 1, num=min(max_frames, length)).round().astype(int))
    spec = dataset.action_spec
    short = {"gripper": "grip"}
    tiles, captions = [], []
    for t in picks:
        i = frames.start + int(t)
        image = np.asarray(dataset.images[i])
        image = np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)
        bins = np.asarray(dataset.bins[i])
        tiles.append(np.concatenate([image, action_strip(bins, spec, image.shape[1])], axis=0))
        names = [f"{short.get(n, n)} {int(b)}" for n, b in zip(spec.names, bins, strict=True)]
        half = (len(names) + 1) // 2
        captions.append(
            f"t={int(t)} r={float(dataset.reward[i]):g} G={float(dataset.return_to_go[i]):.2f}\n"
            + " ".join(names[:half])
            + "\n"
            + " ".join(names[half:])
        )
    text = dataset.instructions[record["instruction_index"]]
    title = (
        f"{dataset.path.name} episode {episode} ({record.get('episode_id', '')}): '{text}' "
        f"{record['outcome']}, {length} steps; bars: action bins vs neutral ({', '.join(spec.names)})"
    )
    return make_contact_sheet(tiles, captions, columns=columns, title=title)


def _info(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    summary = dataset.summary()
    if args.json:
        summary["episodes_detail"] = dataset.episodes if args.episodes else None
        print(json.dumps(summary, indent=1))
        return 0
    print(f"dataset      {summary['path']}")
    print(f"schema       {summary['schema_version']}   digest {summary['digest']}")
    print(
        f"episodes     {summary['episodes']}   frames {summary['frames']}   success rate {summary['success_rate']:.0%}"
    )
    print(f"image shape  {summary['image_shape']}   proprio dim {dataset.proprio.shape[1]}   gamma {summary['gamma']}")
    print(f"actions      {' '.join(summary['action_dims'])} ({dataset.action_spec.num_bins} bins)")
    sources = ", ".join(f"{source}: " + " ".join(f"{n} {outcome}" for outcome, n in sorted(counts.items()))
                        for source, counts in sorted(summary["per_source"].items()))
    print(f"sources      {sources}")
    print("instructions")
    for text, count in sorted(summary["per_instruction"].items()):
        print(f"  {count:5d}  {text}")
    if args.episodes:
        print("episodes")
        for i, e in enumerate(dataset.episodes):
            print(
                f"  {i:4d}  {e.get('episode_id', ''):24s} {e['outcome']:8s} {e.get('source', 'unknown'):7s} "
                f"{e['length']:5d} steps  "
                f"{dataset.instructions[e['instruction_index']]!r}  {e.get('source_bag', '')}"
            )
    return 0


def _sheet(args: argparse.Namespace) -> int:
    dataset = Dataset(args.dataset)
    image = sheet_for_episode(dataset, args.episode, args.max_frames, args.scale, args.columns)
    path = save_png(args.output, image)
    print(f"wrote {path} ({image.shape[1]}x{image.shape[0]})")
    return 0


def _import_lerobot(args: argparse.Namespace) -> int:
    from qt_data_logger import lerobot_import

    return lerobot_import.main(args)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qt dataset", description="Inspect a training dataset.")
    sub = parser.add_subparsers(dest="command", required=True)
    info = sub.add_parser("info", help="summary: episodes, frames, success rate, instructions")
    info.add_argument("dataset")
    info.add_argument("--episodes", action="store_true", help="also list every episode")
    info.add_argument("--json", action="store_true")
    info.set_defaults(run=_info)
    sheet = sub.add_parser("sheet", help="contact sheet PNG of one episode with its action bins")
    sheet.add_argument("dataset")
    sheet.add_argument("--episode", "-e", type=int, default=0)
    sheet.add_argument("-o", "--output", required=True, help="PNG path")
    sheet.add_argument("--max-frames", type=int, default=32)
    sheet.add_argument("--scale", type=int, default=2, help="enlarge frames by this factor")
    sheet.add_argument("--columns", type=int, default=8)
    sheet.set_defaults(run=_sheet)
    imported = sub.add_parser("import-lerobot", help="a local LeRobot v3.0 dataset -> a training dataset "
                              "(qt_data_logger.lerobot_import; docs/DATA.md)")
    imported.add_argument("source", help="LeRobot dataset directory (meta/info.json, data/, videos/)")
    imported.add_argument("-o", "--output", required=True, help="qt dataset directory (appended to if it exists)")
    imported.add_argument("--mapping", default="", help="mapping YAML: image/proprio/action features, action "
                          "units -> bins, where success comes from (default: the features qt convert --format "
                          "lerobot writes)")
    imported.add_argument("--image-size", default="", help="N or HxW (default: the mapping's, else the video's)")
    imported.add_argument("--overwrite", action="store_true", help="rebuild the dataset instead of appending")
    imported.set_defaults(run=_import_lerobot)
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except DatasetError as exc:
        print(f"qt dataset: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
