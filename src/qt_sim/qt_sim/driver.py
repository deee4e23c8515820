"""The simulated robot's controller, without ROS: command buffers, timeout, episodes, ticks.

qt_sim.driver_node is a thin rclpy shell around :class:`SimDriver`; tests drive this class
directly. Semantics (docs/SIM.md):

* Commands are velocities: the newest command of each channel is executed on every control
  tick until ``command_timeout_s`` has passed since it arrived; then that channel reads "no
  motion" and the arm holds still, like a real controller whose command stream stopped.
  Channels: motion (dx dy dz dyaw; from ArmAction or TwistStamped, newest wins) and gripper
  (from ArmAction or the gripper command, newest wins).
* An episode starts with :meth:`start_episode` (scene reset with task and seed) and ends when
  the task's success check holds (outcome success; ``success_check`` False turns this off, for
  the sim standing in for a robot whose operator judges success), at the horizon (failure), or
  by :meth:`end_episode` (any outcome). Between episodes the scene is frozen: ticks still return
  the state and the camera frame but nothing moves. Starting while an episode runs is refused.

Thread use: create the driver, call :meth:`tick` and the episode methods on one thread (the
renderer's GL context belongs to it); the command methods may be called from any thread.
"""

from __future__ import annotations

import threading
import uuid
from dataclasses import dataclass, field

import numpy as np
from qt_common.action_spec import ActionSpec

from qt_sim import commands
from qt_sim.env import DEFAULT_HORIZON, TabletopEnv
from qt_sim.tasks import SPLITS, TASK_IDS
from qt_sim.world import SceneState

OUTCOMES = ("success", "failure", "discard")
STAMP_TOLERANCE_NS = 1_000  # see LockstepGate


@dataclass(frozen=True)
class DriverConfig:
    width: int = 96
    height: int = 96
    horizon: int = DEFAULT_HORIZON
    control_rate_hz: float = 10.0
    command_timeout_s: float = 0.3
    tasks: tuple[str, ...] = TASK_IDS
    instruction_split: str = "train"
    # Simulated time per control tick; 0 = one wall period (1 / control_rate_hz). Setting it
    # decouples the simulated dynamics from the wall clock: control_rate_hz 30 with sim_period_s
    # 0.1 runs the 10 Hz robot three times faster than real time, tick for tick identical.
    sim_period_s: float = 0.0
    # False: the task's success check never ends an episode (only end_episode or the horizon do),
    # so the sim stands in for a real robot, where the operator judges success (qt eval --robot).
    success_check: bool = True

    def __post_init__(self) -> None:
        if not self.control_rate_hz > 0:
            raise ValueError(f"control_rate_hz: expected > 0, got {self.control_rate_hz}")
        if not (self.sim_period_s >= 0 and np.isfinite(self.sim_period_s)):
            raise ValueError(f"sim_period_s: expected >= 0 seconds (0 = 1 / control_rate_hz), got {self.sim_period_s}")
        if not self.command_timeout_s > 0:
            raise ValueError(f"command_timeout_s: expected > 0 seconds, got {self.command_timeout_s}")
        if self.instruction_split not in SPLITS:
            raise ValueError(f"instruction_split: expected one of {SPLITS}, got {self.instruction_split!r}")

    @property
    def period_s(self) -> float:
        """Wall-clock control period: the tick clock, and the period a twist is integrated over."""
        return 1.0 / self.control_rate_hz

    @property
    def simulated_period_s(self) -> float:
        """Simulated time one tick advances the physics by (rounded by the scene to 2 ms steps)."""
        return self.sim_period_s or self.period_s


@dataclass(frozen=True)
class EpisodeEvent:
    """START or END of an episode (mirrors qt_msgs/EpisodeEvent)."""

    event: str  # "start" | "end"
    outcome: str  # "none" | "success" | "failure" | "discard"
    episode_id: str
    instruction: str
    task_id: str
    seed: int


@dataclass(frozen=True)
class EpisodeReply:
    """Answer to a start/end request (mirrors the StartEpisode/EndEpisode responses)."""

    accepted: bool
    episode_id: str = ""
    instruction: str = ""
    message: str = ""
    event: EpisodeEvent | None = None


