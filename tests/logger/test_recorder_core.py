"""EpisodeRecorder without DDS: episode windows by message time, services, discard, shutdown, errors."""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import numpy as np
from helpers.episode_bags import action_msg, event_msg, image_msg
from qt_data_logger.bag_status import inspect_bag, load_metadata
from qt_data_logger.recorder_core import DeliveryOrderLogTimes, EpisodeRecorder, EventInfo, Incoming, RecorderConfig
from rosbags.highlevel import AnyReader

from qt_data_logger import bag_format as bf

CAMERA, ACTION, EVENTS, INSTRUCTION = "/camera/image_raw", "/qt/action", "/episode/events", "/instruction"
STORE = bf.episode_typestore()
FRAME = np.zeros((4, 4, 3), np.uint8)


class ListLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def info(self, m: str) -> None:
        self.lines.append(("info", m))

    def warning(self, m: str) -> None:
        self.lines.append(("warning", m))

    def error(self, m: str) -> None:
        self.lines.append(("error", m))

    def find(self, text: str) -> list[str]:
        return [m for _, m in self.lines if text in m]


def _recorder(tmp_path: Path, **config) -> tuple[EpisodeRecorder, ListLog]:
    specs = [
        bf.TopicSpec.make(CAMERA, "sensor_msgs/msg/Image"),
        bf.TopicSpec.make(ACTION, "qt_msgs/msg/ArmAction"),
        bf.TopicSpec.make(EVENTS, "qt_msgs/msg/EpisodeEvent"),
        bf.TopicSpec.make(INSTRUCTION, "std_msgs/msg/String"),
    ]
    log = ListLog()
    settings = {"end_grace_s": 0.0, "fsync": False, "min_free_mb": 0.0, **config}
    core = EpisodeRecorder(
        RecorderConfig(output_dir=tmp_path / "bags", **settings),
        specs,
        EVENTS,
        INSTRUCTION,
        clock_ns=time.time_ns,
        log=log,
    )
    return core, log


def _frame(stamp: int, recv: int | None = None) -> Incoming:
    data = bytes(STORE.serialize_cdr(image_msg(stamp, FRAME), "sensor_msgs/msg/Image"))
    return Incoming(CAMERA, data, recv or stamp, bf.header_stamp_ns(data))


def _event(
    kind: int, outcome: int, stamp: int, episode_id: str = "ep", text: str = "pick"
) -> tuple[EventInfo, Incoming]:
    data = bytes(STORE.serialize_cdr(event_msg(stamp, kind, outcome, episode_id, text), "qt_msgs/msg/EpisodeEvent"))
    return EventInfo(kind, outcome, episode_id, text, "task", -1, stamp), Incoming(EVENTS, data, stamp, stamp)


def _finish(core: EpisodeRecorder) -> None:
    core.tick()
    core.io.close()
    core._collect_results()


def _stamps(bag: Path, topic: str) -> list[int]:
    with AnyReader([bag]) as reader:
        conns = [c for c in reader.connections if c.topic == topic]
        return [bf.header_stamp_ns(raw) for _, _, raw in reader.messages(connections=conns)]


def test_episode_is_the_stamp_window_between_start_and_end(tmp_path: Path) -> None:
    """Frames handled just before START / just after END still land in the right episode."""
    core, log = _recorder(tmp_path, preroll_s=1.0)
    base = time.time_ns()
    core.on_message(_frame(base + 900))  # stamped before START: never in the episode
    core.on_message(_frame(base + 1010))  # stamped after START, handled before it (pre-roll)
    core.on_event(*_event(bf.EVENT_START, 0, base + 1000))
    for stamp in (base + 1100, base + 1200, base + 950):  # 950: a late frame from before START
        core.on_message(_frame(stamp))
    core.on_event(*_event(bf.EVENT_END, 1, base + 2000))
    core.on_message(_frame(base + 1990))  # stamped before END, handled after it (grace)
    core.on_message(_frame(base + 2010))  # after END: not in this episode
    _finish(core)
    bag = tmp_path / "bags" / "ep"
    assert _stamps(bag, CAMERA) == [base + 1010, base + 1100, base + 1200, base + 1990]
    assert [e for e in _stamps(bag, EVENTS)] == [base + 1000, base + 2000]
    custom = load_metadata(bag)["custom_data"]
    assert custom["outcome"] == "success" and custom["instruction"] == "pick" and custom["episode_id"] == "ep"
    assert custom["end_reason"] == "event" and custom["qt_bag_format"] == bf.BAG_FORMAT
    assert inspect_bag(bag).state == "incomplete"  # frames but no actions: not training data
    assert log.find("EPISODE_WRITTEN id=ep outcome=success messages=6")


