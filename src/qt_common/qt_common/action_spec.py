"""The action spec: named action dimensions, their physical range, and the bin <-> value map.

This module is the single source of the discretisation shared by the simulator, the data
logger, the trainer and the policy node (they all import it; none re-implements it).

Mapping (docs/CONTRACTS.md): each dimension has a physical range [low, high] and a neutral
value (0, "no motion", for every default dimension). With ``n = num_bins - 1`` and the neutral
bin ``c = round(n * (neutral - low) / (high - low))``, bin ``b`` maps to

    value(b) = neutral + (b - c) / c       * (neutral - low)   for b <= c
    value(b) = neutral + (b - c) / (n - c) * (high - neutral)  for b >= c

so bin 0 is exactly ``low``, bin ``n`` exactly ``high`` and bin ``c`` exactly ``neutral``:
"no motion" is representable without rounding, which a uniform grid of 256 bins over a
symmetric range cannot do. A value maps to the nearest bin on its side of the neutral point.
For the default symmetric ranges c = 128: 128 steps below zero and 127 above.

``normalized`` values in [-1, 1] (the simulator's action space) use the same two-sided scaling:
-1 is ``low``, 0 is ``neutral`` and 1 is ``high``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np

DEFAULT_NUM_BINS = 256


@dataclass(frozen=True)
class ActionDimension:
    """One action dimension: its name, physical unit and range, and the "no motion" value."""

    name: str
    low: float
    high: float
    unit: str = ""
    neutral: float = 0.0

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("action dimension: 'name' must be a non-empty string")
        if not np.isfinite([self.low, self.high, self.neutral]).all():
            raise ValueError(f"action dimension {self.name!r}: low/high/neutral must be finite")
        if not self.low < self.high:
            raise ValueError(
                f"action dimension {self.name!r}: expected low < high, got low={self.low}, high={self.high}"
            )
        if not self.low <= self.neutral <= self.high:
            raise ValueError(
                f"action dimension {self.name!r}: neutral={self.neutral} must lie in [low, high]"
            )


@dataclass(frozen=True)
class ActionSpec:
    """Ordered action dimensions discretised into ``num_bins`` bins each."""

    dimensions: tuple[ActionDimension, ...]
    num_bins: int = DEFAULT_NUM_BINS
    _low: np.ndarray = field(init=False, repr=False, compare=False)
    _high: np.ndarray = field(init=False, repr=False, compare=False)
    _neutral: np.ndarray = field(init=False, repr=False, compare=False)
    _neutral_bin: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.dimensions:
            raise ValueError("action spec: 'dimensions' must not be empty")
        names = [d.name for d in self.dimensions]
        if len(set(names)) != len(names):
            raise ValueError(f"action spec: dimension names must be unique, got {names}")
        if not 3 <= self.num_bins <= 65535:
            raise ValueError(f"action spec: 'num_bins' must be in [3, 65535], got {self.num_bins}")
        low = np.array([d.low for d in self.dimensions], dtype=np.float64)
        high = np.array([d.high for d in self.dimensions], dtype=np.float64)
        neutral = np.array([d.neutral for d in self.dimensions], dtype=np.float64)
        last = self.num_bins - 1
        neutral_bin = np.round(last * (neutral - low) / (high - low)).astype(np.int64)
        # A neutral strictly inside the range must not land on an end bin, or one side of the
        # map would have no bins at all.
        inside = (neutral > low) & (neutral < high)
        neutral_bin = np.where(inside, np.clip(neutral_bin, 1, last - 1), neutral_bin)
        object.__setattr__(self, "_low", low)
        object.__setattr__(self, "_high", high)
        object.__setattr__(self, "_neutral", neutral)
        object.__setattr__(self, "_neutral_bin", neutral_bin)

    # ---- construction -------------------------------------------------------------------

    @classmethod
    def default(cls) -> ActionSpec:
        """The stack's default spec: end-effector deltas per control step plus the gripper."""
        return cls(
            dimensions=(
                ActionDimension("dx", -0.02, 0.02, "m/step"),
                ActionDimension("dy", -0.02, 0.02, "m/step"),
                ActionDimension("dz", -0.02, 0.02, "m/step"),
                ActionDimension("dyaw", -0.15, 0.15, "rad/step"),
                ActionDimension("gripper", -1.0, 1.0, "close(-1)..open(1)"),
            )
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ActionSpec:
        """Parse the JSON form written by :meth:`to_dict` (policy cards, dataset headers)."""
        try:
            dims = tuple(
                ActionDimension(
                    name=str(d["name"]),
                    low=float(d["low"]),
                    high=float(d["high"]),
                    unit=str(d.get("unit", "")),
                    neutral=float(d.get("neutral", 0.0)),
                )
                for d in data["dimensions"]
            )
            return cls(dimensions=dims, num_bins=int(data["num_bins"]))
        except KeyError as exc:
            raise ValueError(f"action spec: missing field {exc.args[0]!r}") from exc
        except (TypeError, ValueError) as exc:
            raise ValueError(f"action spec: {exc}") from exc

    def to_dict(self) -> dict[str, Any]:
        return {
            "num_bins": self.num_bins,
            "dimensions": [
                {"name": d.name, "low": d.low, "high": d.high, "unit": d.unit, "neutral": d.neutral}
                for d in self.dimensions
            ],
        }

    def digest(self) -> str:
        """Short stable hash of the spec, used to check two artefacts agree on it."""
        text = json.dumps(self.to_dict(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # ---- properties ---------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return [d.name for d in self.dimensions]

    @property
    def num_dims(self) -> int:
        return len(self.dimensions)

    @property
    def low(self) -> np.ndarray:
        return self._low.copy()

    @property
    def high(self) -> np.ndarray:
        return self._high.copy()

    @property
    def neutral_bins(self) -> np.ndarray:
        """Bin index that decodes to exactly the neutral ("no motion") value, per dimension."""
        return self._neutral_bin.copy()

    def neutral_values(self) -> np.ndarray:
        return self._neutral.copy()

    # ---- the mapping --------------------------------------------------------------------

    def bins_to_values(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices (..., num_dims) -> physical values (..., num_dims), float64."""
        b = np.asarray(bins)
        self._check_last_axis(b, "bins")
        if np.any(b < 0) or np.any(b > self.num_bins - 1):
            raise ValueError(f"bins: expected integers in [0, {self.num_bins - 1}]")
        b = b.astype(np.float64)
        c = self._neutral_bin.astype(np.float64)
        last = float(self.num_bins - 1)
        below = self._neutral + (b - c) / np.maximum(c, 1.0) * (self._neutral - self._low)
        above = self._neutral + (b - c) / np.maximum(last - c, 1.0) * (self._high - self._neutral)
        return np.where(b <= c, below, above)

    def values_to_bins(self, values: np.ndarray) -> np.ndarray:
        """Physical values (..., num_dims) -> nearest bin (..., num_dims), int64.

        Values outside [low, high] are clipped first (the action spec is a hard limit).
        NaN is rejected: it has no meaningful bin and must never become motion.
        """
        v = np.asarray(values, dtype=np.float64)
        self._check_last_axis(v, "values")
        if np.isnan(v).any():
            raise ValueError("values: NaN has no bin")
        v = np.clip(v, self._low, self._high)
        c = self._neutral_bin.astype(np.float64)
        last = float(self.num_bins - 1)
        below_span = np.where(self._neutral > self._low, self._neutral - self._low, 1.0)
        above_span = np.where(self._high > self._neutral, self._high - self._neutral, 1.0)
        below = c + (v - self._neutral) / below_span * c
        above = c + (v - self._neutral) / above_span * (last - c)
        b = np.where(v <= self._neutral, below, above)
        return np.clip(np.rint(b), 0, last).astype(np.int64)

    def clip(self, values: np.ndarray) -> np.ndarray:
        """Clip physical values to [low, high] per dimension."""
        v = np.asarray(values, dtype=np.float64)
        self._check_last_axis(v, "values")
        return np.clip(v, self._low, self._high)

    def normalized_to_values(self, normalized: np.ndarray) -> np.ndarray:
        """[-1, 1] per dimension -> physical values (-1 low, 0 neutral, 1 high); clips first."""
        n = np.clip(np.asarray(normalized, dtype=np.float64), -1.0, 1.0)
        self._check_last_axis(n, "normalized")
        return np.where(
            n <= 0,
            self._neutral + n * (self._neutral - self._low),
            self._neutral + n * (self._high - self._neutral),
        )

    def values_to_normalized(self, values: np.ndarray) -> np.ndarray:
        """Physical values -> [-1, 1] per dimension; inverse of :meth:`normalized_to_values`."""
        v = self.clip(values)
        below_span = np.where(self._neutral > self._low, self._neutral - self._low, 1.0)
        above_span = np.where(self._high > self._neutral, self._high - self._neutral, 1.0)
        return np.where(
            v <= self._neutral, (v - self._neutral) / below_span, (v - self._neutral) / above_span
        )

    def _check_last_axis(self, array: np.ndarray, what: str) -> None:
        if array.ndim == 0 or array.shape[-1] != self.num_dims:
            raise ValueError(
                f"{what}: expected last axis of length {self.num_dims} ({' '.join(self.names)}), "
                f"got shape {array.shape}"
            )
