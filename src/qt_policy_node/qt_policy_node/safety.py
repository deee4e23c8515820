"""The safety layer between the policy's proposed action and the robot (no ROS, no model).

Why a plain class: every rule here must be testable deterministically without DDS, clocks or
a model, and the node must be a thin shell that cannot bypass it.

Rules, evaluated once per control tick:

* **hold conditions** forbid motion altogether: a latched e-stop, no camera image newer than
  ``image_timeout_s``, no usable instruction (missing, unknown or longer than the limit), no
  heartbeat newer than ``heartbeat_timeout_s`` (when required), no proprioception newer than
  ``proprio_timeout_s`` (for models that take it), an image or pose stamped in the future by
  more than ``future_stamp_tolerance_s``, a model output that is not finite, or (``goal_hold``, set
  by the node's RunPolicy goal tracker) no running goal. Ages come from
  :func:`input_age`: an input is never younger than the time since it arrived, so no stamp,
  however wrong, keeps the arm moving on an input that stopped coming. Entering a hold publishes the stop
  command **once**; while the hold lasts nothing more is published (a controller that keeps
  receiving "zero" would mask a dead policy), and motion resumes only when every condition
  has cleared. The e-stop latches: only :meth:`SafetyLayer.reset_estop` clears it, and only
  once the e-stop input itself has gone false.
* **clip** limits every dimension to the action spec's ``[low, high]``.
* **slew** limits the change of each dimension per control step (0 disables it for that
  dimension); after a hold the ramp starts from the stop command.

Every rule that acts on a tick is counted (per rule and in total) and reported, so the status
message shows exactly why the arm did not do what the model asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from qt_common.action_spec import ActionSpec

# Rule names as they appear in PolicyStatus.interventions and /diagnostics.
ESTOP = "estop"
STALE_IMAGE = "stale_image"
NO_INSTRUCTION = "no_instruction"
UNKNOWN_INSTRUCTION = "unknown_instruction"
NO_HEARTBEAT = "no_heartbeat"
STALE_PROPRIO = "stale_proprio"
FUTURE_IMAGE_STAMP = "future_image_stamp"
FUTURE_PROPRIO_STAMP = "future_proprio_stamp"
INSTRUCTION_TOO_LONG = "instruction_too_long"
MODEL_FAULT = "model_fault"
# No RunPolicy goal runs while the node is in goal mode (goal_run.GoalTracker.holding).
NO_GOAL = "no_goal"
CLIP = "clip"
SLEW = "slew"

HOLD_RULES = (ESTOP, STALE_IMAGE, FUTURE_IMAGE_STAMP, NO_INSTRUCTION, UNKNOWN_INSTRUCTION, INSTRUCTION_TOO_LONG,
              NO_HEARTBEAT, STALE_PROPRIO, FUTURE_PROPRIO_STAMP, MODEL_FAULT, NO_GOAL)
ALL_RULES = (*HOLD_RULES, CLIP, SLEW)

CLIP_TOLERANCE = 1e-6  # relative to the widest dimension's range

# Instruction states reported by the instruction embedder.
INSTRUCTION_OK = "ok"
INSTRUCTION_MISSING = "missing"
INSTRUCTION_UNKNOWN = "unknown"
INSTRUCTION_OVERLONG = "too_long"


def input_age(now_s: float, stamp_s: float, received_s: float) -> float:
    """Age of an input for the hold rules, measured against the receiving clock.

    By its stamp (when it was measured), but never younger than the time since it arrived: a
    stamp in the future must not make an input look fresh after it stopped coming. A stamp
    ahead of ``now_s`` gives a negative age, which the safety layer holds on beyond its
    tolerance (``future_*_stamp``).
    """
    by_stamp = now_s - stamp_s
    return by_stamp if by_stamp < 0 else max(by_stamp, now_s - received_s)


@dataclass(frozen=True)
class SafetyConfig:
    """Limits of the safety layer; the node fills it from its parameters."""

    image_timeout_s: float = 0.5
    heartbeat_timeout_s: float = 1.0
    require_heartbeat: bool = False
    proprio_timeout_s: float = 0.5
    # An image or pose stamped further ahead of the node's clock than this is invalid (hold).
    future_stamp_tolerance_s: float = 0.05
    require_proprio: bool = False  # set when the model takes proprioception
    # Maximum change per control step and dimension, in the spec's physical units; 0 = no limit.
    slew_limit: tuple[float, ...] = ()

    def check(self, spec: ActionSpec) -> None:
        """Raise ValueError naming the field when the config does not fit ``spec``."""
        if not self.image_timeout_s > 0:
            raise ValueError(f"image_timeout_s: expected > 0, got {self.image_timeout_s}")
        if not self.heartbeat_timeout_s > 0:
            raise ValueError(f"heartbeat_timeout_s: expected > 0, got {self.heartbeat_timeout_s}")
        if not self.proprio_timeout_s > 0:
            raise ValueError(f"proprio_timeout_s: expected > 0, got {self.proprio_timeout_s}")
        if not 0 <= self.future_stamp_tolerance_s < self.image_timeout_s:
            raise ValueError(f"future_stamp_tolerance_s: expected [0, image_timeout_s={self.image_timeout_s}), "
                             f"got {self.future_stamp_tolerance_s}")
        if self.slew_limit and len(self.slew_limit) != spec.num_dims:
            raise ValueError(
                f"slew_limit: expected {spec.num_dims} values ({' '.join(spec.names)}) or none, "
                f"got {len(self.slew_limit)}"
            )
        if any(not np.isfinite(v) or v < 0 for v in self.slew_limit):
            raise ValueError(f"slew_limit: expected finite values >= 0, got {list(self.slew_limit)}")


def as_sent(spec: ActionSpec, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The command as ArmAction carries it: values rounded to float32, and the bins of exactly
    those rounded values (bins computed before the rounding disagree with them near a bin edge)."""
    sent = np.asarray(values, dtype=np.float32)
    return sent, spec.values_to_bins(sent.astype(np.float64))