def test_a_start_later_than_the_preroll_is_named(tmp_path: Path) -> None:
    """A START handled more than preroll_s after frames stamped after it (a sender discovered late;
    the robot eval's resumed trial in CI): those frames are gone, and the log says so."""
    period = 100_000_000
    for late_periods, warned in ((5, False), (15, True)):
        core, log = _recorder(tmp_path / str(late_periods), preroll_s=1.0)
        base = time.time_ns()
        for k in range(1, late_periods + 1):  # frames stamped after START, received on time
            core.on_message(_frame(base + k * period))
        core.on_event(*_event(bf.EVENT_START, 0, base))  # received late_periods periods after its stamp
        core.on_event(*_event(bf.EVENT_END, 1, base + (late_periods + 1) * period))
        _finish(core)
        frames = _stamps(tmp_path / str(late_periods) / "bags" / "ep", CAMERA)
        assert bool(log.find("START_LATE id=ep")) == warned
        assert (frames[0] > base + period) == warned  # what the warning is about: the first frames are gone


def test_service_driven_episode_writes_its_own_events_and_instruction(tmp_path: Path) -> None:
    core, _ = _recorder(tmp_path)
    instruction = bytes(
        STORE.serialize_cdr(STORE.types["std_msgs/msg/String"](data="push the cube"), "std_msgs/msg/String")
    )
    core.on_message(Incoming(INSTRUCTION, instruction, time.time_ns()))
    reply = core.start_episode("", task_id="push/blue", seed=7)
    assert reply.accepted and reply.instruction == "push the cube"  # taken from the latched topic
    assert not core.start_episode("other").accepted  # never silently replaced
    core.on_message(_frame(time.time_ns()))
    action = bytes(STORE.serialize_cdr(action_msg(time.time_ns(), np.zeros(5)), "qt_msgs/msg/ArmAction"))
    core.on_message(Incoming(ACTION, action, time.time_ns(), bf.header_stamp_ns(action)))
    assert core.end_episode("failure").accepted
    assert not core.end_episode("failure").accepted
    _finish(core)
    bag = tmp_path / "bags" / reply.episode_id
    with AnyReader([bag]) as reader:
        events = [reader.deserialize(raw, c.msgtype) for c, _, raw in reader.messages() if c.topic == EVENTS]
        topics = sorted({c.topic for c, _, _ in reader.messages()})
    assert [(e.event, e.outcome, e.instruction, e.task_id, e.seed) for e in events] == [
        (1, 0, "push the cube", "push/blue", 7),
        (2, 2, "push the cube", "push/blue", 7),
    ]
    assert topics == sorted([CAMERA, ACTION, EVENTS, INSTRUCTION])
    assert load_metadata(bag)["custom_data"]["task_id"] == "push/blue"


def test_start_without_any_instruction_is_refused(tmp_path: Path) -> None:
    core, _ = _recorder(tmp_path)
    reply = core.start_episode("")
    assert not reply.accepted and "instruction" in reply.message


def test_discard_deletes_the_episode(tmp_path: Path) -> None:
    core, log = _recorder(tmp_path)
    core.on_event(*_event(bf.EVENT_START, 0, time.time_ns(), "thrown"))
    core.on_message(_frame(time.time_ns()))
    core.on_event(*_event(bf.EVENT_END, 3, time.time_ns(), "thrown"))
    _finish(core)
    assert not (tmp_path / "bags" / "thrown").exists()
    assert log.find("EPISODE_DISCARDED id=thrown")


def test_end_for_another_episode_and_old_history_are_ignored(tmp_path: Path) -> None:
    core, log = _recorder(tmp_path)
    core.ignore_events_before_ns = time.time_ns()
    assert not core.on_event(*_event(bf.EVENT_START, 0, core.ignore_events_before_ns - 10, "old")).accepted
    assert not core.recording
    core.on_event(*_event(bf.EVENT_START, 0, time.time_ns(), "mine"))
    assert not core.on_event(*_event(bf.EVENT_END, 1, time.time_ns(), "theirs")).accepted
    assert core.recording and core.episode_id == "mine"
    assert log.find("END for 'theirs' but 'mine' is open")


