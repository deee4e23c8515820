"""The real recorder process over real DDS: record, convert, compare with what was published.

Publishers are separate processes (qt_data_logger.synthetic_source) that print a MANIFEST of
everything they sent; the dataset built from the recorded bags must match it exactly.
"""

from __future__ import annotations

import signal
from pathlib import Path

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset
from qt_data_logger.bag_status import inspect_bag
from qt_data_logger.synthetic_source import synthetic_frame
from rosbags.highlevel import AnyReader

SPEC = ActionSpec.default()
GAMMA = 0.98


def _check_dataset_against_manifest(ds: Dataset, manifest: dict, episodes: list[dict]) -> None:
    width, height = manifest["size"]
    assert [e["episode_id"] for e in ds.episodes] == [e["episode_id"] for e in episodes]
    for index, sent in enumerate(episodes):
        frames = ds.episode_frames(index)
        expected = np.stack([synthetic_frame(i, width, height) for i in sent["frame_index"]])
        np.testing.assert_array_equal(ds.images[frames], expected)
        values = np.asarray(sent["action_values"], dtype=np.float32).astype(np.float64)
        np.testing.assert_array_equal(ds.bins[frames], SPEC.values_to_bins(values))
        length = len(sent["frame_index"])
        reward = np.zeros(length, np.float32)
        if sent["outcome"] == "success":
            reward[-1] = 1.0
        np.testing.assert_array_equal(ds.reward[frames], reward)
        expected_returns = reward[-1] * GAMMA ** np.arange(length - 1, -1, -1)
        np.testing.assert_allclose(ds.return_to_go[frames], expected_returns, rtol=1e-6)
        assert ds.done[frames].nonzero()[0].tolist() == [length - 1]
        assert ds.instructions[ds.episodes[index]["instruction_index"]] == sent["instruction"]
        assert ds.episodes[index]["outcome"] == sent["outcome"]


def test_recorded_episodes_convert_to_exactly_what_was_published(
    tmp_path: Path, recorder, source, qt_cli, topic_prefix, convert_flags
) -> None:
    bags = tmp_path / "bags"
    # split_size_mb 0.05: each episode is split into several MCAP files inside its one bag directory
    rec = recorder(bags, "-p", "operator:=pytest", "-p", "control_rate_hz:=15.0", "-p", "split_size_mb:=0.05")
    manifest = source(
        "--episodes", "3", "--steps", "12", "--rate", "15", "--size", "64x48", "--outcomes", "success,discard,failure"
    )
    written = rec.wait_for_line(r"EPISODE_WRITTEN id=synthetic-002 .* parts=(\d+)", timeout=30)
    assert int(written.group(1)) >= 2 and len(list((bags / "synthetic-002").glob("*.mcap"))) == int(written.group(1))
    assert "EPISODE_DISCARDED id=synthetic-001" in rec.output()
    assert sorted(p.name for p in bags.iterdir()) == ["synthetic-000", "synthetic-002"]  # discard deleted it
    status = inspect_bag(bags / "synthetic-000")
    assert status.state == "ok"
    assert {k: status.custom[k] for k in ("episode_id", "outcome", "operator", "control_rate_hz", "robot")} == {
        "episode_id": "synthetic-000",
        "outcome": "success",
        "operator": "pytest",
        "control_rate_hz": "15",
        "robot": "qt_sim_arm",
    }
    assert status.custom["instruction"] == manifest["episodes"][0]["instruction"]
    assert status.custom["dropped_messages"] == "0" and status.custom["sequence_gaps"] == "0"
    with AnyReader([bags / "synthetic-000"]) as reader:
        counts = {c.topic.removeprefix(topic_prefix): c.msgcount for c in reader.connections}
    assert counts["/qt/action"] == counts["/joint_states"] == counts["/ee_pose"] == 12
    assert counts["/camera/image_raw"] == 13  # + the outcome frame after the last action
    assert counts["/episode/events"] == 2 and counts["/instruction"] >= 1
    out = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), "--image-size", "48x64", "-j", "2", *convert_flags)
    assert out.returncode == 0, out.stderr
    assert "converted 2 episode(s), 24 frames" in out.stdout and "success rate 50%" in out.stdout
    kept = [e for e in manifest["episodes"] if e["outcome"] != "discard"]
    _check_dataset_against_manifest(Dataset(tmp_path / "ds"), manifest, kept)
    sheet = qt_cli("dataset", "sheet", str(tmp_path / "ds"), "--episode", "1", "-o", str(tmp_path / "sheet.png"))
    assert sheet.returncode == 0 and (tmp_path / "sheet.png").stat().st_size > 1000


