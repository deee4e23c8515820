"""control_mode frame: a new camera frame starts the decision at once, at most at the control
rate, through the same safety layer; the timer ticks again when frames stop.

Clocks are explicit (the controller tests) or irrelevant (the node runs in this process with a
1 Hz control rate, so every frame sent within the test falls in one rate-limit window): counts
are asserted, never durations.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.policy_models import KNOWN_INSTRUCTION as INSTRUCTION
from helpers.policy_models import TINY_IMAGE_SIZE as IMAGE_SIZE
from qt_common.action_spec import ActionSpec
from qt_policy_node.controller import FrameTrigger, PolicyController, TickResult
from qt_policy_node.decoder import PolicyDecoder
from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.safety import ESTOP, HOLD_RULES, STALE_IMAGE, SafetyConfig, SafetyLayer

SPEC = ActionSpec.default()
PERIOD_S = 0.1


def controller_for(model_dir) -> PolicyController:
    decoder = PolicyDecoder(model_dir, expected_action_spec_digest=SPEC.digest(), expected_image_size=IMAGE_SIZE)
    card = decoder.card["text_encoder"]
    controller = PolicyController(decoder, SafetyLayer(SPEC, SafetyConfig(image_timeout_s=0.5)),
                                  InstructionEmbedder(card["embeddings"], int(card["dim"])))
    controller.embedder.set(INSTRUCTION)
    return controller


def image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (*IMAGE_SIZE, 3), dtype=np.uint8)


def on_frame(controller: PolicyController, trigger: FrameTrigger, now_s: float, stamp_s: float | None = None
             ) -> TickResult | None:
    """What the node does when a frame arrives in frame mode."""
    controller.set_image(image(round(now_s * 1e3)), now_s if stamp_s is None else stamp_s, received_s=now_s)
    if not trigger.on_frame(now_s, PERIOD_S):
        return None
    trigger.ticked(now_s, PERIOD_S)
    return controller.tick(now_s, None)


def test_a_frame_triggers_exactly_one_decision(tiny_model):
    controller, trigger = controller_for(tiny_model), FrameTrigger()
    result = on_frame(controller, trigger, 10.0)
    assert result is not None and result.decoded and result.command.publish and result.command.interventions == []
    assert result.observation_stamp_s == 10.0 and controller.decodes == 1
    assert not trigger.on_timer(10.05, PERIOD_S)  # frames are flowing: the timer stays quiet


def test_a_fast_camera_is_rate_limited_to_the_control_rate(tiny_model):
    controller, trigger = controller_for(tiny_model), FrameTrigger()
    results = [on_frame(controller, trigger, 10.0 + 0.01 * i) for i in range(200)]  # 100 Hz for 2 s, 10 Hz control
    ticks = [r for r in results if r is not None]
    assert 19 <= len(ticks) <= 21
    assert all(r.decoded for r in ticks) and controller.decodes == len(ticks)


def test_a_jittery_camera_at_the_control_rate_loses_no_frame(tiny_model):
    controller, trigger = controller_for(tiny_model), FrameTrigger()
    times = [10.0 + 0.101 * i + (0.02 if i % 2 else 0.0) for i in range(40)]  # 1 % slow, every other 20 ms late
    assert all(on_frame(controller, trigger, t) is not None for t in times)
    assert controller.decodes == 40


def test_a_frame_held_back_by_the_rate_limit_is_decided_by_the_next_timer_tick(tiny_model):
    """Camera at half the control rate: the timer's fill-in tick (no frame for 1.5 periods) takes
    the slot the next frame wanted; that frame is decided by the very next timer tick, as in
    timer mode, instead of waiting for the next fill-in."""
    controller, trigger = controller_for(tiny_model), FrameTrigger()

    def timer(now_s: float) -> None:
        if trigger.on_timer(now_s, PERIOD_S):
            trigger.ticked(now_s, PERIOD_S)
            controller.tick(now_s, None)

    for k in range(10):  # frames every 2 periods, timer ticks at phase 0.6 of each period
        frame_s = 10.0 + 2 * k * PERIOD_S
        on_frame(controller, trigger, frame_s)
        timer(frame_s + 0.6 * PERIOD_S)
        assert controller.decodes == k + 1  # this frame is decided by now
        timer(frame_s + 1.6 * PERIOD_S)


def test_the_timer_takes_over_when_frames_stop_and_the_stale_hold_wins(tiny_model):
    controller, trigger = controller_for(tiny_model), FrameTrigger()
    assert on_frame(controller, trigger, 10.0) is not None
    assert not trigger.on_timer(10.1, PERIOD_S)
    assert trigger.on_timer(10.15, PERIOD_S)
    trigger.ticked(10.6, PERIOD_S)
    held = controller.tick(10.6, None)  # the last frame is 0.6 s old, image_timeout_s 0.5
    assert STALE_IMAGE in held.command.interventions and not held.decoded
    late = on_frame(controller, trigger, 11.0, stamp_s=9.0)  # a frame that arrives already stale
    assert late is not None and STALE_IMAGE in late.command.interventions and not late.decoded


def test_estop_wins_over_a_frame_triggered_decision(tiny_model):
    controller, trigger = controller_for(tiny_model), FrameTrigger()
    controller.safety.on_estop(True)
    result = on_frame(controller, trigger, 10.0)
    assert result is not None and ESTOP in result.command.interventions and not result.decoded
    np.testing.assert_array_equal(result.command.values, controller.safety.stop_command())


def _image_msg(node, seed: int):
    from sensor_msgs.msg import Image

    height, width = IMAGE_SIZE
    msg = Image(height=height, width=width, encoding="rgb8", step=width * 3, data=image(seed).tobytes())
    msg.header.stamp = node.get_clock().now().to_msg()
    return msg


@pytest.mark.parametrize("mode", ["frame", "timer"])
def test_node_ticks_on_frames_only_in_frame_mode(make_node, tiny_model, mode):
    from rclpy.lifecycle import TransitionCallbackReturn
    from std_msgs.msg import String

    node = make_node(tiny_model, "control_rate_hz:=1.0", f"control_mode:={mode}")
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    node.trigger_activate()
    ticks: list[TickResult] = []
    node._publish_status = lambda result, now: ticks.append(result)
    node._on_instruction(String(data=INSTRUCTION))
    for seed in range(5):  # well inside one 1 s period
        node._on_image(_image_msg(node, seed))
    if mode == "frame":
        assert len(ticks) == 1 and ticks[0].decoded and not set(ticks[0].command.interventions) & set(HOLD_RULES)
        node._on_timer()  # frames are flowing: the timer does not add a tick
        assert len(ticks) == 1
    else:
        assert ticks == []
        node._on_timer()
        assert len(ticks) == 1 and ticks[0].decoded


def test_frame_and_timer_modes_send_the_same_command_for_the_same_frame(make_node, tiny_model):
    """Parity: frame mode changes when a decision is made, never what is sent: the same frame
    gives the same command in both modes, inside the action spec, echoing the frame's stamp."""
    from rclpy.lifecycle import TransitionCallbackReturn
    from std_msgs.msg import String

    sent = {}
    for mode in ("frame", "timer"):
        node = make_node(tiny_model, "control_rate_hz:=1.0", f"control_mode:={mode}")
        assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        node.trigger_activate()
        commands: list[tuple[np.ndarray, float]] = []
        node._publish_command = lambda values, stamp_s, out=commands: out.append((values.copy(), stamp_s))
        node._on_instruction(String(data=INSTRUCTION))
        msg = _image_msg(node, 7)
        node._on_image(msg)
        if mode == "timer":
            assert commands == []  # nothing before the tick
            node._on_timer()
        assert len(commands) == 1
        values, stamp_s = commands[0]
        assert stamp_s == msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        sent[mode] = values
    np.testing.assert_array_equal(sent["frame"], sent["timer"])
    assert ((sent["frame"] >= SPEC.low) & (sent["frame"] <= SPEC.high)).all()


def test_node_refuses_an_unknown_control_mode(make_node, tiny_model):
    from rclpy.lifecycle import TransitionCallbackReturn

    node = make_node(tiny_model, "control_mode:=sometimes")
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
