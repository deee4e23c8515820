"""LeRobot v3.0 both ways (issue 17): `qt convert --format lerobot` and `qt dataset import-lerobot`.

Real bags (rosbags MCAP, crafted with known content), real Parquet and MP4 files (pyarrow, PyAV):

* the export has LeRobot's layout and meta files, one row per qt step, actions that map back to
  the same bins, rewards/success/done on the right steps, and video frames close to the qt frames;
* bags -> LeRobot -> qt dataset equals the direct conversion (bins, rewards, returns, proprio,
  instructions, outcomes);
* a mapping turns a foreign dataset (other names, other units, success from a field) into a qt
  dataset, and every unmappable feature is an error naming it;
* the slow test loads the export with the real `lerobot` package (bench/lerobot_check.py).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import yaml
from helpers.processes import REPO_ROOT
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset

from qt_data_logger import lerobot_format as F
from qt_data_logger import lerobot_import as I

SIZE = "48x64"
EPISODES = [("success", "pick up the red cube"), ("failure", "push the blue block"),
            ("success", "pick up the red cube")]


@pytest.fixture
def bags(crafted) -> Path:
    for i, (outcome, instruction) in enumerate(EPISODES):
        path, _ = crafted(f"ep{i}", steps=9 + i, size=(64, 48), outcome=outcome, instruction=instruction, seed=i,
                          episode_id=f"ep-{i}")
    return path.parent


@pytest.fixture
def converted(bags: Path, tmp_path: Path, qt_cli) -> tuple[Path, Path]:
    """The same bags as a qt dataset and as a LeRobot dataset."""
    common = ["--image-size", SIZE, "--proprio", "ee_pose", "--no-progress", "-j", "1"]
    direct = qt_cli("convert", str(bags), "-o", str(tmp_path / "qt"), *common)
    assert direct.returncode == 0, direct.stderr
    exported = qt_cli("convert", str(bags), "-o", str(tmp_path / "lerobot"), "--format", "lerobot", *common)
    assert exported.returncode == 0, exported.stderr
    assert "exported 3 episode(s), 30 frames" in exported.stdout and "LeRobot v3.0" in exported.stdout
    return tmp_path / "qt", tmp_path / "lerobot"


def test_export_layout_rows_and_labels(converted: tuple[Path, Path]) -> None:
    import av

    qt_dir, root = converted
    qt = Dataset(qt_dir)
    info = json.loads((root / F.INFO_PATH).read_text())
    assert info["codebase_version"] == "v3.0" and info["fps"] == 10
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (3, len(qt), 2)
    features = info["features"]
    assert features[F.IMAGE_KEY]["dtype"] == "video" and features[F.IMAGE_KEY]["shape"] == [48, 64, 3]
    assert features[F.IMAGE_KEY]["info"]["video.codec"] == "av1"
    assert features[F.ACTION_KEY]["names"] == ActionSpec.default().names
    assert features[F.STATE_KEY]["names"] == ["x", "y", "z", "qx", "qy", "qz", "qw"]
    data = pq.read_table(root / F.DATA_PATH.format(chunk_index=0, file_index=0)).to_pydict()
    spec = qt.action_spec
    assert np.array_equal(spec.values_to_bins(np.asarray(data["action"], dtype=np.float64)), np.asarray(qt.bins))
    assert np.array_equal(np.asarray(data[F.REWARD_KEY]), np.asarray(qt.reward))
    assert np.array_equal(np.asarray(data[F.DONE_KEY]), np.asarray(qt.done))
    assert np.array_equal(np.asarray(data[F.SUCCESS_KEY]), np.asarray(qt.reward) > 0)
    assert np.allclose(np.asarray(data[F.STATE_KEY]), qt.proprio)
    assert data["index"] == list(range(len(qt)))
    assert np.allclose(np.asarray(data["timestamp"]), np.asarray(data["frame_index"]) / 10.0)
    episodes = F.read_episodes(root)
    assert episodes["length"] == [9, 10, 11] and episodes[F.QT_OUTCOME] == ["success", "failure", "success"]
    assert episodes["dataset_from_index"] == [0, 9, 19] and episodes["tasks"][1] == ["push the blue block"]
    assert episodes[f"videos/{F.IMAGE_KEY}/from_timestamp"] == [0.0, 0.9, 1.9]
    assert F.read_tasks(root) == {0: "pick up the red cube", 1: "push the blue block"}
    stats = json.loads((root / F.STATS_PATH).read_text())
    assert stats[F.ACTION_KEY]["count"] == [len(qt)] and np.asarray(stats[F.IMAGE_KEY]["mean"]).shape == (3, 1, 1)
    video = root / F.VIDEO_PATH.format(video_key=F.IMAGE_KEY, chunk_index=0, file_index=0)
    with av.open(str(video)) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    assert frames.shape == (len(qt), 48, 64, 3)
    diff = np.abs(frames.astype(np.int16) - np.asarray(qt.images).astype(np.int16)).mean(axis=(1, 2, 3))
    assert diff.max() < 12.0, diff  # AV1 at CRF 30 on small synthetic frames; every frame in its place


def test_round_trip_equals_the_direct_conversion(converted: tuple[Path, Path], tmp_path: Path, qt_cli) -> None:
    qt_dir, root = converted
    result = qt_cli("dataset", "import-lerobot", str(root), "-o", str(tmp_path / "back"))
    assert result.returncode == 0, result.stderr
    direct, back = Dataset(qt_dir), Dataset(tmp_path / "back")
    for name in ("bins", "reward", "done", "return_to_go", "proprio", "episode_index", "instruction_index"):
        assert np.array_equal(np.asarray(direct.arrays[name]), np.asarray(back.arrays[name])), name
    assert direct.instructions == back.instructions and direct.proprio_layout == back.proprio_layout == "ee_pose"
    assert [(e["outcome"], e["episode_id"], e["bag_digest"]) for e in direct.episodes] == \
           [(e["outcome"], e["episode_id"], e["bag_digest"]) for e in back.episodes]
    assert np.abs(np.asarray(direct.images).astype(int) - np.asarray(back.images)).mean() < 8.0
    again = qt_cli("dataset", "import-lerobot", str(root), "-o", str(tmp_path / "back"))
    assert again.returncode == 0 and len(Dataset(tmp_path / "back")) == len(direct)  # same episodes: skipped


def _foreign(root: Path, tmp_path: Path) -> Path:
    """The export dressed as another robot's dataset: other feature names, actions in mm and
    reversed order, success only in a per-frame field, no qt columns."""
    import pyarrow as pa

    out = tmp_path / "foreign"
    shutil.copytree(root, out)
    info = json.loads((out / F.INFO_PATH).read_text())
    features = info["features"]
    features["observation.images.top"] = features.pop(F.IMAGE_KEY)
    action = features.pop(F.ACTION_KEY)
    features["act"] = dict(action, names=["g", "yaw", "z_mm", "y_mm", "x_mm"])
    (out / F.INFO_PATH).write_text(json.dumps(info))
    (out / "videos" / F.IMAGE_KEY).rename(out / "videos" / "observation.images.top")
    path = out / F.DATA_PATH.format(chunk_index=0, file_index=0)
    table = pq.read_table(path)
    values = np.asarray(table.column("action").to_pylist())[:, ::-1] * np.array([1, 1, 1000, 1000, 1000])
    table = table.drop(["action"]).append_column("act", pa.FixedSizeListArray.from_arrays(
        pa.array(values.reshape(-1).astype(np.float32)), 5))
    pq.write_table(table, path)
    episodes_path = out / F.EPISODES_PATH.format(chunk_index=0, file_index=0)
    episodes = pq.read_table(episodes_path)
    names = [n for n in episodes.column_names if not n.startswith("qt/")]
    episodes = episodes.select(names).rename_columns(
        [n.replace(F.IMAGE_KEY, "observation.images.top") for n in names])
    pq.write_table(episodes, episodes_path)
    return out


def test_mapping_imports_a_foreign_dataset(converted: tuple[Path, Path], tmp_path: Path, qt_cli) -> None:
    qt_dir, root = converted
    foreign = _foreign(root, tmp_path)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(yaml.safe_dump({
        "image": "observation.images.top",
        "proprio": {"feature": "observation.state", "layout": "ee_pose"},
        "action": {"feature": "act", "dimensions": ["gripper", "dyaw", "dz", "dy", "dx"],
                   "scale": [0.001, 0.001, 0.001, 1, 1]},
        "success": {"from": "field", "field": "next.success"},
    }))
    result = qt_cli("dataset", "import-lerobot", str(foreign), "-o", str(tmp_path / "imported"), "--mapping",
                    str(mapping))
    assert result.returncode == 0, result.stderr
    direct, imported = Dataset(qt_dir), Dataset(tmp_path / "imported")
    assert np.array_equal(np.asarray(direct.bins), np.asarray(imported.bins))
    assert np.array_equal(np.asarray(direct.return_to_go), np.asarray(imported.return_to_go))
    assert [e["outcome"] for e in imported.episodes] == ["success", "failure", "success"]
    # Without the mapping nothing says what the features are or which episodes succeeded.
    result = qt_cli("dataset", "import-lerobot", str(foreign), "-o", str(tmp_path / "none"))
    assert result.returncode == 1 and "no success information" in result.stderr
    assert not (tmp_path / "none").exists()


@pytest.mark.parametrize(("mapping", "message"), [
    ({"image": "observation.images.wrist", "action": "action", "success": {"from": "all"}},
     "feature 'observation.images.wrist' (mapping field image) not in the dataset"),
    ({"image": F.IMAGE_KEY, "action": "next.reward", "success": {"from": "all"}},
     "feature 'next.reward' has 1 values named None; say which is which with mapping field action.dimensions"),
    ({"image": F.IMAGE_KEY, "action": {"feature": "action", "dimensions": ["a", "b", "c", "d", "e"]},
      "success": {"from": "all"}}, "mapping field action.dimensions: no element is ['dx', 'dy', 'dz', 'dyaw'"),
    ({"image": F.IMAGE_KEY, "action": {"feature": "action", "scale": [100, 1, 1, 1, 1]}, "success": {"from": "all"}},
     "is outside [-0.02, 0.02] of dx; fix action.scale/offset"),
    ({"image": F.IMAGE_KEY, "action": "action", "success": {"from": "guess"}}, "field success.from: 'guess'"),
    ({"image": F.IMAGE_KEY, "action": "action", "actions": "action"}, "unknown key(s) ['actions']"),
    ({"image": F.IMAGE_KEY, "action": "action", "proprio": {"feature": F.STATE_KEY, "layout": "ee_yaw_gripper"},
      "success": {"from": "all"}}, "mapping field proprio.layout: ee_yaw_gripper has 6 values"),
])
def test_unmappable_features_are_errors_naming_them(converted: tuple[Path, Path], tmp_path: Path, mapping: dict,
                                                    message: str) -> None:
    _, root = converted
    with pytest.raises(I.ImportError_) as caught:
        I.import_dataset(root, tmp_path / "out", I.Mapping.parse(mapping, "test"))
    assert message in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_not_a_v3_dataset_is_refused(converted: tuple[Path, Path], tmp_path: Path) -> None:
    _, root = converted
    old = tmp_path / "old"
    shutil.copytree(root, old)
    info = json.loads((old / F.INFO_PATH).read_text())
    info["codebase_version"] = "v2.1"
    (old / F.INFO_PATH).write_text(json.dumps(info))
    with pytest.raises(F.LeRobotFormatError, match=r"field codebase_version: 'v2\.1'"):
        I.import_dataset(old, tmp_path / "out", I.Mapping.load(None))
    with pytest.raises(F.LeRobotFormatError, match="not a LeRobot dataset"):
        I.import_dataset(tmp_path, tmp_path / "out", I.Mapping.load(None))


def test_export_refuses_an_existing_directory_and_writes_nothing_on_a_bad_bag(bags: Path, tmp_path: Path,
                                                                              qt_cli, crafted) -> None:
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    result = qt_cli("convert", str(bags), "-o", str(tmp_path / "full"), "--format", "lerobot", "--no-progress")
    assert result.returncode == 1 and "use --overwrite" in result.stderr
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    crafted("unlabelled", outcome="", labelled=False)  # an episode without outcome: not training data
    result = qt_cli("convert", str(bags), "-o", str(tmp_path / "lr"), "--format", "lerobot", "--no-progress")
    assert result.returncode == 1 and "unlabelled: topic" in result.stderr and "outcome" in result.stderr
    assert not (tmp_path / "lr").exists()
    assert not list(tmp_path.glob(".lr.lerobot-*"))  # no staging directory left behind


def test_a_second_camera_named_by_the_topic_map_is_exported(tmp_path: Path, qt_cli) -> None:
    import av
    from helpers.episode_bags import Msg, craft_episode, image_msg, write_bag

    for i in range(2):
        episode = craft_episode(steps=7, size=(64, 48), seed=i, episode_id=f"ep-{i}")
        wrist = []
        for m in episode.messages:
            if m.topic == "/camera/image_raw":  # the wrist camera: the inverted frame, same stamp
                stamp = m.msg.header.stamp.sec * 1_000_000_000 + m.msg.header.stamp.nanosec
                frame = np.asarray(m.msg.data, np.uint8).reshape(48, 64, 3)
                wrist.append(Msg("/wrist/image_raw", m.msgtype, m.log_ns + 5, image_msg(stamp, 255 - frame)))
        write_bag(tmp_path / "bags" / f"ep{i}", episode.messages + wrist, episode.custom)
    topics = tmp_path / "topics.yaml"
    topics.write_text(yaml.safe_dump({"topics": {"camera2": "/wrist/image_raw"}}))
    result = qt_cli("convert", str(tmp_path / "bags"), "-o", str(tmp_path / "lr"), "--format", "lerobot",
                    "--topics", str(topics), "--image-size", SIZE, "--proprio", "none", "--no-progress", "-j", "1")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "lr" / F.INFO_PATH).read_text())
    assert info["features"][F.IMAGE2_KEY]["shape"] == [48, 64, 3] and info["total_frames"] == 14
    decoded = {}
    for key in (F.IMAGE_KEY, F.IMAGE2_KEY):
        path = tmp_path / "lr" / F.VIDEO_PATH.format(video_key=key, chunk_index=0, file_index=0)
        with av.open(str(path)) as container:
            decoded[key] = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)]).astype(int)
    # each step's wrist frame is the inverse of its main frame (within the codec's error)
    assert np.abs(decoded[F.IMAGE2_KEY] - (255 - decoded[F.IMAGE_KEY])).mean(axis=(1, 2, 3)).max() < 12.0
    assert F.IMAGE2_KEY in json.loads((tmp_path / "lr" / F.STATS_PATH).read_text())


@pytest.mark.slow
def test_the_real_lerobot_loads_the_export(tmp_path: Path) -> None:
    """bench/lerobot_check.py: lerobot 0.4.4 in its own venv (created on first use, several
    minutes) reads every frame; actions, labels and tasks equal the qt dataset's."""
    result = subprocess.run([sys.executable, str(REPO_ROOT / "bench" / "lerobot_check.py"), "--episodes", "6",
                             "--work", str(tmp_path)], capture_output=True, text=True, timeout=3600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout[result.stdout.index("{\n"):])
    assert figures["problems"] == [] and figures["actions_bins_equal"]
