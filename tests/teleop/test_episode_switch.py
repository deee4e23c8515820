"""EpisodeSwitch in events mode, in process against a real rclpy node: the operator is told when
a START has no recorder to hear it, and only then."""

from __future__ import annotations

import uuid

from qt_teleop.episodes import EPISODE_PARAMETERS, EpisodeSwitch

from qt_msgs.msg import EpisodeEvent


def test_a_start_without_a_subscriber_names_the_missing_recorder(peer):
    topic = f"/episode_switch_{uuid.uuid4().hex[:8]}/events"  # no other node shares this topic
    lines: list[str] = []
    switch = EpisodeSwitch(peer.node, {**EPISODE_PARAMETERS, "episode_mode": "events", "events_topic": topic},
                           lines.append)
    switch.request("start")
    assert lines[0].startswith("EPISODE START teleop-")
    assert lines[1].startswith(f"NO RECORDER: nothing subscribes to {topic}")
    switch.request("discard")

    events = peer.subscribe(EpisodeEvent, topic, latched=True)
    peer.spin_until(lambda: switch.events_pub.get_subscription_count() == 1, 10, "the recorder's match")
    del lines[:]
    switch.request("start")
    assert len(lines) == 1 and lines[0].startswith("EPISODE START")
    peer.spin_until(lambda: any(e.event == EpisodeEvent.EVENT_START for e in events), 10, "the START")