@dataclass
class TickOutput:
    image: np.ndarray
    state: SceneState
    proprio: np.ndarray  # the env's observation vector (qt_sim.proprio), for in-process consumers
    executed: np.ndarray  # physical values applied this tick (zeros when nothing ran)
    stepped: bool
    events: list[EpisodeEvent] = field(default_factory=list)


@dataclass
class _Channel:
    values: np.ndarray
    received_at: float = float("-inf")


class LockstepGate:
    """Lockstep: the next tick of an episode waits for the command decided on the last frame.

    Why: at a fixed wall rate, a commander that is late by a few milliseconds (a loaded CPU)
    makes the driver repeat the previous command for a tick, so the recorded action is not the
    one executed and two runs of the same seed diverge. With lockstep the tick after frame k
    runs only once a command stamped with frame k's stamp (or later) has arrived, or after
    ``timeout_s`` (counted as a miss; the tick then runs with whatever command is current), so
    the simulated robot executes exactly one decision per frame however slow the wall clock is.
    The control rate stays an upper bound. Commands stamped before the episode's start were
    decided on the previous scene and are refused. The first tick of an episode never waits
    (no frame of it exists yet); between episodes nothing waits.

    Stamps are integer nanoseconds of the clock the driver stamps its frames with; commanders
    must echo the stamp of the frame they acted on (the expert teleop and the policy node do).
    A command stamped up to ``STAMP_TOLERANCE_NS`` before a frame counts as that frame's: a stamp
    that passed through float seconds comes back a few hundred nanoseconds off, while frames are
    milliseconds apart.
    Plain Python, no ROS: the node calls it from its executor and simulation threads (the
    fields it shares are single ints, replaced atomically).
    """

    def __init__(self, enabled: bool, timeout_s: float = 1.0):
        if not timeout_s > 0:
            raise ValueError(f"lockstep_timeout_s: expected > 0 seconds, got {timeout_s}")
        self.enabled = enabled
        self.timeout_s = timeout_s
        self.misses = 0  # ticks that ran after the timeout without the awaited command
        self.refused = 0  # commands stamped before the episode start
        self._episode_start_ns = -1
        self._newest_command_ns = -1
        self._awaited_ns: int | None = None
        self._deadline = 0.0

    def episode_started(self, start_ns: int) -> None:
        self._episode_start_ns = start_ns
        self._awaited_ns = None

    def accept(self, command_stamp_ns: int) -> bool:
        """Before a command is handed to the driver; False: refuse it (decided before the episode)."""
        if self.enabled and command_stamp_ns + STAMP_TOLERANCE_NS < self._episode_start_ns:
            self.refused += 1
            return False
        return True

    def received(self, command_stamp_ns: int) -> None:
        """After the command is in the driver's channel: a tick waiting for it may now run."""
        self._newest_command_ns = max(self._newest_command_ns, command_stamp_ns + STAMP_TOLERANCE_NS)

    def frame_published(self, stamp_ns: int, now: float, episode_running: bool) -> None:
        """After a tick: the next one waits for a command stamped ``stamp_ns`` (if running)."""
        self._awaited_ns = stamp_ns if self.enabled and episode_running else None
        self._deadline = now + self.timeout_s

    def episode_ended(self) -> None:
        self._awaited_ns = None

    def wait_s(self, now: float) -> float:
        """How much longer the next tick must wait for its command (0: it may run)."""
        if self._awaited_ns is None or self._newest_command_ns >= self._awaited_ns:
            return 0.0
        return max(0.0, self._deadline - now)

    def tick_starts(self) -> bool:
        """Called when the tick runs; True if it runs without the awaited command (a miss)."""
        missed = self._awaited_ns is not None and self._newest_command_ns < self._awaited_ns
        self.misses += int(missed)
        return missed


