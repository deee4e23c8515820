"""qt convert on crafted real bags: alignment rule, images, labels, returns, append, parallel runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from helpers.episode_bags import (
    PERIOD,
    T0,
    Msg,
    action_msg,
    compressed_msg,
    craft_episode,
    event_msg,
    image_msg,
    write_bag,
)
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset, monte_carlo_returns
from qt_data_logger.convert import ConvertOptions, convert, read_episode
from qt_data_logger.images import resize_rgb
from qt_data_logger.synthetic_source import synthetic_frame

SPEC = ActionSpec.default()


def _options(size: tuple[int, int], **kwargs) -> ConvertOptions:
    width, height = size
    return ConvertOptions(image_shape=(height, width, 3), **kwargs)


def test_frames_bins_rewards_returns_match_what_was_recorded(crafted, tmp_path: Path) -> None:
    good, ep_a = crafted("a", steps=9, seed=1, outcome="success", instruction="pick up the red cube")
    bad, ep_b = crafted("b", steps=6, seed=2, outcome="failure", instruction="push the blue cube")
    report = convert([good, bad], tmp_path / "ds", _options((32, 24)), gamma=0.9, jobs=1, progress=False)
    ds = report.dataset
    assert len(ds.episodes) == 2 and len(ds) == 15
    assert [e["outcome"] for e in ds.episodes] == ["success", "failure"]
    np.testing.assert_array_equal(ds.images[:9], np.stack(ep_a.frames))
    np.testing.assert_array_equal(ds.images[9:], np.stack(ep_b.frames))
    expected_bins = SPEC.values_to_bins(np.concatenate([ep_a.values, ep_b.values]).astype(np.float64))
    np.testing.assert_array_equal(ds.bins[:], expected_bins)
    reward = np.zeros(15, np.float32)
    reward[8] = 1.0
    np.testing.assert_array_equal(ds.reward[:], reward)
    assert ds.done[:].nonzero()[0].tolist() == [8, 14]
    np.testing.assert_allclose(ds.return_to_go[:9], 0.9 ** np.arange(8, -1, -1), rtol=1e-6)
    np.testing.assert_array_equal(ds.return_to_go[9:], np.zeros(6, np.float32))
    np.testing.assert_allclose(ds.return_to_go[:], monte_carlo_returns(reward, ds.done[:], 0.9))
    assert [ds.instructions[e["instruction_index"]] for e in ds.episodes] == [ep_a.instruction, ep_b.instruction]
    assert all(len(e["bag_digest"]) == 32 for e in ds.episodes)
    assert ds.episodes[0]["source_bag"] == str(good.resolve())


def test_each_action_takes_the_newest_frame_at_or_before_it(tmp_path: Path) -> None:
    """Camera at 30 Hz, actions at 10 Hz stamped between frames, two actions before any frame."""
    msgs: list[Msg] = []
    frames = [synthetic_frame(i, 16, 12) for i in range(31)]
    for i, frame in enumerate(frames):
        ns = T0 + i * PERIOD // 3
        msgs.append(Msg("/camera/image_raw", "sensor_msgs/msg/Image", ns, image_msg(ns, frame)))
    action_stamps = [T0 - 20_000_000, T0 - 10_000_000] + [T0 + k * PERIOD + 40_000_000 for k in range(10)]
    action_stamps.append(T0 + 30 * PERIOD // 3)  # exactly the final frame's stamp
    values = np.zeros((len(action_stamps), 5), np.float32)
    for k, ns in enumerate(action_stamps):
        msgs.append(Msg("/qt/action", "qt_msgs/msg/ArmAction", ns, action_msg(ns, values[k])))
    msgs.sort(key=lambda m: m.log_ns)
    episode = craft_episode()
    bag = write_bag(tmp_path / "align", msgs, episode.custom)
    result = read_episode(bag, _options((16, 12)))
    # 40 ms after control tick k = 3k frames of 33.3 ms: the newest frame at or before is 3k + 1.
    # The action on frame 30, the final frame (the outcome observation), is not a step.
    expected = [3 * k + 1 for k in range(10)]
    np.testing.assert_array_equal(result.episode.images, np.stack([frames[i] for i in expected]))
    assert result.stats["dropped_leading"] == 2 and result.stats["dropped_on_final_frame"] == 1
    assert result.episode.extra["actions_before_first_frame"] == 2
    assert result.episode.extra["actions_on_final_frame"] == 1
    np.testing.assert_array_equal(result.episode.bins, np.full((10, 5), 128))  # zero action = neutral bin
    assert result.episode.length == 10


def test_frames_stamped_after_end_belong_to_the_next_episode(tmp_path: Path) -> None:
    """A recorder loaded for longer than end_grace_s writes the next episode's first frame (and the
    action on it) before it handles END (seen in CI). The outcome frame is still the last one
    stamped at or before END: the same steps as the bag without them."""
    episode = craft_episode(steps=6, seed=3)
    final_ns = T0 + 6 * PERIOD
    late = [Msg("/qt/action", "qt_msgs/msg/ArmAction", final_ns + 50, action_msg(final_ns, np.zeros(5, np.float32)))]
    for ns in (final_ns + PERIOD, final_ns + 2 * PERIOD):
        frame = synthetic_frame(999, 32, 24)
        late.append(Msg("/camera/image_raw", "sensor_msgs/msg/Image", ns + 10, image_msg(ns, frame)))
        late.append(Msg("/qt/action", "qt_msgs/msg/ArmAction", ns + 30, action_msg(ns, np.zeros(5, np.float32))))
    end_at = max(i for i, m in enumerate(episode.messages) if m.topic == "/episode/events")
    messages = episode.messages[:end_at] + late + episode.messages[end_at:]  # written before END, as under load
    result = read_episode(write_bag(tmp_path / "late_end", messages, episode.custom), _options((32, 24)))
    np.testing.assert_array_equal(result.episode.images, np.stack(episode.frames))
    np.testing.assert_array_equal(result.episode.bins, SPEC.values_to_bins(episode.values.astype(np.float64)))
    assert result.stats["frames_after_end"] == 2 and result.episode.extra["frames_after_end"] == 2
    assert result.stats["dropped_on_final_frame"] == 3  # the action on the outcome frame and the two after END

    early_end = [m for m in messages if m.topic != "/episode/events"]
    early_end.append(Msg("/episode/events", "qt_msgs/msg/EpisodeEvent", T0 - 5 * PERIOD,
                         event_msg(T0 - 5 * PERIOD, 2, 1, "ep-0", episode.instruction)))
    with pytest.raises(ValueError, match=r"END is stamped 0\.500 s before the first /camera/image_raw frame"):
        read_episode(write_bag(tmp_path / "skewed", early_end, episode.custom), _options((32, 24)))


def test_actions_long_before_the_first_frame_are_refused(crafted, tmp_path: Path) -> None:
    """Issue 14 item 8: a recorder that joined late lacks the episode's first frames; its actions begin
    more than a control period before the first frame, so the bag is refused (or skipped by name)."""
    msgs: list[Msg] = []
    frames = [synthetic_frame(i, 16, 12) for i in range(6)]
    for i, frame in enumerate(frames):
        ns = T0 + (i + 4) * PERIOD  # frames 0-3 of the episode never reached the bag
        msgs.append(Msg("/camera/image_raw", "sensor_msgs/msg/Image", ns, image_msg(ns, frame)))
    for k in range(10):
        ns = T0 + k * PERIOD
        msgs.append(Msg("/qt/action", "qt_msgs/msg/ArmAction", ns, action_msg(ns, np.zeros(5, np.float32))))
    msgs.sort(key=lambda m: m.log_ns)
    late = write_bag(tmp_path / "late", msgs, craft_episode().custom)
    with pytest.raises(ValueError, match=r"actions begin 0\.400 s before the first camera frame"):
        read_episode(late, _options((16, 12)))
    good, _ = crafted("good", steps=4)
    report = convert([good, late], tmp_path / "ds", _options((32, 24)), jobs=1, skip_bad=True, progress=False)
    assert [Path(r.bag).name for r in report.bad] == ["late"] and "first camera frame" in report.bad[0].error
    assert len(report.added) == 1


@pytest.mark.parametrize("encoding", ["bgr8", "rgba8", "mono8"])
def test_raw_encodings_become_rgb(crafted, encoding: str, tmp_path: Path) -> None:
    bag, ep = crafted(encoding, steps=3, encoding=encoding)
    result = read_episode(bag, _options((32, 24)))
    expected = np.stack(ep.frames)
    if encoding == "mono8":
        expected = np.repeat(expected[..., :1], 3, axis=3)
    np.testing.assert_array_equal(result.episode.images, expected)


def test_compressed_camera_and_resize(tmp_path: Path) -> None:
    ep = craft_episode(steps=4, size=(64, 48))
    msgs = []
    for m in ep.messages:
        if m.topic == "/camera/image_raw":
            i = len(msgs)
            stamp = m.msg.header.stamp.sec * 1_000_000_000 + m.msg.header.stamp.nanosec
            frame = m.msg.data.reshape(48, 64, 3)
            msgs.append(
                Msg(
                    "/camera/image_raw/compressed",
                    "sensor_msgs/msg/CompressedImage",
                    m.log_ns,
                    compressed_msg(stamp, frame, "png"),
                )
            )
            assert i >= 0
        else:
            msgs.append(m)
    bag = write_bag(tmp_path / "png", msgs, ep.custom)
    result = read_episode(bag, _options((32, 24)))
    expected = np.stack([resize_rgb(f, 24, 32) for f in ep.frames])  # PNG is lossless
    np.testing.assert_array_equal(result.episode.images, expected)
    assert result.episode.images.shape == (4, 24, 32, 3)


def test_proprio_from_ee_pose(crafted) -> None:
    bag, _ = crafted("pose", steps=5)
    result = read_episode(bag, _options((32, 24), proprio="ee_pose"))
    np.testing.assert_allclose(result.episode.proprio[:, 0], 0.01 * np.arange(5), atol=1e-7)
    np.testing.assert_array_equal(result.episode.proprio[:, 3:], [[0, 0, 0, 1]] * 5)


def test_outcome_and_instruction_from_events_when_bag_has_no_labels(crafted, tmp_path: Path) -> None:
    """A bag from another recorder (e.g. ros2 bag record) converts through its EpisodeEvents."""
    bag, ep = crafted("plain", steps=4, outcome="failure", labelled=False)
    report = convert([bag], tmp_path / "ds", _options((32, 24)), jobs=1, progress=False)
    assert report.dataset.episodes[0]["outcome"] == "failure"
    assert report.dataset.instructions == [ep.instruction]


def test_append_skips_converted_bags_and_relabelled_bags_convert_again(crafted, tmp_path: Path) -> None:
    a, _ = crafted("a", steps=3, seed=1)
    b, _ = crafted("b", steps=4, seed=2)
    out = tmp_path / "ds"
    convert([a], out, _options((32, 24)), jobs=1, progress=False)
    report = convert([tmp_path / "bags"], out, _options((32, 24)), jobs=1, progress=False)  # folder of bags
    assert [Path(r.bag).name for r in report.skipped] == ["a"]
    assert [Path(r.bag).name for r in report.added] == ["b"]
    assert len(Dataset(out).episodes) == 2 and len(Dataset(out)) == 7
    again = convert([a, a, b], out, _options((32, 24)), jobs=1, progress=False)
    assert not again.added and len(again.skipped) == 3
    assert len(Dataset(out)) == 7


def test_parallel_and_serial_runs_write_the_same_dataset(crafted, tmp_path: Path) -> None:
    bags = [crafted(f"p{i}", steps=3 + i, seed=i)[0] for i in range(4)]
    serial = convert(bags, tmp_path / "serial", _options((32, 24)), jobs=1, progress=False).dataset
    parallel = convert(bags, tmp_path / "parallel", _options((32, 24)), jobs=2, progress=False).dataset
    assert serial.digest() == parallel.digest()
    np.testing.assert_array_equal(serial.images[:], parallel.images[:])


def test_cli_prints_summary_and_runs_without_ros(crafted, tmp_path: Path) -> None:
    """`qt convert` output, and proof that conversion never imports rclpy."""
    for i, (outcome, text) in enumerate([("success", "pick red"), ("failure", "pick red"), ("success", "push")]):
        crafted(f"c{i}", steps=3, seed=i, outcome=outcome, instruction=text)
    code = (
        "import sys; from qt_common.cli import main; rc = main(sys.argv[1:]); "
        "print('RCLPY_LOADED' if 'rclpy' in sys.modules else 'NO_RCLPY'); sys.exit(rc)"
    )
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "convert",
            str(tmp_path / "bags"),
            "-o",
            str(tmp_path / "ds"),
            "--image-size",
            "24x32",
            "-j",
            "2",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "converted 3 episode(s), 9 frames" in out.stdout
    assert "success rate 67%" in out.stdout
    assert "     2  pick red" in out.stdout and "     1  push" in out.stdout
    assert "NO_RCLPY" in out.stdout
    assert "100%" in out.stderr  # tqdm progress bar
    info = subprocess.run(
        [sys.executable, "-m", "qt_common.cli", "dataset", "info", str(tmp_path / "ds"), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    summary = json.loads(info.stdout)
    assert (
        summary["episodes"] == 3 and summary["frames"] == 9 and summary["per_instruction"] == {"pick red": 2, "push": 1}
    )


@pytest.mark.parametrize(
    ("frame_id", "encoding", "size"),
    [("", "rgb8", (5, 3)), ("cam", "bgr8", (7, 2)), ("camera_optical_frame", "mono8", (3, 9))],
)
def test_zero_copy_image_parse_equals_full_deserialisation(frame_id: str, encoding: str, size: tuple) -> None:
    from helpers.episode_bags import header
    from qt_data_logger.images import parse_image_cdr

    from qt_data_logger import bag_format as bf

    store = bf.episode_typestore()
    msg = image_msg(T0 + 17, synthetic_frame(3, *size), encoding)
    msg.header = header(T0 + 17, frame_id)
    raw = bytes(store.serialize_cdr(msg, "sensor_msgs/msg/Image"))
    view = parse_image_cdr(raw)
    full = store.deserialize_cdr(raw, "sensor_msgs/msg/Image")
    assert (view.stamp_ns, view.height, view.width, view.encoding, view.step) == (
        T0 + 17,
        full.height,
        full.width,
        full.encoding,
        full.step,
    )
    np.testing.assert_array_equal(view.data, full.data)
