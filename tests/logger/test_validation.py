"""Every validation error of qt convert, each triggered by a crafted bad bag (real MCAP files)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.episode_bags import T0, Msg, craft_episode, header, image_msg, write_bag
from qt_common.dataset import Dataset
from qt_data_logger.convert import BagError, ConvertError, ConvertOptions, convert, read_episode

from qt_data_logger import bag_format as bf

OPTIONS = ConvertOptions(image_shape=(24, 32, 3))


def _bad_bag(tmp_path: Path, name: str, mutate, **kwargs) -> Path:
    episode = craft_episode(**kwargs)
    messages = mutate(episode.messages) or episode.messages
    return write_bag(tmp_path / "bags" / name, messages, episode.custom)


def _error(bag: Path) -> BagError:
    with pytest.raises(BagError) as caught:
        read_episode(bag, OPTIONS)
    return caught.value


def _first(messages: list[Msg], topic: str, n: int = 0) -> Msg:
    return [m for m in messages if m.topic == topic][n]


def test_missing_action_topic(tmp_path: Path) -> None:
    bag = _bad_bag(tmp_path, "no_actions", lambda ms: [m for m in ms if m.topic != "/qt/action"])
    err = _error(bag)
    assert err.bag == str(bag) and err.topic == "/qt/action"
    assert "missing topic" in str(err) and "/camera/image_raw" in str(err)  # lists what the bag has


def test_missing_camera_topic(tmp_path: Path) -> None:
    bag = _bad_bag(tmp_path, "no_camera", lambda ms: [m for m in ms if m.topic != "/camera/image_raw"])
    err = _error(bag)
    assert "/camera/image_raw" in err.topic and "missing topic" in err.problem


def test_unknown_image_encoding(tmp_path: Path) -> None:
    def mutate(ms: list[Msg]) -> None:
        _first(ms, "/camera/image_raw", 2).msg.encoding = "yuv422"

    err = _error(_bad_bag(tmp_path, "yuv", mutate))
    assert (err.topic, err.field) == ("/camera/image_raw", "encoding")
    assert "message 2" in err.problem and "yuv422" in err.problem and "rgb8" in err.problem


def test_image_data_shorter_than_its_size(tmp_path: Path) -> None:
    def mutate(ms: list[Msg]) -> None:
        msg = _first(ms, "/camera/image_raw", 1).msg
        msg.data = msg.data[:100]

    err = _error(_bad_bag(tmp_path, "short", mutate))
    assert (err.topic, err.field) == ("/camera/image_raw", "data")


@pytest.mark.parametrize("topic", ["/camera/image_raw", "/qt/action"])
def test_non_monotonic_stamps(tmp_path: Path, topic: str) -> None:
    def mutate(ms: list[Msg]) -> None:
        _first(ms, topic, 4).msg.header = header(T0)  # earlier than message 3

    err = _error(_bad_bag(tmp_path, "backwards", mutate))
    assert (err.topic, err.field) == (topic, "header.stamp")
    assert "non-monotonic" in err.problem and "message 4" in err.problem


def test_nan_action(tmp_path: Path) -> None:
    def mutate(ms: list[Msg]) -> None:
        _first(ms, "/qt/action", 3).msg.values[2] = np.nan

    err = _error(_bad_bag(tmp_path, "nan", mutate))
    assert (err.topic, err.field) == ("/qt/action", "values[2]")
    assert "message 3" in err.problem and "dz" in err.problem and "not finite" in err.problem


def test_out_of_range_action(tmp_path: Path) -> None:
    def mutate(ms: list[Msg]) -> None:
        _first(ms, "/qt/action", 5).msg.values[0] = 0.5  # dx limit is 0.02 m per step

    err = _error(_bad_bag(tmp_path, "range", mutate))
    assert (err.topic, err.field) == ("/qt/action", "values[0]")
    assert "outside [-0.02, 0.02]" in err.problem and "dx" in err.problem


def test_action_with_another_spec(tmp_path: Path) -> None:
    def mutate(ms: list[Msg]) -> None:
        _first(ms, "/qt/action", 0).msg.dimension_names = ["x", "y", "z", "yaw", "grip"]

    err = _error(_bad_bag(tmp_path, "spec", mutate))
    assert (err.topic, err.field) == ("/qt/action", "dimension_names")


def test_episode_without_outcome(tmp_path: Path) -> None:
    episode = craft_episode(outcome="")  # no END event
    episode.custom[bf.KEY_OUTCOME] = ""
    bag = write_bag(tmp_path / "bags" / "no_outcome", episode.messages, episode.custom)
    err = _error(bag)
    assert "episode without outcome" in err.problem and "outcome" in err.field


def test_episode_finalised_by_shutdown_is_not_training_data(tmp_path: Path) -> None:
    episode = craft_episode(outcome="")
    episode.custom[bf.KEY_OUTCOME] = bf.OUTCOME_INTERRUPTED
    episode.custom[bf.KEY_END_REASON] = "shutdown"
    err = _error(write_bag(tmp_path / "bags" / "sigint", episode.messages, episode.custom))
    assert err.field == "custom_data.outcome" and "interrupted" in err.problem and "qt bags label" in err.problem


def test_outcome_label_disagrees_with_end_event(tmp_path: Path) -> None:
    episode = craft_episode(outcome="failure")
    episode.custom[bf.KEY_OUTCOME] = "success"
    err = _error(write_bag(tmp_path / "bags" / "disagree", episode.messages, episode.custom))
    assert (err.topic, err.field) == ("/episode/events", "outcome")


def test_frozen_camera(tmp_path: Path) -> None:
    bag = _bad_bag(
        tmp_path,
        "frozen",
        lambda ms: [
            m for i, m in enumerate(ms) if not (m.topic == "/camera/image_raw" and m.log_ns > T0 + 250_000_000)
        ],
    )
    err = _error(bag)
    assert (err.topic, err.field) == ("/camera/image_raw", "header.stamp") and "no camera frame within" in err.problem


def test_unfinalised_bags_are_refused(tmp_path: Path) -> None:
    episode = craft_episode()
    marked = write_bag(tmp_path / "bags" / "marked", episode.messages, episode.custom)
    (marked / bf.RECORDING_MARKER).write_text('{"pid": 999999999, "host": "elsewhere"}')
    err = _error(marked)
    assert err.field == "metadata.yaml" and "interrupted" in err.problem and "qt bags" in err.problem
    headless = write_bag(tmp_path / "bags" / "headless", episode.messages, episode.custom)
    (headless / "metadata.yaml").unlink()
    # Data files without metadata.yaml or marker are not a bag directory (issue 13): refused, left alone.
    assert "not_a_bag" in _error(headless).problem and "left alone" in _error(headless).problem


def test_first_bad_bag_stops_and_leaves_the_dataset_unchanged(tmp_path: Path) -> None:
    good = craft_episode(seed=1)
    good_bag = write_bag(tmp_path / "bags" / "a_good", good.messages, good.custom)
    out = tmp_path / "ds"
    before = convert([good_bag], out, OPTIONS, jobs=1, progress=False).dataset.digest()
    bad = craft_episode(seed=2)
    _first(bad.messages, "/qt/action", 1).msg.values[4] = np.inf
    bad_bag = write_bag(tmp_path / "bags" / "b_bad", bad.messages, bad.custom)
    other = craft_episode(seed=3)
    write_bag(tmp_path / "bags" / "c_other", other.messages, other.custom)
    with pytest.raises(ConvertError) as caught:
        convert([tmp_path / "bags"], out, OPTIONS, jobs=1, progress=False)
    assert str(bad_bag) in str(caught.value) and "values[4]" in str(caught.value)
    assert Dataset(out).digest() == before and len(Dataset(out).episodes) == 1
    report = convert([tmp_path / "bags"], out, OPTIONS, jobs=1, progress=False, skip_bad=True)
    assert [Path(r.bag).name for r in report.bad] == ["b_bad"]
    assert [Path(r.bag).name for r in report.added] == ["c_other"]
    assert len(Dataset(out).episodes) == 2


def test_cli_skip_bad_reports_what_it_skipped(tmp_path: Path) -> None:
    good = craft_episode(seed=1)
    write_bag(tmp_path / "bags" / "good", good.messages, good.custom)
    bad = craft_episode(seed=2)
    _first(bad.messages, "/camera/image_raw", 0).msg = image_msg(T0, np.zeros((24, 32, 3), np.uint8), "rgb8")
    _first(bad.messages, "/camera/image_raw", 0).msg.encoding = "16UC1"
    write_bag(tmp_path / "bags" / "bad", bad.messages, bad.custom)
    cmd = [
        sys.executable,
        "-m",
        "qt_common.cli",
        "convert",
        str(tmp_path / "bags"),
        "-o",
        str(tmp_path / "ds"),
        "--image-size",
        "24x32",
        "-j",
        "1",
        "--no-progress",
    ]
    refused = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1
    assert "bags/bad: topic /camera/image_raw, field encoding" in refused.stderr and "16UC1" in refused.stderr
    assert not (tmp_path / "ds").exists()
    skipped = subprocess.run([*cmd, "--skip-bad"], capture_output=True, text=True, timeout=120)
    assert skipped.returncode == 0, skipped.stderr
    assert "skipped 1 bad bag(s)" in skipped.stdout and "16UC1" in skipped.stdout
    assert "converted 1 episode(s)" in skipped.stdout
