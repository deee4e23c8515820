"""qt collect --inprocess against the ROS path, and what qt convert makes of the collected bags.

One seed with the DART knobs on is collected through both paths (node processes over DDS, and
in process). The bags must hold the same frames, actions, labels and outcome; the converted
dataset must train on the labels, carry the ee_yaw_gripper proprio and the object poses.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from helpers.processes import REPO_ROOT
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset

pytest.importorskip("qt_sim.driver_node")

SPEC = ActionSpec.default()
ARGS = ["--episodes", "1", "--tasks", "pick/red", "--seed", "3", "--image", "48x64", "--horizon", "40",
        "--dart-noise-std", "0.4", "--dart-gripper-flip-prob", "0.15"]


def _qt(*args: str | Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "qt_common.cli", *map(str, args)], capture_output=True, text=True,
                            timeout=timeout, cwd=REPO_ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result


def _read_bag(bags: Path) -> dict[str, Any]:
    """The one bag in ``bags``, decoded: frames, and per frame index the action, label, joints and poses."""
    from qt_sim.messages import finger_positions
    from rosbags.highlevel import AnyReader

    (bag,) = [p.parent for p in bags.glob("*/metadata.yaml")]
    custom = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]["custom_data"]
    by_topic: dict[str, list[tuple[int, Any]]] = {}
    with AnyReader([bag]) as reader:
        for connection, _, raw in reader.messages():
            msg = reader.deserialize(raw, connection.msgtype)
            stamp = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec if hasattr(msg, "header") else 0
            by_topic.setdefault(connection.topic, []).append((stamp, msg))
    frame_stamps = [s for s, _ in by_topic["/camera/image_raw"]]
    index = {s: i for i, s in enumerate(frame_stamps)}

    def per_frame(topic: str, value: Any) -> dict[int, Any]:
        return {index[s]: value(m) for s, m in by_topic.get(topic, [])}

    return {
        "bag": bag,
        "custom": custom,
        "frames": [bytes(m.data) for _, m in by_topic["/camera/image_raw"]],
        "actions": per_frame("/qt/action", lambda m: np.asarray(m.values)),
        "labels": per_frame("/qt/action_label", lambda m: np.asarray(m.values)),
        "fingers": per_frame("/joint_states", finger_positions),
        "objects": per_frame("/sim/object_poses", lambda m: [v for p in m.poses for v in (
            p.position.x, p.position.y, p.position.z, p.orientation.w, p.orientation.x, p.orientation.y,
            p.orientation.z)]),
    }


@pytest.fixture(scope="module")
def collected(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    root = tmp_path_factory.mktemp("collect")
    _qt("collect", *ARGS, "--bags", root / "ros")
    _qt("collect", *ARGS, "--bags", root / "inprocess", "--inprocess")
    _qt("convert", root / "inprocess", "-o", root / "ds", "--image-size", "48x64", "--no-progress")
    return {"ros": _read_bag(root / "ros"), "inprocess": _read_bag(root / "inprocess"), "ds": {"path": root / "ds"}}


def test_both_paths_record_the_same_frames_actions_labels_and_outcome(collected) -> None:
    ros, local = collected["ros"], collected["inprocess"]
    assert local["custom"]["outcome"] == ros["custom"]["outcome"]
    for key in ("task_id", "seed", "instruction", "control_rate_hz", "robot", "operator"):
        assert local["custom"][key] == ros["custom"][key], key
    assert len(local["frames"]) == len(ros["frames"]) > 5
    assert local["frames"] == ros["frames"]
    final = len(ros["frames"]) - 1  # the ROS expert may or may not act on the outcome frame
    for key in ("actions", "labels", "fingers", "objects"):
        steps = sorted(set(ros[key]) - {final})
        assert steps == sorted(set(local[key]) - {final}) == list(range(final)), key
        for i in steps:
            np.testing.assert_array_equal(local[key][i], ros[key][i], err_msg=f"{key} on frame {i}")


def test_dart_labels_differ_from_executed_actions_and_become_the_bins(collected) -> None:
    local = collected["inprocess"]
    steps = sorted(local["actions"])[:-1]  # the action on the final frame is not a dataset step
    executed = np.stack([local["actions"][i] for i in steps])
    labels = np.stack([local["labels"][i] for i in steps])
    differ = (SPEC.values_to_bins(executed) != SPEC.values_to_bins(labels)).any(axis=1)
    assert differ.any() and not differ.all()
    ds = Dataset(collected["ds"]["path"])
    np.testing.assert_array_equal(ds.bins[:], SPEC.values_to_bins(labels))
    assert (ds.bins[:] != SPEC.values_to_bins(executed)).any(axis=1).tolist() == differ.tolist()
    assert ds.episodes[0]["labels"] == "label_topic"


def test_convert_defaults_to_ee_yaw_gripper_with_the_sims_finger_opening(collected) -> None:
    from qt_sim.arm import FINGER_TRAVEL

    local = collected["inprocess"]
    ds = Dataset(collected["ds"]["path"])
    assert ds.proprio_layout == "ee_yaw_gripper" and ds.proprio.shape == (len(ds), 6)
    opening = [np.clip(np.mean(local["fingers"][i]) / FINGER_TRAVEL, 0, 1) for i in range(len(ds))]
    np.testing.assert_allclose(ds.proprio[:, 5], opening, atol=1e-6)
    assert ds.proprio[:, 5].max() > 0.9 and ds.proprio[:, 5].min() < 0.7  # open, then closed on the cube


def test_object_poses_are_stored_per_step(collected) -> None:
    local = collected["inprocess"]
    ds = Dataset(collected["ds"]["path"])
    assert ds.object_poses is not None and ds.object_poses.shape == (len(ds), len(local["objects"][0]))
    np.testing.assert_allclose(ds.object_poses[:], np.array([local["objects"][i] for i in range(len(ds))]),
                               atol=1e-6)


def test_worker_processes_record_the_same_episodes(tmp_path: Path) -> None:
    """--jobs 2 splits the plan over two simulators; every episode is what one process records."""
    common = ["--episodes", "3", "--tasks", "pick/", "--seed", "7", "--image", "32", "--horizon", "30",
              "--inprocess", "--dart-noise-std", "0.3"]
    _qt("collect", *common, "--bags", tmp_path / "one", "--summary", tmp_path / "one.json")
    _qt("collect", *common, "--jobs", "2", "--bags", tmp_path / "two", "--summary", tmp_path / "two.json")
    import json

    def episodes(name: str) -> list[tuple[str, int, str, int]]:
        summary = json.loads((tmp_path / f"{name}.json").read_text())
        return [(e["task_id"], e["seed"], e["outcome"], e["steps"]) for e in summary["episodes"]]

    assert episodes("one") == episodes("two") and len(episodes("two")) == 3
    assert len(list((tmp_path / "two").glob("*/metadata.yaml"))) == 3