@dataclass
class Command:
    """What the node publishes on one tick. ``values`` is a buffer owned by the safety layer."""

    publish: bool
    values: np.ndarray
    interventions: list[str] = field(default_factory=list)
    holding: bool = False


_INSTRUCTION_HOLDS = {
    INSTRUCTION_MISSING: NO_INSTRUCTION,
    INSTRUCTION_UNKNOWN: UNKNOWN_INSTRUCTION,
    INSTRUCTION_OVERLONG: INSTRUCTION_TOO_LONG,
}


class SafetyLayer:
    """Turns the policy's proposed action into the command actually sent (or none)."""

    def __init__(self, spec: ActionSpec, config: SafetyConfig) -> None:
        config.check(spec)
        self.spec = spec
        self.config = config
        self._low = spec.low
        self._high = spec.high
        self._neutral = spec.neutral_values()
        self._span_max = float(np.max(self._high - self._low))
        limit = np.array(config.slew_limit, dtype=np.float64) if config.slew_limit else np.zeros(spec.num_dims)
        self._slew = np.where(limit > 0, limit, np.inf)
        # Buffers reused every tick (the control path allocates nothing it can reuse).
        self._out = self._neutral.copy()
        self._last = self._neutral.copy()
        self._scratch = np.zeros(spec.num_dims)
        self._lower = np.zeros(spec.num_dims)
        self._upper = np.zeros(spec.num_dims)
        # False until a stop went out: the first hold after activation publishes the stop too,
        # so a controller still running an older command is told to stop.
        self._holding = False
        self.estop_latched = False
        self._estop_input = False
        # Set by the node from its RunPolicy goal tracker: no goal runs, so the arm holds (no_goal).
        self.goal_hold = False
        self.counts: dict[str, int] = dict.fromkeys(ALL_RULES, 0)
        self.total_interventions = 0

    # ---- inputs that are not per tick ----------------------------------------------------

    def on_estop(self, asserted: bool) -> None:
        """An e-stop message: true latches the stop; false only allows a later reset."""
        self._estop_input = bool(asserted)
        if asserted:
            self.estop_latched = True

    def reset_estop(self) -> tuple[bool, str]:
        """The reset service: clears the latch unless the e-stop input is still asserted."""
        if self._estop_input:
            return False, "e-stop input is still asserted (last /estop message was true); release it first"
        if not self.estop_latched:
            return True, "e-stop was not latched"
        self.estop_latched = False
        return True, "e-stop latch cleared; motion resumes when every other condition holds"

    def restart(self) -> None:
        """Called on activation: counters restart and the next motion ramps up from stop."""
        self._last[:] = self._neutral
        self._holding = False
        self.counts = dict.fromkeys(ALL_RULES, 0)
        self.total_interventions = 0

    # ---- per tick ------------------------------------------------------------------------

    def hold_conditions(
        self,
        image_age_s: float | None,
        instruction_state: str,
        heartbeat_age_s: float | None,
        proprio_age_s: float | None = None,
    ) -> list[str]:
        """Rules that forbid motion now. Checked before decoding, so a hold costs no inference."""
        holds: list[str] = []
        if self.estop_latched:
            holds.append(ESTOP)
        if self.goal_hold:
            holds.append(NO_GOAL)
        self._check_age(holds, image_age_s, self.config.image_timeout_s, STALE_IMAGE, FUTURE_IMAGE_STAMP)
        instruction_rule = _INSTRUCTION_HOLDS.get(instruction_state)
        if instruction_rule:
            holds.append(instruction_rule)
        if self.config.require_heartbeat and (
            heartbeat_age_s is None or heartbeat_age_s > self.config.heartbeat_timeout_s
        ):
            holds.append(NO_HEARTBEAT)
        if self.config.require_proprio:
            self._check_age(holds, proprio_age_s, self.config.proprio_timeout_s, STALE_PROPRIO, FUTURE_PROPRIO_STAMP)
        return holds

    def _check_age(self, holds: list[str], age_s: float | None, timeout_s: float, stale: str, future: str) -> None:
        """Stale when missing or too old; invalid when stamped too far in the future (see input_age)."""
        if age_s is not None and age_s < -self.config.future_stamp_tolerance_s:
            holds.append(future)
        elif age_s is None or not age_s <= timeout_s:
            holds.append(stale)

    def command(self, holds: list[str], action: np.ndarray | None) -> Command:
        """The command for this tick given the hold conditions and the model's action (or None)."""
        if not holds and (action is None or not np.all(np.isfinite(action))):
            holds = [MODEL_FAULT]
        if holds:
            return self._hold(holds)
        interventions: list[str] = []
        np.clip(action, self._low, self._high, out=self._out)
        # The model's values come through float32: the end bins may sit a rounding error outside
        # [low, high]. Clipping that is not an intervention worth counting.
        np.subtract(self._out, action, out=self._scratch)
        if np.abs(self._scratch, out=self._scratch).max() > CLIP_TOLERANCE * self._span_max:
            interventions.append(CLIP)
        np.subtract(self._last, self._slew, out=self._lower)
        np.add(self._last, self._slew, out=self._upper)
        np.clip(self._out, self._lower, self._upper, out=self._scratch)
        if not np.array_equal(self._scratch, self._out):
            interventions.append(SLEW)
            self._out[:] = self._scratch
        self._count(interventions)
        self._last[:] = self._out
        self._holding = False
        return Command(publish=True, values=self._out, interventions=interventions)

    def stop_command(self) -> np.ndarray:
        """The stop command: every dimension at its neutral value, which the action spec maps to
        exactly "no motion" (qt_sim reads the gripper value as a rate too: 0 keeps the fingers
        where they are)."""
        np.copyto(self._out, self._neutral)
        self._last[:] = self._out
        return self._out

    def _hold(self, holds: list[str]) -> Command:
        self._count(holds)
        publish = not self._holding  # the stop goes out once per hold, then silence
        self._holding = True
        values = self.stop_command()
        return Command(publish=publish, values=values, interventions=list(holds), holding=True)

    def _count(self, rules: list[str]) -> None:
        for rule in rules:
            self.counts[rule] += 1
        self.total_interventions += len(rules)
