"""Success-rate statistics shared by every evaluation (sim over ROS, in process, during training)."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # two-sided 95 % quantile of the standard normal


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion; (0, 1) when n is 0."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError(f"successes/n: expected 0 <= successes <= n, got {successes}/{n}")
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    z2 = z * z
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
    # At 0 or n successes the bound is exactly 0 or 1; rounding must not leave 0.9999999999999999.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == n else min(1.0, centre + half)
    return low, high


def greater_p_value(k1: int, n1: int, k2: int, n2: int) -> float:
    """One-sided p-value that success rate 1 is greater than rate 2 (pooled two-proportion z-test).

    Why: the ladder claims "learner A beats B" (or "beats the data's own success rate"); with
    overlapping 95 % intervals the claim needs a p-value, and the normal approximation is
    adequate at the 60-1000 episodes per cell used here. 1.0 when either n is 0.
    """
    for k, n in ((k1, n1), (k2, n2)):
        if n < 0 or not 0 <= k <= n:
            raise ValueError(f"successes/n: expected 0 <= successes <= n, got {k}/{n}")
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (k1 + k2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    diff = k1 / n1 - k2 / n2
    if se == 0:
        return 0.0 if diff > 0 else 1.0
    return 0.5 * math.erfc(diff / se / math.sqrt(2))


def rate_with_interval(successes: int, n: int) -> str:
    """``k/n = 83% [76%, 89%]``: the one way reports and benches print a success rate."""
    low, high = wilson_interval(successes, n)
    return f"{successes}/{n} = {successes / max(n, 1):.0%} [{low:.0%}, {high:.0%}]"