def test_shutdown_finalises_the_open_bag_unlabelled(tmp_path: Path) -> None:
    core, _ = _recorder(tmp_path)
    core.on_event(*_event(bf.EVENT_START, 0, time.time_ns(), "cut"))
    core.on_message(_frame(time.time_ns()))
    results = core.shutdown()
    assert [r.episode_id for r in results if r.ok] == ["cut"]
    status = inspect_bag(tmp_path / "bags" / "cut")
    assert status.state == "unlabelled" and status.custom["outcome"] == "interrupted"
    assert status.custom["end_reason"] == "shutdown"


def test_unwritable_output_dir_refuses_with_a_clear_error(tmp_path: Path) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("a file where the bag folder should be")
    specs_core, log = _recorder(tmp_path)
    specs_core.config.output_dir = blocker / "bags"
    reply = specs_core.start_episode("pick")
    assert not reply.accepted and "Not a directory" in reply.message and "not_a_dir" in reply.message
    assert log.find("RECORDING_REFUSED")


def test_write_failure_stops_the_episode_and_keeps_earlier_ones(tmp_path: Path) -> None:
    core, log = _recorder(tmp_path)
    core.start_episode("first", episode_id="first")
    core.on_message(_frame(time.time_ns()))
    core.on_message(_action(time.time_ns()))
    core.end_episode("success")
    core.tick()
    core.start_episode("second", episode_id="second")
    core.on_message(_frame(time.time_ns()))
    shutil.rmtree(tmp_path / "bags" / "second")  # the disk/folder disappears under the recorder
    core.end_episode("success")
    _finish(core)
    failed = log.find("RECORDING_FAILED id=second")
    assert failed and "earlier episodes are intact" in failed[0]
    assert not core.recording and core.last_error
    assert inspect_bag(tmp_path / "bags" / "first").state == "ok"
    assert _stamps(tmp_path / "bags" / "first", CAMERA)


def test_next_episodes_messages_handled_before_end_go_to_the_next_episode(tmp_path: Path) -> None:
    """The executor may hand over the next episode's first frame and instruction before END."""
    core, _ = _recorder(tmp_path, end_grace_s=0.5)
    base = time.time_ns()
    start1 = _event(bf.EVENT_START, 0, base + 1000, "one")
    core.on_event(start1[0], Incoming(EVENTS, start1[1].data, base + 1000, base + 1000))
    core.on_message(_frame(base + 1100))
    core.on_message(_frame(base + 1200))
    core.on_message(_frame(base + 2100))  # stamped after END: belongs to episode two
    text = STORE.types["std_msgs/msg/String"](data="second task")
    core.on_message(Incoming(INSTRUCTION, bytes(STORE.serialize_cdr(text, "std_msgs/msg/String")), base + 2060))
    info, end = _event(bf.EVENT_END, 1, base + 2000, "one")
    core.on_event(info, Incoming(EVENTS, end.data, base + 2010, base + 2000))
    core.on_event(*_event(bf.EVENT_START, 0, base + 2050, "two", text="second task"))
    core.on_event(*_event(bf.EVENT_END, 2, base + 3000, "two", text="second task"))
    core.shutdown()
    assert _stamps(tmp_path / "bags" / "one", CAMERA) == [base + 1100, base + 1200]
    assert _stamps(tmp_path / "bags" / "two", CAMERA) == [base + 2100]
    with AnyReader([tmp_path / "bags" / "one"]) as reader:
        assert not [c for c in reader.connections if c.topic == INSTRUCTION and c.msgcount]
    assert load_metadata(tmp_path / "bags" / "two")["custom_data"]["outcome"] == "failure"


def test_bad_settings_are_refused_by_name(tmp_path: Path) -> None:
    import pytest

    with pytest.raises(ValueError, match="end_grace_s: expected >= 0"):
        RecorderConfig(output_dir=tmp_path, end_grace_s=-1)
    with pytest.raises(ValueError, match="control_rate_hz"):
        RecorderConfig(output_dir=tmp_path, control_rate_hz=0)


def _action(stamp: int) -> Incoming:
    data = bytes(STORE.serialize_cdr(action_msg(stamp, np.zeros(5, np.float32)), "qt_msgs/msg/ArmAction"))
    return Incoming(ACTION, data, stamp, bf.header_stamp_ns(data))