class SimDriver:
    """See the module docstring."""

    def __init__(self, config: DriverConfig | None = None, action_spec: ActionSpec | None = None):
        self.config = config or DriverConfig()
        self.spec = action_spec or ActionSpec.default()
        self.env = TabletopEnv(
            width=self.config.width,
            height=self.config.height,
            horizon=self.config.horizon,
            control_period_s=self.config.simulated_period_s,
            tasks=self.config.tasks,
            instruction_split=self.config.instruction_split,
            action_spec=self.spec,
        )
        self._lock = threading.Lock()
        self._motion = _Channel(np.zeros(4))
        self._gripper = _Channel(np.zeros(1))
        self._seeds = np.random.default_rng()
        self.episode: EpisodeEvent | None = None  # the START event of the running episode
        obs, _ = self.env.reset(seed=0)
        self._image = obs["image"]
        self._proprio = obs["proprio"]

    # ---- commands (any thread) ------------------------------------------------------------

    def arm_action(self, names: list[str], values: list[float], now: float, frame_id: str = "") -> None:
        vals = commands.arm_action_values(self.spec, names, values, frame_id)
        with self._lock:
            self._motion = _Channel(vals[:4], now)
            self._gripper = _Channel(vals[4:], now)

    def twist(self, linear: list[float], angular_z: float, now: float, frame_id: str = "") -> None:
        vals = commands.twist_values(self.spec, linear, angular_z, self.config.period_s, frame_id)
        with self._lock:
            self._motion = _Channel(vals, now)

    def gripper(self, value: float, now: float) -> None:
        val = commands.gripper_value(self.spec, value)
        with self._lock:
            self._gripper = _Channel(np.array([val]), now)

    def current_command(self, now: float) -> np.ndarray:
        """The physical values a tick at ``now`` would execute (zeros for timed-out channels)."""
        timeout = self.config.command_timeout_s
        with self._lock:
            motion = self._motion.values if now - self._motion.received_at <= timeout else np.zeros(4)
            grip = self._gripper.values if now - self._gripper.received_at <= timeout else np.zeros(1)
        return np.concatenate([motion, grip])

    # ---- episodes (simulation thread) -----------------------------------------------------

    def start_episode(self, task_id: str = "", seed: int = -1, instruction: str = "") -> EpisodeReply:
        if self.episode is not None:
            return EpisodeReply(False, message=f"episode {self.episode.episode_id} is running; end it first")
        if task_id and task_id not in self.config.tasks:
            return EpisodeReply(False, message=f"task_id: unknown or disabled task {task_id!r}; "
                                f"expected one of {', '.join(self.config.tasks)}")
        if seed < -1:
            return EpisodeReply(False, message=f"seed: expected >= 0, or -1 for a random seed; got {seed}")
        if seed == -1:
            seed = int(self._seeds.integers(2**31 - 1))
        options = {"task_id": task_id} if task_id else {}
        if instruction.strip():
            options["instruction"] = instruction.strip()
        with self._lock:  # commands sent before the episode must not leak into it
            self._motion = _Channel(np.zeros(4))
            self._gripper = _Channel(np.zeros(1))
        obs, info = self.env.reset(seed=seed, options=options)
        self._image, self._proprio = obs["image"], obs["proprio"]
        episode_id = f"{info['task_id'].replace('/', '-')}-s{seed}-{uuid.uuid4().hex[:8]}"
        self.episode = EpisodeEvent("start", "none", episode_id, info["instruction"], info["task_id"], seed)
        return EpisodeReply(True, episode_id, info["instruction"], f"started {info['task_id']} seed {seed}",
                            self.episode)

    def end_episode(self, outcome: str) -> EpisodeReply:
        if outcome not in OUTCOMES:
            return EpisodeReply(False, message=f"outcome: expected one of {OUTCOMES}, got {outcome!r}")
        if self.episode is None:
            return EpisodeReply(False, message="no episode is running")
        event = self._finish(outcome)
        return EpisodeReply(True, event.episode_id, event.instruction, f"ended with {outcome}", event)

    def tick(self, now: float) -> TickOutput:
        """One control period: execute the current command if an episode runs, read the state."""
        events: list[EpisodeEvent] = []
        executed = np.zeros(5)
        stepped = False
        if self.episode is not None:
            executed = self.current_command(now)
            obs, _, terminated, truncated, _ = self.env.step_values(executed)
            self._image, self._proprio = obs["image"], obs["proprio"]
            stepped = True
            terminated = terminated and self.config.success_check
            if terminated or truncated:
                events.append(self._finish("success" if terminated else "failure"))
        return TickOutput(self._image, self.env.scene_state(), self._proprio, executed, stepped, events)

    def close(self) -> None:
        self.env.close()

    def _finish(self, outcome: str) -> EpisodeEvent:
        assert self.episode is not None
        start = self.episode
        self.episode = None
        return EpisodeEvent("end", outcome, start.episode_id, start.instruction, start.task_id, start.seed)