def test_services_drive_episodes_and_sigterm_finalises_the_open_one(
    tmp_path: Path, recorder, source, qt_cli, topic_prefix, convert_flags
) -> None:
    import rclpy
    from rclpy.executors import SingleThreadedExecutor

    from qt_msgs.srv import EndEpisode, StartEpisode

    bags = tmp_path / "bags"
    rec = recorder(bags)
    context = rclpy.Context()
    rclpy.init(context=context)
    node = rclpy.create_node("qt_test_operator", context=context)
    try:
        start = node.create_client(StartEpisode, "/recorder/start_episode")
        end = node.create_client(EndEpisode, "/recorder/end_episode")

        executor = SingleThreadedExecutor(context=context)
        executor.add_node(node)

        def call(client, request):
            assert client.wait_for_service(timeout_sec=30)
            future = client.call_async(request)
            executor.spin_until_future_complete(future, timeout_sec=30)
            assert future.done(), f"{client.srv_name} did not answer"
            return future.result()

        def publish(steps: int) -> None:
            source("--no-events", "--steps", str(steps), "--rate", "20", "--size", "64x48")

        first = call(start, StartEpisode.Request(instruction="wave", task_id="wave/1", seed=3))
        assert first.accepted and first.instruction == "wave"
        refused = call(start, StartEpisode.Request(instruction="again"))
        assert not refused.accepted and "running" in refused.message
        publish(15)
        ended = call(end, EndEpisode.Request(outcome=EndEpisode.Request.OUTCOME_SUCCESS))
        assert ended.accepted and ended.episode_id == first.episode_id
        rec.wait_for_line(f"EPISODE_WRITTEN id={first.episode_id}", timeout=30)
        second = call(start, StartEpisode.Request(instruction="wave"))
        assert second.accepted
        publish(10)
    finally:
        node.destroy_node()
        rclpy.try_shutdown(context=context)
    rec.send_signal(signal.SIGTERM)
    assert rec.wait(timeout=30) == 0
    assert "RECORDER_STOPPED episodes_written=2" in rec.output()
    done = inspect_bag(bags / first.episode_id)
    cut = inspect_bag(bags / second.episode_id)
    assert done.state == "ok" and done.custom["task_id"] == "wave/1" and done.custom["end_reason"] == "service"
    assert (
        cut.state == "unlabelled" and cut.custom["outcome"] == "interrupted" and cut.custom["end_reason"] == "shutdown"
    )
    with AnyReader([bags / second.episode_id]) as reader:  # finalised: every frame readable
        counts = {c.topic: c.msgcount for c in reader.connections}
    assert counts[topic_prefix + "/camera/image_raw"] == 11 and counts[topic_prefix + "/qt/action"] == 10
    assert counts[topic_prefix + "/episode/events"] == 1  # the START the recorder wrote itself
    refused_convert = qt_cli("convert", str(bags / second.episode_id), "-o", str(tmp_path / "ds"), *convert_flags)
    assert refused_convert.returncode == 1 and "episode without outcome" in refused_convert.stderr
    assert qt_cli("bags", "label", str(bags / second.episode_id), "--outcome", "failure").returncode == 0
    converted = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), "--image-size", "48x64", *convert_flags)
    assert converted.returncode == 0, converted.stderr
    episodes = Dataset(tmp_path / "ds").episodes
    assert [(e["outcome"], e["length"]) for e in episodes] == [("success", 15), ("failure", 10)]


def test_best_effort_camera_driver_is_matched_and_recorded(tmp_path: Path, recorder, source, topic_prefix) -> None:
    """Many camera drivers publish best effort; the recorder's reliable subscription heals itself."""
    bags = tmp_path / "bags"
    rec = recorder(bags)
    source("--best-effort", "--steps", "15", "--rate", "20", "--size", "64x48")
    rec.wait_for_line("EPISODE_WRITTEN id=synthetic-000", timeout=30)
    assert f"SUBSCRIBED {topic_prefix}/camera/image_raw (sensor_msgs/msg/Image) reliability=best_effort" in rec.output()
    assert "resubscribing with best effort" in rec.output()
    with AnyReader([bags / "synthetic-000"]) as reader:
        counts = {c.topic.removeprefix(topic_prefix): c.msgcount for c in reader.connections}
    assert counts["/camera/image_raw"] == 16 and counts["/qt/action"] == 15
