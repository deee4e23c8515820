"""qt_common.stats: the one-sided two-proportion test the ladder uses to claim a win, and the rate format."""

from __future__ import annotations

import pytest
from qt_common.stats import greater_p_value, rate_with_interval


def test_greater_p_value_matches_a_hand_computed_z_test() -> None:
    # 40/60 vs 20/60: pooled p = 0.5, se = sqrt(0.25 * 2 / 60) = 0.0913, z = 3.65 -> p = 1.3e-4
    assert greater_p_value(40, 60, 20, 60) == pytest.approx(1.31e-4, rel=0.02)
    # equal rates: p = 0.5; the reverse direction of a clear win: p close to 1
    assert greater_p_value(30, 60, 30, 60) == pytest.approx(0.5)
    assert greater_p_value(20, 60, 40, 60) > 0.999


def test_greater_p_value_edges_and_bad_input() -> None:
    assert greater_p_value(0, 0, 3, 10) == 1.0
    assert greater_p_value(10, 10, 10, 10) == 1.0  # no difference, no variance
    assert greater_p_value(10, 10, 0, 10) < 1e-4
    with pytest.raises(ValueError, match="successes"):
        greater_p_value(11, 10, 0, 10)


def test_rate_with_interval_prints_the_wilson_interval() -> None:
    assert rate_with_interval(100, 120) == "100/120 = 83% [76%, 89%]"
    assert rate_with_interval(0, 0) == "0/0 = 0% [0%, 100%]"