def test_start_waits_until_every_required_topic_delivered(tmp_path: Path) -> None:
    """Issue 14 item 8: a START before the camera and actions arrived waits; then it records from its stamp."""
    core, log = _recorder(tmp_path, preroll_s=1.0, required_topics=(CAMERA, ACTION), control_rate_hz=10.0)
    base = time.time_ns()
    period = 100_000_000
    reply = core.on_event(*_event(bf.EVENT_START, 0, base))
    assert reply.accepted and not core.recording and log.find("EPISODE_WAITING id=ep missing=")
    core.on_message(_action(base + period))  # actions first: still waiting for the camera
    assert not core.recording
    core.on_message(_frame(base + 3 * period))  # two frames missing at the start
    assert core.recording
    core.on_message(_action(base + 3 * period))
    core.on_event(*_event(bf.EVENT_END, 1, base + 5 * period))
    _finish(core)
    bag = tmp_path / "bags" / "ep"
    assert _stamps(bag, CAMERA) == [base + 3 * period]
    assert _stamps(bag, ACTION) == [base + period, base + 3 * period]
    assert load_metadata(bag)["custom_data"]["sequence_gaps"] == "2"  # frames missing at the start


def test_a_waiting_start_keeps_everything_stamped_after_it(tmp_path: Path) -> None:
    """While a START waits for a late topic, what the other topics deliver is kept whole, not only
    the pre-roll ring's last preroll_s (the short soak lost its first 2 s of frames that way)."""
    core, _ = _recorder(tmp_path, preroll_s=0.0, required_topics=(CAMERA, ACTION), control_rate_hz=10.0)
    base = time.time_ns()
    period = 100_000_000
    core.on_event(*_event(bf.EVENT_START, 0, base))
    for k in range(1, 4):
        core.on_message(_action(base + k * period))  # the camera is late
    assert not core.recording
    core.on_message(_frame(base + 4 * period))
    core.on_event(*_event(bf.EVENT_END, 1, base + 5 * period))
    _finish(core)
    assert _stamps(tmp_path / "bags" / "ep", ACTION) == [base + k * period for k in range(1, 4)]


def test_an_episode_the_recorder_did_not_see_is_not_recorded(tmp_path: Path) -> None:
    """START and END before the camera ever delivered (the 0-image bag of the start-up race): no bag,
    a named failure; likewise a START whose topics stay silent past ready_timeout_s."""
    core, log = _recorder(tmp_path, required_topics=(CAMERA, ACTION), ready_timeout_s=0.0)
    base = time.time_ns()
    core.on_event(*_event(bf.EVENT_START, 0, base))
    core.on_message(_action(base + 1))
    reply = core.on_event(*_event(bf.EVENT_END, 1, base + 2))
    assert not reply.accepted and "not recorded: ended_before_topics_ready" in reply.message
    assert log.find(f"EPISODE_NOT_RECORDED id=ep reason=ended_before_topics_ready missing=['{CAMERA}']")
    core.on_event(*_event(bf.EVENT_START, 0, base + 3, episode_id="late"))
    time.sleep(0.01)
    core.tick()  # ready_timeout_s passed
    assert log.find("EPISODE_NOT_RECORDED id=late reason=topics_not_ready")
    _finish(core)
    assert not (tmp_path / "bags").exists() or not any((tmp_path / "bags").iterdir())


def test_a_bag_without_actions_or_frames_is_incomplete(tmp_path: Path) -> None:
    """Item 8: qt bags check must not call a bag with no frames (or no actions) ok."""
    core, _ = _recorder(tmp_path)
    base = time.time_ns()
    core.on_event(*_event(bf.EVENT_START, 0, base))
    core.on_message(_action(base + 10))
    core.on_event(*_event(bf.EVENT_END, 1, base + 20))
    _finish(core)
    status = inspect_bag(tmp_path / "bags" / "ep")
    assert status.state == "incomplete" and status.detail == "no camera frames (outcome 'success')"


def test_log_times_follow_delivery_order_per_topic() -> None:
    """A sample repaired after a loss arrives with a later reception time than the ones after it;
    the log times (the order a bag is read back in) keep delivery order on each topic, and one
    topic's late sample never holds back another topic."""
    log_time = DeliveryOrderLogTimes()
    received = [("/a", 100), ("/a", 300), ("/b", 150), ("/a", 200), ("/a", 400), ("/b", 160)]
    logged = [log_time(topic, ns) for topic, ns in received]
    assert logged == [100, 300, 150, 300, 400, 160]
    for topic in ("/a", "/b"):
        mine = [ns for (t, _), ns in zip(received, logged, strict=True) if t == topic]
        assert mine == sorted(mine)
