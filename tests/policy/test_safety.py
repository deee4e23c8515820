"""The safety layer alone: every rule, its counting, and "stop once, then silence"."""

from __future__ import annotations

import numpy as np
import pytest
from qt_common.action_spec import ActionSpec
from qt_policy_node.safety import (
    CLIP,
    ESTOP,
    INSTRUCTION_MISSING,
    INSTRUCTION_OK,
    INSTRUCTION_UNKNOWN,
    MODEL_FAULT,
    NO_HEARTBEAT,
    NO_INSTRUCTION,
    SLEW,
    STALE_IMAGE,
    STALE_PROPRIO,
    UNKNOWN_INSTRUCTION,
    SafetyConfig,
    SafetyLayer,
)

SPEC = ActionSpec.default()  # dx dy dz dyaw gripper
FRESH = {"image_age_s": 0.01, "instruction_state": INSTRUCTION_OK, "heartbeat_age_s": 0.01, "proprio_age_s": 0.01}


def layer(**config) -> SafetyLayer:
    return SafetyLayer(SPEC, SafetyConfig(**config))


def step(safety: SafetyLayer, action, **inputs):
    holds = safety.hold_conditions(**{**FRESH, **inputs})
    command = safety.command(holds, None if action is None else np.asarray(action, dtype=np.float32))
    return command.publish, command.values.copy(), list(command.interventions)


def test_action_inside_limits_passes_unchanged():
    safety = layer()
    published, values, interventions = step(safety, [0.01, -0.01, 0.0, 0.05, 1.0])
    assert published
    np.testing.assert_allclose(values, [0.01, -0.01, 0.0, 0.05, 1.0], atol=1e-7)
    assert interventions == []
    assert safety.total_interventions == 0


def test_clip_to_action_spec_is_counted():
    safety = layer()
    published, values, interventions = step(safety, [0.5, -0.5, 0.0, 0.0, 3.0])
    assert published
    np.testing.assert_allclose(values, [0.02, -0.02, 0.0, 0.0, 1.0])
    assert interventions == [CLIP]
    assert safety.counts[CLIP] == 1 and safety.total_interventions == 1


def test_float32_rounding_at_the_range_end_is_not_a_clip():
    # float32(0.15) is 0.15000000596; the model's top bin must not count as an intervention.
    safety = layer()
    _, values, interventions = step(safety, np.float32([0.02, -0.02, 0.02, 0.15, -1.0]))
    assert interventions == []
    assert values[3] <= 0.15


def test_slew_rate_limit_ramps_each_dimension():
    safety = layer(slew_limit=(0.005, 0.005, 0.005, 0.05, 0.0))
    _, first, interventions = step(safety, [0.02, -0.02, 0.0, 0.15, 1.0])
    np.testing.assert_allclose(first, [0.005, -0.005, 0.0, 0.05, 1.0])  # gripper: 0 = unlimited
    assert interventions == [SLEW]
    _, second, _ = step(safety, [0.02, -0.02, 0.0, 0.15, -1.0])
    np.testing.assert_allclose(second, [0.01, -0.01, 0.0, 0.1, -1.0])
    _, third, interventions = step(safety, [0.01, -0.01, 0.0, 0.1, -1.0])
    np.testing.assert_allclose(third, [0.01, -0.01, 0.0, 0.1, -1.0])
    assert interventions == []
    assert safety.counts[SLEW] == 2


@pytest.mark.parametrize(
    ("inputs", "rule"),
    [
        ({"image_age_s": None}, STALE_IMAGE),
        ({"image_age_s": 0.9}, STALE_IMAGE),
        ({"instruction_state": INSTRUCTION_MISSING}, NO_INSTRUCTION),
        ({"instruction_state": INSTRUCTION_UNKNOWN}, UNKNOWN_INSTRUCTION),
        ({"heartbeat_age_s": None}, NO_HEARTBEAT),
        ({"heartbeat_age_s": 2.0}, NO_HEARTBEAT),
        ({"proprio_age_s": None}, STALE_PROPRIO),
        ({"proprio_age_s": 0.6}, STALE_PROPRIO),
    ],
)
def test_hold_publishes_stop_once_then_nothing_until_cleared(inputs, rule):
    safety = layer(image_timeout_s=0.5, require_heartbeat=True, heartbeat_timeout_s=1.0, require_proprio=True,
                   proprio_timeout_s=0.5)
    assert step(safety, [0.01, 0.01, 0.01, 0.1, 1.0])[0]
    published, values, interventions = step(safety, [0.01, 0.01, 0.01, 0.1, 1.0], **inputs)
    assert published and interventions == [rule]
    np.testing.assert_array_equal(values, SPEC.neutral_values())  # exactly "no motion"
    for _ in range(5):
        published, _, interventions = step(safety, [0.01, 0.01, 0.01, 0.1, 1.0], **inputs)
        assert not published and interventions == [rule]
    assert safety.counts[rule] == 6
    published, values, interventions = step(safety, [0.01, 0.01, 0.01, 0.1, 1.0])
    assert published and interventions == []
    assert values[0] == pytest.approx(0.01)


