"""The action spec's bin <-> value map: exact "no motion", exact ends, monotonic, invertible."""

from __future__ import annotations

import numpy as np
import pytest
from qt_common.action_spec import ActionDimension, ActionSpec


@pytest.fixture
def spec() -> ActionSpec:
    return ActionSpec.default()


def test_default_spec_names_and_bins(spec):
    assert spec.names == ["dx", "dy", "dz", "dyaw", "gripper"]
    assert spec.num_bins == 256


def test_no_motion_is_exact(spec):
    neutral = spec.neutral_bins
    assert np.array_equal(neutral, [128] * 5)
    assert np.array_equal(spec.bins_to_values(neutral), np.zeros(5))  # exactly zero, not ~0
    assert np.array_equal(spec.values_to_bins(np.zeros(5)), neutral)


def test_end_bins_are_exact_limits(spec):
    assert np.array_equal(spec.bins_to_values(np.zeros(5, dtype=int)), spec.low)
    assert np.array_equal(spec.bins_to_values(np.full(5, 255)), spec.high)


def test_every_bin_round_trips_and_values_increase(spec):
    bins = np.repeat(np.arange(256)[:, None], 5, axis=1)
    values = spec.bins_to_values(bins)
    assert np.all(np.diff(values, axis=0) > 0)
    assert np.array_equal(spec.values_to_bins(values), bins)


def test_values_map_to_nearest_bin_and_clip(spec):
    rng = np.random.default_rng(0)
    values = rng.uniform(spec.low * 1.5, spec.high * 1.5, size=(1000, 5))
    bins = spec.values_to_bins(values)
    grid = spec.bins_to_values(np.repeat(np.arange(256)[:, None], 5, axis=1))
    clipped = spec.clip(values)
    for d in range(5):
        nearest = np.abs(grid[:, d][None, :] - clipped[:, d][:, None]).argmin(axis=1)
        assert np.array_equal(bins[:, d], nearest)


def test_normalized_round_trip(spec):
    n = np.array([[-1.0, -0.5, 0.0, 0.5, 1.0]])
    values = spec.normalized_to_values(n)
    assert values[0, 2] == 0.0
    assert np.allclose(spec.values_to_normalized(values), n)


def test_serialisation_round_trip(spec):
    again = ActionSpec.from_dict(spec.to_dict())
    assert again == spec and again.digest() == spec.digest()


def test_asymmetric_range_keeps_neutral_exact():
    spec = ActionSpec((ActionDimension("lift", -0.01, 0.03, "m"),), num_bins=256)
    assert spec.bins_to_values(spec.neutral_bins[None])[0, 0] == 0.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ({"num_bins": 256}, "missing field 'dimensions'"),
        ({"num_bins": 256, "dimensions": [{"name": "dx", "low": 1, "high": -1}]}, "expected low < high"),
        ({"num_bins": 1, "dimensions": [{"name": "dx", "low": -1, "high": 1}]}, "'num_bins' must be"),
    ],
)
def test_bad_spec_names_the_field(bad, message):
    with pytest.raises(ValueError, match=message):
        ActionSpec.from_dict(bad)


def test_bad_input_is_rejected(spec):
    with pytest.raises(ValueError, match="NaN"):
        spec.values_to_bins(np.full(5, np.nan))
    with pytest.raises(ValueError, match="last axis of length 5"):
        spec.values_to_bins(np.zeros(4))
    with pytest.raises(ValueError, match=r"\[0, 255\]"):
        spec.bins_to_values(np.full(5, 256))
