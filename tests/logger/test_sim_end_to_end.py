"""Sim driver + scripted expert teleop -> real recorder -> qt convert, checked against an independent tap.

The test process subscribes to the same topics as the recorder (its own DDS participant) and
keeps what the sim and the expert published. The dataset converted from the recorder's bags
must hold exactly those frames (the expert stamps each action with the observation it used),
the bins of those actions, reward 1 on the last step of the successful episodes and the Monte
Carlo returns.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
from helpers.processes import python_child
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset

pytest.importorskip("qt_sim.driver_node")

SPEC = ActionSpec.default()
WIDTH, HEIGHT = 64, 48


class Tap:
    """Records what the sim and expert publish, in a background executor of its own context."""

    def __init__(self, prefix: str):
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
        from sensor_msgs.msg import Image

        from qt_msgs.msg import ArmAction, EpisodeEvent

        self.rclpy = rclpy
        self.context = rclpy.Context()
        rclpy.init(context=self.context)
        self.node = rclpy.create_node("qt_test_tap", context=self.context)
        self.images: dict[int, np.ndarray] = {}
        self.actions: list[tuple[int, np.ndarray, np.ndarray]] = []
        self.events: list[tuple[int, int, int, str]] = []
        reliable = QoSProfile(depth=200, reliability=ReliabilityPolicy.RELIABLE)
        latched = QoSProfile(
            depth=50, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL
        )
        self.subs = [
            self.node.create_subscription(Image, f"{prefix}/camera/image_raw", self._image, reliable),
            self.node.create_subscription(ArmAction, f"{prefix}/qt/action", self._action, reliable),
            self.node.create_subscription(EpisodeEvent, f"{prefix}/episode/events", self._event, latched),
        ]
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    @staticmethod
    def _ns(header) -> int:
        return header.stamp.sec * 1_000_000_000 + header.stamp.nanosec

    def _image(self, msg) -> None:
        assert msg.encoding == "rgb8"
        self.images[self._ns(msg.header)] = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)

    def _action(self, msg) -> None:
        self.actions.append((self._ns(msg.header), np.asarray(msg.values, np.float32), np.asarray(msg.bins)))

    def _event(self, msg) -> None:
        self.events.append((self._ns(msg.header), msg.event, msg.outcome, msg.episode_id))

    def _spin(self) -> None:
        while self.context.ok():
            try:
                self.executor.spin_once(timeout_sec=0.05)
            except Exception:
                return

    def publishers_ready(self) -> bool:
        return self.subs[0].get_publisher_count() > 0

    def close(self) -> None:
        self.rclpy.try_shutdown(context=self.context)
        self.thread.join(timeout=10)


def _window_report(tap: Tap, start_ns: int, end_ns: int, rec) -> str:
    """What the tap saw of one episode (ms after START), to tell a lost message from a misaligned one."""
    def ms(stamps):
        return [round((t - start_ns) / 1e6) for t in sorted(stamps) if start_ns <= t <= end_ns + 10**9]

    return (f"END at {(end_ns - start_ns) / 1e6:.0f} ms; tap images {ms(tap.images)}; "
            f"tap actions {ms(a[0] for a in tap.actions)}\n{rec.output()[-3000:]}")


def test_sim_episodes_record_and_convert_to_what_was_published(
    tmp_path: Path, recorder, children, qt_cli, topic_prefix, convert_flags
) -> None:
    bags = tmp_path / "bags"
    rec = recorder(bags, "-p", "control_rate_hz:=10.0", "-p", "robot:=qt_sim_arm")
    tap = Tap(topic_prefix)
    try:
        driver = python_child(
            "qt_sim.driver_node",
            "--ros-args",
            "-r",
            f"__ns:={topic_prefix}",
            "-p",
            f"image_width:={WIDTH}",
            "-p",
            f"image_height:={HEIGHT}",
            "-p",
            "horizon:=30",
        )
        children.append(driver)
        end = time.monotonic() + 60
        while not tap.publishers_ready() and time.monotonic() < end:
            time.sleep(0.1)
        assert tap.publishers_ready(), driver.output()
        # The expert starts its first episode after start_delay_s: time for the recorder and the
        # tap to discover its action publisher (checked below from the recorder's log order).
        expert = python_child(
            "qt_sim.expert_teleop",
            "--ros-args",
            "-r",
            f"__ns:={topic_prefix}",
            "-p",
            "num_episodes:=2",
            "-p",
            "tasks:=pick/red,push/blue/yellow",
            "-p",
            "start_delay_s:=3.0",
        )
        children.append(expert)
        done = expert.wait_for_line(r"EXPERT_DONE episodes=2 successes=(\d+)", timeout=180)
        end = time.monotonic() + 30
        while len([e for e in tap.events if e[1] == 2]) < 2 and time.monotonic() < end:
            time.sleep(0.05)  # the tap is another subscriber: its END may come after the expert's
        ends = [e for e in tap.events if e[1] == 2]
        for _, _, _, episode_id in ends:
            rec.wait_for_line(f"EPISODE_WRITTEN id={episode_id}", timeout=30)
    finally:
        tap.close()
    log = rec.output()
    matched = log.index(f"PUBLISHERS {topic_prefix}/qt/action matched=1")
    assert matched < log.index("EPISODE_STARTED"), "the recorder matched the expert after the first START"
    starts = {e[3]: e[0] for e in tap.events if e[1] == 1}
    assert len(ends) == 2 and int(done.group(1)) == sum(1 for e in ends if e[2] == 1)

    out = qt_cli("convert", str(bags), "-o", str(tmp_path / "ds"), "--image-size", f"{HEIGHT}x{WIDTH}", *convert_flags)
    assert out.returncode == 0, out.stderr
    ds = Dataset(tmp_path / "ds")
    assert ds.proprio_layout == "ee_yaw_gripper" and ds.object_poses is not None  # the sim's bags have both
    assert {e["labels"] for e in ds.episodes} == {"label_topic"}
    by_id = {e["episode_id"]: i for i, e in enumerate(ds.episodes)}
    assert sorted(by_id) == sorted(e[3] for e in ends)
    for end_stamp, _, outcome, episode_id in ends:
        index = by_id[episode_id]
        frames = ds.episode_frames(index)
        final_frame = max(t for t in tap.images if starts[episode_id] <= t <= end_stamp)
        # Steps: the actions from START up to the outcome frame (an action on it never ran).
        sent = [a for a in tap.actions if starts[episode_id] <= a[0] < final_frame]
        assert len(sent) == frames.stop - frames.start > 5, _window_report(tap, starts[episode_id], end_stamp, rec)
        np.testing.assert_array_equal(ds.images[frames], np.stack([tap.images[stamp] for stamp, _, _ in sent]))
        values = np.stack([v for _, v, _ in sent]).astype(np.float64)
        np.testing.assert_array_equal(ds.bins[frames], SPEC.values_to_bins(values))
        np.testing.assert_array_equal(ds.bins[frames], np.stack([b for _, _, b in sent]))  # the expert's own bins
        reward = np.zeros(len(sent), np.float32)
        reward[-1] = 1.0 if outcome == 1 else 0.0
        np.testing.assert_array_equal(ds.reward[frames], reward)
        np.testing.assert_allclose(
            ds.return_to_go[frames], reward[-1] * ds.gamma ** np.arange(len(sent) - 1, -1, -1), rtol=1e-6
        )
        assert ds.episodes[index]["outcome"] == ("success" if outcome == 1 else "failure")
        assert ds.episodes[index]["robot"] == "qt_sim_arm" and ds.episodes[index]["control_rate_hz"] == 10.0
