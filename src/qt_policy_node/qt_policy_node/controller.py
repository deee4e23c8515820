"""One control tick without ROS: newest image + instruction -> decode -> safety -> command.

Why it is separate from the node: the whole decision path (which image is used, when the
model runs, what the safety layer makes of its output, what the status reports) is plain
Python over a real ONNX model, so tests drive it deterministically with chosen clocks. The
node only converts messages and publishes what :meth:`PolicyController.tick` returns.

The model runs only when something it sees has changed (a new image or a new instruction);
on other ticks the previous decision is reused, because the decode is deterministic and
re-running it would only burn the CPU the control loop needs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from qt_policy_node.instructions import InstructionEmbedder
from qt_policy_node.safety import INSTRUCTION_OK, Command, SafetyLayer, input_age


class Decoder(Protocol):
    """What the controller needs from qt_policy_node.decoder.PolicyDecoder."""

    def decode(self, image: np.ndarray, embedding: np.ndarray, proprio: np.ndarray | None = None, *,
               copy: bool = True) -> Any: ...


@dataclass
class TickResult:
    """Everything the node publishes about one tick (command, status fields)."""

    command: Command
    # Views of the decoder's output buffers (valid until the next decode; the node publishes
    # them within the same tick).
    bins: np.ndarray | None  # chosen bins of the decision in force (None: no decode yet)
    q_values: np.ndarray | None
    inference_latency_ms: float  # of the decode run on this tick, 0 if none ran
    observation_age_ms: float  # age of the newest image (safety.input_age; < 0: stamped ahead), -1 if none
    observation_stamp_s: float  # acquisition time of the image acted on, 0 if none
    decoded: bool


class PolicyController:
    """Holds the newest observation and the decision made on it."""

    def __init__(
        self, decoder: Decoder, safety: SafetyLayer, embedder: InstructionEmbedder, proprio_dim: int = 0
    ) -> None:
        self.decoder = decoder
        self.safety = safety
        self.embedder = embedder
        # Proprioception, for models that take it: writers fill this buffer, then call
        # proprio_updated (the control path never allocates a new vector).
        self.proprio = np.zeros(proprio_dim, dtype=np.float32) if proprio_dim else None
        self._proprio_stamp_s: float | None = None
        self._proprio_received_s = 0.0
        self._proprio_seq = 0
        self._decoded_proprio_seq = -1
        self._image: np.ndarray | None = None
        self._image_owner: object = None  # keeps the message alive while _image views its buffer
        self._image_stamp_s = 0.0
        self._image_received_s = 0.0
        self._image_seq = 0
        self._decoded_seq = -1
        self._decoded_instruction: str | None = None
        self._action: np.ndarray | None = None
        self._bins: np.ndarray | None = None
        self._q: np.ndarray | None = None
        self._decision_stamp_s = 0.0
        self.decodes = 0
        self.decode_errors = 0
        self.last_error = ""

    def set_image(self, image: np.ndarray, stamp_s: float, owner: object = None, received_s: float | None = None
                  ) -> None:
        """Newest camera frame (uint8 [H, W, 3] RGB), its acquisition time and its arrival time on
        the clock ``tick`` is given (default: the stamp, for callers whose stamps are that clock)."""
        self._image = image
        self._image_owner = owner
        self._image_stamp_s = stamp_s
        self._image_received_s = stamp_s if received_s is None else received_s
        self._image_seq += 1

    def proprio_updated(self, stamp_s: float, received_s: float | None = None) -> None:
        """The proprio buffer now holds the state measured at ``stamp_s`` (arrived at ``received_s``)."""
        self._proprio_stamp_s = stamp_s
        self._proprio_received_s = stamp_s if received_s is None else received_s
        self._proprio_seq += 1

    def forget_observation(self) -> None:
        """On deactivate/cleanup: a frame from before must not drive the next activation."""
        self._image = None
        self._image_owner = None
        self._image_stamp_s = 0.0
        self._proprio_stamp_s = None
        self._action = self._bins = self._q = None
        self._decoded_seq = -1
        self._decoded_instruction = None

    def tick(self, now_s: float, heartbeat_age_s: float | None) -> TickResult:
        image_age_s = None if self._image is None else input_age(now_s, self._image_stamp_s, self._image_received_s)
        proprio_age_s = (None if self._proprio_stamp_s is None
                         else input_age(now_s, self._proprio_stamp_s, self._proprio_received_s))
        holds = self.safety.hold_conditions(image_age_s, self.embedder.state, heartbeat_age_s, proprio_age_s)
        latency_ms = 0.0
        decoded = False
        if not holds and self._needs_decode():
            latency_ms = self._decode()
            decoded = True
        command = self.safety.command(holds, None if holds else self._action)
        return TickResult(
            command=command,
            bins=self._bins,
            q_values=self._q,
            inference_latency_ms=latency_ms,
            observation_age_ms=-1.0 if image_age_s is None else image_age_s * 1e3,
            observation_stamp_s=self._decision_stamp_s if self._action is not None else 0.0,
            decoded=decoded,
        )

    def _needs_decode(self) -> bool:
        return (
            self._action is None
            or self._decoded_seq != self._image_seq
            or self._decoded_instruction != self.embedder.text
            or (self.proprio is not None and self._decoded_proprio_seq != self._proprio_seq)
        )

    def _decode(self) -> float:
        """Run the model on the newest image; a failure leaves no action (the safety layer holds)."""
        assert self._image is not None and self.embedder.state == INSTRUCTION_OK
        self._decoded_seq = self._image_seq
        self._decoded_instruction = self.embedder.text
        self._decoded_proprio_seq = self._proprio_seq
        self._decision_stamp_s = self._image_stamp_s
        try:
            result = self.decoder.decode(self._image, self.embedder.embedding, self.proprio, copy=False)
        except Exception as exc:  # a model failure must stop the arm, not the node
            self.decode_errors += 1
            self.last_error = f"decode failed: {exc}"
            self._action = self._bins = self._q = None
            return 0.0
        self.decodes += 1
        self.last_error = ""  # recovered: /diagnostics stops reporting the old failure
        self._action, self._bins, self._q = result.action, result.bins, result.q_values
        return float(result.latency_ms)


CONTROL_MODES = ("timer", "frame")


class FrameTrigger:
    """``control_mode: frame``: whether a camera frame starts a tick now, and whether the timer must.

    Why: a timer-driven tick decides on a frame up to one period after it arrived (half a period
    on average); deciding on arrival removes that wait. The rate limit keeps decisions at or below
    the control rate, so a faster camera cannot make the arm take more steps per second than the
    policy was trained for, and the timer takes over as soon as frames stop, so the stale-image
    hold and the e-stop's zero command still go out on time. Every tick still goes through
    :meth:`PolicyController.tick` (the same safety layer); this class only decides *when*.
    Times are one monotonic clock in seconds; the period is passed in, so a rate change applies at once.
    """

    # The rate limit is a virtual schedule (GCRA): each tick books the next slot one period on,
    # and a frame may take its slot up to this fraction of a period early. A camera at the control
    # rate jitters: with a plain minimum interval, every frame that follows a late one by a little
    # less than a period would be dropped (measured: 4 % of frames at 30 Hz). The long-run rate
    # stays at most the control rate; two ticks are never closer than (1 - TOLERANCE) periods.
    TOLERANCE = 0.5
    # Periods without a frame after which the timer ticks again (frames have stopped or are slow).
    FRAMES_STOPPED = 1.5

    def __init__(self) -> None:
        self._next_slot_s: float | None = None
        self._last_frame_s: float | None = None
        self._pending = False  # a frame arrived but was held back by the rate limit

    def _slot_open(self, now_s: float, period_s: float) -> bool:
        return self._next_slot_s is None or now_s >= self._next_slot_s - self.TOLERANCE * period_s

    def on_frame(self, now_s: float, period_s: float) -> bool:
        """A new frame arrived: True when it may be decided on at once (rate limit)."""
        self._last_frame_s = now_s
        self._pending = not self._slot_open(now_s, period_s)
        return not self._pending

    def on_timer(self, now_s: float, period_s: float) -> bool:
        """The control timer fired: True when it must tick: frames have stopped, or a frame held
        back by the rate limit may now be decided (so no frame waits longer than in timer mode)."""
        stopped = self._last_frame_s is None or now_s - self._last_frame_s >= self.FRAMES_STOPPED * period_s
        return stopped or (self._pending and self._slot_open(now_s, period_s))

    def ticked(self, now_s: float, period_s: float) -> None:
        """A tick ran (from a frame, the timer or an e-stop): it takes the current slot."""
        slot = now_s if self._next_slot_s is None else max(self._next_slot_s, now_s)
        self._next_slot_s = slot + period_s
        self._pending = False
