"""The policy node as a real process over real DDS, driven by a probe node in the test process.

Each test starts ``python -m qt_policy_node.node`` with a tiny exported model in a namespace of
its own and checks what arrives on the command topics: rate, content, and the safety layer's
"stop once, then silence" for e-stop, stale camera, missing heartbeat, bad frames and NaN.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from helpers.policy_models import KNOWN_INSTRUCTION, TINY_IMAGE_SIZE, edit_card
from helpers.policy_probe import PolicyProbe, start_policy_node, unique_namespace
from qt_common.action_spec import ActionDimension, ActionSpec

from qt_msgs.msg import ArmAction

SPEC = ActionSpec.default()
TINY_SIZE = {"image_height": TINY_IMAGE_SIZE[0], "image_width": TINY_IMAGE_SIZE[1]}
STARTUP_S = 60.0


def is_stop(msg: ArmAction) -> bool:
    return list(msg.values) == list(SPEC.neutral_values())


def run_node(children, model, namespace, **params):
    """Start an autostarting policy node and wait until it is active."""
    params = {"autostart": True, "use_text_encoder": False, **TINY_SIZE, **params}
    node = start_policy_node(model, namespace, **params)
    children.append(node)
    node.wait_for_line(r"policy_node: ready", STARTUP_S)
    return node


def moving_policy(children, model, rate_hz: float = 20.0, **params):
    """A probe with the camera running and the instruction set, once motion commands flow."""
    namespace = unique_namespace()
    node = run_node(children, model, namespace, control_rate_hz=rate_hz, **params)
    probe = PolicyProbe(namespace, TINY_IMAGE_SIZE)
    probe.wait_for_policy_node()
    probe.instruct(KNOWN_INSTRUCTION)
    probe.start_camera(30.0)
    probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.messages), 20.0, "first motion command")
    return node, probe


def is_zero_twist(msg) -> bool:
    t = msg.twist
    return not any((t.linear.x, t.linear.y, t.linear.z, t.angular.x, t.angular.y, t.angular.z))


def _stamp_wall_s(msg) -> float:
    return msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9


def assert_single_stop_then_silence(probe: PolicyProbe, since: float, silence_s: float = 1.0) -> None:
    """After ``since``: motion may still arrive briefly, then exactly one stop, then nothing.

    Actions are checked in arrival order. Twists are checked by their header stamp (the node's
    clock when it published them), not by arrival, and a zero twist is not taken for the stop: a
    command that moves only the gripper has one too, and the probe runs one callback at a time, so
    the twist of a tick before ``since`` can arrive after it (a CI run failed on exactly that: zero,
    motion, stop). The node stamps the twist before it publishes the action of the same tick, so a
    twist stamped later than the stop action's arrival is a command after the stop.
    """
    since_wall = time.time() - (time.monotonic() - since)
    probe.wait_until(lambda: any(is_stop(m) for m in probe.actions.since(since)), 5.0, "stop command")
    probe.spin(silence_s)
    after = probe.actions.since(since)
    first_stop = next(i for i, m in enumerate(after) if is_stop(m))
    assert len(after) == first_stop + 1, f"commands after the stop: {after[first_stop:]}"
    stop_arrived_wall = next(wall for _, wall, m in probe.actions.items_since(since) if is_stop(m))
    published = sorted((m for m in probe.twists.messages if _stamp_wall_s(m) >= since_wall), key=_stamp_wall_s)
    assert published and is_zero_twist(published[-1]), f"no zero twist published after the stop: {published}"
    later = [m for m in published if _stamp_wall_s(m) > stop_arrived_wall]
    assert not later, f"twists published after the stop: {later}"


def test_commands_arrive_at_the_control_rate_with_consistent_content(tiny_model, children):
    rate = 20.0
    node, probe = moving_policy(children, tiny_model, rate_hz=rate)
    with probe:
        probe.spin(0.5)
        start = time.monotonic()
        probe.spin(3.0)
        window = probe.actions.since(start)
        measured = len(window) / 3.0
        assert 0.6 * rate <= measured <= 1.2 * rate, f"{measured:.1f} commands/s at control_rate_hz={rate}"
        for msg in window:
            assert msg.source == ArmAction.SOURCE_POLICY
            assert list(msg.dimension_names) == SPEC.names and msg.num_bins == SPEC.num_bins
            values = np.array(msg.values)
            assert np.all(values >= SPEC.low - 1e-6) and np.all(values <= SPEC.high + 1e-6)
            np.testing.assert_array_equal(np.array(msg.bins), SPEC.values_to_bins(values.astype(np.float32)))
            assert msg.header.frame_id == "base_link"
        # The same decision in the three command forms: twist = delta per step / control period.
        per_step = {round(m.values[0], 5) for m in probe.actions.messages}
        assert {round(t.twist.linear.x / rate, 5) for t in probe.twists.messages} <= per_step
        assert {round(g.data, 5) for g in probe.grippers.messages} <= {round(m.values[4], 5)
                                                                       for m in probe.actions.messages}
        statuses = probe.statuses.since(start)
        assert abs(len(statuses) - len(window)) <= 2  # one status per tick
        decided = [s for s in statuses if len(s.bins) == SPEC.num_dims]
        assert decided and all(s.execution_provider == "CPUExecutionProvider" for s in statuses)
        assert all(0.0 <= q <= 1.0 for s in decided for q in s.q_values)
        assert any(s.inference_latency_ms > 0 for s in decided)
        assert all(0 <= s.observation_age_ms < 500 for s in decided)
        probe.wait_until(lambda: len(probe.diagnostics) > 0, 5.0, "/diagnostics")
        status = probe.diagnostics.messages[-1].status[0]
        values = {kv.key: kv.value for kv in status.values}
        assert values["execution_provider"] == "CPUExecutionProvider" and values["state"] == "active"
        assert int(values["decodes"]) > 0
    assert node.stop() == 0
    assert "deactivate: published the stop command" in node.output()


def test_estop_stops_once_latches_and_needs_a_reset(tiny_model, children):
    _, probe = moving_policy(children, tiny_model)
    with probe:
        pressed = time.monotonic()
        probe.estop(True)
        assert_single_stop_then_silence(probe, pressed)
        latest = probe.statuses.messages[-1]
        assert latest.estop_latched and "estop" in latest.interventions and latest.intervention_count > 0
        refused = probe.reset_estop()
        assert not refused.success and "still asserted" in refused.message
        released = time.monotonic()
        probe.estop(False)
        probe.spin(0.7)
        assert probe.actions.since(released) == []  # releasing alone never resumes motion
        assert probe.reset_estop().success
        probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.since(released)), 5.0, "motion after reset")
        probe.wait_until(lambda: not probe.statuses.messages[-1].estop_latched, 5.0, "status without the latch")


def test_stale_camera_stops_once_until_frames_return_on_either_camera_topic(tiny_model, children):
    _, probe = moving_policy(children, tiny_model, image_timeout_s=0.3)
    with probe:
        stopped = time.monotonic()
        probe.stop_camera()
        assert_single_stop_then_silence(probe, stopped)
        assert "stale_image" in probe.statuses.messages[-1].interventions
        resumed = time.monotonic()
        compressed = probe.every(30.0, probe.publish_compressed)  # the CompressedImage input counts too
        probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.since(resumed)), 5.0, "motion again")
        probe.cancel(compressed)


def test_missing_heartbeat_holds_the_arm(tiny_model, children):
    namespace = unique_namespace()
    run_node(children, tiny_model, namespace, control_rate_hz=20.0, require_heartbeat=True, heartbeat_timeout_s=0.4)
    with PolicyProbe(namespace, TINY_IMAGE_SIZE) as probe:
        probe.wait_for_policy_node()
        probe.instruct(KNOWN_INSTRUCTION)
        probe.start_camera(30.0)
        probe.wait_until(lambda: any("no_heartbeat" in s.interventions for s in probe.statuses.messages), 10.0,
                         "no_heartbeat status")
        probe.spin(0.5)
        assert all(is_stop(m) for m in probe.actions.messages) and len(probe.actions) <= 1
        beating = probe.every(10.0, probe.heartbeat)
        probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.messages), 5.0, "motion with heartbeat")
        lost = time.monotonic()
        probe.cancel(beating)
        assert_single_stop_then_silence(probe, lost)
        assert "no_heartbeat" in probe.statuses.messages[-1].interventions


def test_bad_frames_and_unknown_instruction_never_move_the_arm(tiny_model, children):
    namespace = unique_namespace()
    node = run_node(children, tiny_model, namespace, control_rate_hz=20.0, log_throttle_s=1.0)
    with PolicyProbe(namespace, TINY_IMAGE_SIZE) as probe:
        probe.wait_for_policy_node()
        probe.instruct(KNOWN_INSTRUCTION)
        probe.start_camera(30.0, encoding="bgra8", size=(96, 96))  # wrong size
        probe.spin(1.5)
        probe.start_camera(30.0, encoding="mono16")  # wrong encoding
        probe.spin(1.5)
        assert all(is_stop(m) for m in probe.actions.messages) and len(probe.actions) <= 1
        assert node.popen.poll() is None, node.output()
        rejections = [line for line in node.output().splitlines() if "rejected camera frame" in line]
        assert any("Image size: got 96x96" in line for line in rejections)
        assert any("Image.encoding: got 'mono16'" in line for line in rejections)
        assert len(rejections) <= 6, "bad-input warnings must be throttled"  # ~90 frames were sent
        probe.start_camera(30.0)
        probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.messages), 5.0, "motion on good frames")
        changed = time.monotonic()
        probe.instruct("juggle all the cubes")  # not in the card; the encoder is off in run_node
        assert_single_stop_then_silence(probe, changed)
        assert "unknown_instruction" in probe.statuses.messages[-1].interventions
        assert "not in the model card's embedding cache" in node.output()


def test_nan_from_the_model_is_rejected(nan_model, children):
    namespace = unique_namespace()
    node = run_node(children, nan_model, namespace, control_rate_hz=20.0)
    with PolicyProbe(namespace, TINY_IMAGE_SIZE) as probe:
        probe.wait_for_policy_node()
        probe.instruct(KNOWN_INSTRUCTION)
        probe.start_camera(30.0)
        probe.wait_until(lambda: any("model_fault" in s.interventions for s in probe.statuses.messages), 10.0,
                         "model_fault status")
        probe.spin(1.0)
        assert all(is_stop(m) for m in probe.actions.messages) and len(probe.actions) <= 1
        assert all(np.isfinite(s.action).all() for s in probe.statuses.messages)
        assert node.popen.poll() is None
        node.wait_for_line(r"model fault, holding still", 5.0)


def test_lifecycle_transitions_over_the_services(tiny_model, children):
    namespace = unique_namespace()
    node = start_policy_node(tiny_model, namespace, use_text_encoder=False, control_rate_hz=20.0, **TINY_SIZE)
    children.append(node)
    with PolicyProbe(namespace, TINY_IMAGE_SIZE) as probe:
        assert probe.state() == "unconfigured"
        assert probe.transition("configure") and probe.state() == "inactive"
        probe.wait_for_policy_node()
        probe.instruct(KNOWN_INSTRUCTION)
        probe.start_camera(30.0)
        probe.spin(0.8)
        assert len(probe.actions) == 0 and len(probe.statuses) == 0  # configured is not moving
        assert probe.transition("activate") and probe.state() == "active"
        probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.messages), 10.0, "motion when active")
        deactivated = time.monotonic()
        assert probe.transition("deactivate") and probe.state() == "inactive"
        probe.spin(0.8)
        after = probe.actions.since(deactivated)
        assert after and is_stop(after[-1]) and sum(map(is_stop, after)) == 1
        assert probe.transition("cleanup") and probe.state() == "unconfigured"
        assert probe.transition("configure") and probe.transition("activate")
        again = time.monotonic()
        probe.wait_until(lambda: any(not is_stop(m) for m in probe.actions.since(again)), 10.0, "motion after reset")


@pytest.fixture
def bad_artefacts(tiny_model, tmp_path):
    """(model dir, extra params, expected error fragments) per way an artefact can be wrong."""
    other_spec = ActionSpec(tuple(ActionDimension(d.name, d.low * 2, d.high * 2, d.unit) for d in SPEC.dimensions))
    spec_file = tmp_path / "wide_spec.json"
    spec_file.write_text(json.dumps(other_spec.to_dict()))
    return [
        (tiny_model, {"image_height": 96, "image_width": 96},
         ["policy.json field 'image'", "model has (48, 64)", "configured for (96, 96)"]),
        (tiny_model, {"action_spec_file": str(spec_file)},
         ["policy.json field 'action_spec_digest'", SPEC.digest(), other_spec.digest()]),
        (tmp_path / "missing", {}, ["model_path:", "has no policy.onnx + policy.json"]),
        (edit_card(tiny_model, tmp_path / "wrong_format", format="something-else"), {},
         ["field 'format' must be 'qt-policy'"]),
    ]


def test_bad_artefact_is_refused_with_a_clear_error(bad_artefacts, children):
    started = []
    for model, params, _ in bad_artefacts:
        node = start_policy_node(model, unique_namespace(), autostart=True, use_text_encoder=False,
                                 **{**TINY_SIZE, **params})
        children.append(node)
        started.append(node)
    for node, (_, _, fragments) in zip(started, bad_artefacts, strict=True):
        assert node.wait(timeout=STARTUP_S) == 1, node.output()
        output = node.output()
        assert "configure failed" in output
        for fragment in fragments:
            assert fragment in output, f"{fragment!r} missing from:\n{output}"