def test_first_hold_after_activation_publishes_the_stop():
    safety = layer()
    published, values, interventions = step(safety, None, image_age_s=None)
    assert published and interventions == [STALE_IMAGE]
    np.testing.assert_array_equal(values, SPEC.neutral_values())
    assert not step(safety, None, image_age_s=None)[0]


def test_heartbeat_and_proprio_are_ignored_unless_required():
    safety = layer(require_heartbeat=False, require_proprio=False)
    published, _, interventions = step(safety, [0.0] * 5, heartbeat_age_s=None, proprio_age_s=None)
    assert published and interventions == []


def test_all_active_hold_conditions_are_reported_together():
    safety = layer(require_heartbeat=True)
    safety.on_estop(True)
    _, _, interventions = step(safety, None, image_age_s=None, instruction_state=INSTRUCTION_MISSING,
                               heartbeat_age_s=None)
    assert interventions == [ESTOP, STALE_IMAGE, NO_INSTRUCTION, NO_HEARTBEAT]
    assert safety.total_interventions == 4


def test_estop_latches_until_reset_and_reset_needs_the_input_released():
    safety = layer()
    assert step(safety, [0.01, 0, 0, 0, 0])[0]
    safety.on_estop(True)
    published, values, interventions = step(safety, [0.01, 0, 0, 0, 0])
    assert published and interventions == [ESTOP]
    np.testing.assert_array_equal(values, SPEC.neutral_values())
    ok, message = safety.reset_estop()
    assert not ok and "still asserted" in message
    safety.on_estop(False)  # releasing the button does not resume motion by itself
    published, _, interventions = step(safety, [0.01, 0, 0, 0, 0])
    assert not published and interventions == [ESTOP]
    ok, _ = safety.reset_estop()
    assert ok and not safety.estop_latched
    published, values, interventions = step(safety, [0.01, 0, 0, 0, 0])
    assert published and interventions == [] and values[0] == pytest.approx(0.01)


def test_estop_latch_survives_restart_but_counters_do_not():
    safety = layer()
    safety.on_estop(True)
    step(safety, None)
    assert safety.total_interventions == 1
    safety.restart()
    assert safety.estop_latched
    assert safety.total_interventions == 0 and all(n == 0 for n in safety.counts.values())


@pytest.mark.parametrize("bad", [[np.nan, 0, 0, 0, 0], [0, 0, np.inf, 0, 0], None])
def test_non_finite_or_missing_model_output_is_never_motion(bad):
    safety = layer()
    assert step(safety, [0.01, 0, 0, 0, 0])[0]
    published, values, interventions = step(safety, bad)
    assert published and interventions == [MODEL_FAULT]
    np.testing.assert_array_equal(values, SPEC.neutral_values())
    published, _, _ = step(safety, bad)
    assert not published
    assert np.isfinite(values).all()


def test_slew_after_a_hold_restarts_from_stop():
    safety = layer(slew_limit=(0.005, 0.005, 0.005, 0.05, 0.0))
    for _ in range(5):
        step(safety, [0.02, 0, 0, 0, 0])
    step(safety, [0.02, 0, 0, 0, 0], image_age_s=None)
    _, values, interventions = step(safety, [0.02, 0, 0, 0, 0])
    assert values[0] == pytest.approx(0.005) and interventions == [SLEW]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"slew_limit": (0.1, 0.1)}, "slew_limit"),
        ({"slew_limit": (0.1, 0.1, 0.1, -0.1, 0.0)}, "slew_limit"),
        ({"image_timeout_s": 0.0}, "image_timeout_s"),
        ({"heartbeat_timeout_s": -1.0}, "heartbeat_timeout_s"),
        ({"proprio_timeout_s": 0.0}, "proprio_timeout_s"),
    ],
)
def test_bad_config_names_the_field(config, field):
    with pytest.raises(ValueError, match=field):
        layer(**config)
