"""The scripted expert's teleop node in a real process against the sim driver (keyboard and joy
teleop: tests/teleop)."""

from __future__ import annotations

import re

import numpy as np
from helpers.processes import python_child, ros_args
from qt_common.action_spec import ActionSpec

from qt_msgs.msg import ArmAction, EpisodeEvent

STARTUP_S = 60


def test_expert_operator_runs_labelled_episodes_against_the_driver(children, peer):
    events = peer.subscribe(EpisodeEvent, "/episode/events", depth=50, latched=True)
    actions = peer.subscribe(ArmAction, "/qt/action", depth=500)
    driver = python_child("qt_sim.driver_node", *ros_args(image_width=32, image_height=32))
    children.append(driver)
    driver.wait_for_line("sim_driver ready", timeout=STARTUP_S)
    expert = python_child("qt_sim.expert_teleop", *ros_args(
        num_episodes=3, tasks="pick/red,push/green/yellow,place/blue/purple", seed=7, start_delay_s=0.2))
    children.append(expert)
    peer.spin_until(lambda: "EXPERT_DONE" in expert.output() or expert.popen.poll() is not None, 90, "3 episodes")
    done = expert.wait_for_line(r"EXPERT_DONE episodes=(\d+) successes=(\d+)", timeout=5)
    assert done[1] == "3" and done[2] == "3", expert.output()
    assert expert.wait(timeout=20) == 0
    peer.spin_until(lambda: sum(e.event == EpisodeEvent.EVENT_END for e in events) >= 3, 10, "3 END events")
    assert expert.output().count("ended: SUCCESS") == 3

    # The event stream alone labels each episode: START (task, seed, instruction) ... END SUCCESS.
    # (Only this test's episodes count: a parallel test session may share the random domain.)
    ours = [e for e in events if re.match(r"(pick-red|push-green-yellow|place-blue-purple)-s[789]-", e.episode_id)]
    starts = [e for e in ours if e.event == EpisodeEvent.EVENT_START]
    ends = [e for e in ours if e.event == EpisodeEvent.EVENT_END]
    assert [(s.task_id, s.seed) for s in starts] == [("pick/red", 7), ("push/green/yellow", 8),
                                                       ("place/blue/purple", 9)]
    assert [e.episode_id for e in ends] == [s.episode_id for s in starts]
    assert all(e.outcome == EpisodeEvent.OUTCOME_SUCCESS for e in ends)

    # Commands look like any teleop device's: spec names, values and matching bins, source EXPERT.
    spec = ActionSpec.default()
    expert_actions = [m for m in actions if m.source == ArmAction.SOURCE_EXPERT]
    assert len(expert_actions) > 30
    for msg in expert_actions:
        assert list(msg.dimension_names) == spec.names
        assert msg.num_bins == 256 and msg.header.frame_id == "base_link"
        np.testing.assert_array_equal(spec.values_to_bins(np.array(msg.values, dtype=np.float64)), msg.bins)
