"""Scripted expert: solves every task from the true object poses, with failure knobs.

The expert is **Markov in what the policy observes**: every decision is a function of the
current scene (end-effector pose, measured finger opening, cube and target poses: what the
camera and the proprio show) and the episode's task, nothing else. No tick counters, no phase
variable, no direction-dependent thresholds. Why: a learner sees only the observation; an expert
that counts "close for 3 ticks, then lift" labels identical observations "stay" twice and
"lift" once, and behaviour cloning then learns "stay forever" (measured: low-dim BC 8/60 with
the counter, 42/60 without; FIELD-NOTES.md). tests/sim/test_expert.py replays clean episodes and
checks that equal observations always got the same action.

* pick:  approach at hover height with the fingers open and the gripper yawed to the cube's
         faces; descend once within 1 cm and aligned; close at the floor; lift as soon as the
         measured opening shows the fingers on the cube; fingers closed on nothing -> open and
         go back up.
* place: pick; with the cube held, lift, carry it over the target, lower it until it rests,
         open; a cube resting on the target with open fingers -> retreat upwards.
* push:  fingers closed; approach the pre-push point behind the cube at hover height, descend
         there, push along the line target<-cube (re-aimed every step) while the pusher is low
         and in the pushing band behind the cube; low anywhere else -> back off upwards.

Failure knobs (so collected data mixes successes and failures at a chosen rate):

* ``noise_std``: Gaussian noise added to every normalised action dimension, then clipped.
* ``random_action_prob``: per step, the action is replaced by a uniform random one.
* ``wrong_object_prob``: per episode, the expert goes for another cube than the task's.

These change the behaviour *and* its label (the recorded action is the one executed). The
recovery knobs (DART, Laskey et al. 2017) perturb only what is executed; the label stays the
clean decision, so the data shows how to recover from the states a learner drifts into:

* ``dart_noise_std``: Gaussian noise on the executed dx dy dz dyaw (normalised units).
* ``dart_gripper_flip_prob``: per step, the executed gripper command is inverted.

:meth:`ScriptedExpert.step` returns both (executed, label). It reads only what a camera-less
operator station could also know from the ROS topics (see :class:`WorldView`), so the same class
drives both the gymnasium env and the expert teleop node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import transforms3d
from qt_common.action_spec import ActionSpec

from qt_sim.arm import FINGER_TRAVEL, Workspace, wrap_angle
from qt_sim.proprio import yaw_from_quaternion
from qt_sim.tasks import Task, parse_task
from qt_sim.world import CUBE_COLOURS, CUBE_HALF, OBJECT_ORDER, TARGET_COLOURS, SceneState

HOVER_Z = 0.10  # m, end-effector height for moving over the table
CARRY_Z = 0.13  # m, end-effector height while carrying a cube
GRASP_Z = 0.022  # m, end-effector goal when grasping (the workspace floor clips it to 0.025)
CLOSE_Z = 0.030  # m, close the fingers once the end effector is below this
LIFT_Z = 0.15  # m, pick: lift the cube to here
XY_TOLERANCE = 0.010  # m, close enough above the cube / target
YAW_TOLERANCE = 0.10  # rad
# The fingers stop on a 4 cm cube near opening 0.5; "on the cube" is an opening in this band
# with the cube between the fingertips. Below the band the fingers closed on nothing.
HELD_OPENING = (0.2, 0.9)
HELD_XY = 0.03  # m, cube centre within this of the end effector (horizontally)
HELD_Z = 0.03  # m, and within this vertically
PUSH_STANDOFF = 0.065  # m, pre-push point behind the cube centre
PUSH_CONTACT = 0.032  # m, cube half (0.02) + closed finger pair half thickness (0.012)
PUSH_SPEED = 0.010  # m per step while pushing
PUSH_MAX_LATERAL = 0.018  # m, pusher off the push line by more than this -> back off
PUSH_LOW_Z = GRASP_Z + 0.010  # m, pusher low enough to push
GRIPPER_OPEN, GRIPPER_CLOSE = 1.0, -1.0


@dataclass
class WorldView:
    """The ground truth the expert reads: end effector, fingers, cubes and targets (base_link)."""

    ee_pos: np.ndarray
    ee_yaw: float
    gripper_opening: float
    cube_pos: dict[str, np.ndarray]
    cube_yaw: dict[str, float]
    target_pos: dict[str, np.ndarray]

    @classmethod
    def from_scene(cls, state: SceneState) -> WorldView:
        return cls(state.ee_pos, state.ee_yaw, state.gripper_opening, state.cube_pos, state.cube_yaw,
                   state.target_pos)

    @classmethod
    def from_poses(
        cls,
        ee_xyz: Sequence[float],
        ee_quat_wxyz: Sequence[float],
        finger_positions: Sequence[float],
        object_poses: Sequence[tuple[Sequence[float], Sequence[float]]],
    ) -> WorldView:
        """From the driver's topics: /ee_pose, the finger joints of /joint_states and
        /sim/object_poses ((xyz, wxyz) per object, in qt_sim.world.OBJECT_ORDER)."""
        if len(object_poses) != len(OBJECT_ORDER):
            raise ValueError(
                f"object_poses: expected {len(OBJECT_ORDER)} poses {OBJECT_ORDER}, got {len(object_poses)}"
            )
        poses = dict(zip(OBJECT_ORDER, object_poses, strict=True))
        cubes = {c: poses[f"cube_{c}"] for c in CUBE_COLOURS}
        return cls(
            ee_pos=np.asarray(ee_xyz, dtype=np.float64),
            ee_yaw=yaw_from_quaternion(ee_quat_wxyz),
            gripper_opening=float(np.clip(np.mean(finger_positions) / FINGER_TRAVEL, 0.0, 1.0)),
            cube_pos={c: np.asarray(p[0], dtype=np.float64) for c, p in cubes.items()},
            cube_yaw={c: float(transforms3d.euler.quat2euler(p[1])[2]) for c, p in cubes.items()},
            target_pos={t: np.asarray(poses[f"target_{t}"][0], dtype=np.float64) for t in TARGET_COLOURS},
        )


@dataclass(frozen=True)
class ExpertKnobs:
    noise_std: float = 0.0
    random_action_prob: float = 0.0
    wrong_object_prob: float = 0.0
    dart_noise_std: float = 0.0
    dart_gripper_flip_prob: float = 0.0

    def __post_init__(self) -> None:
        for name in ("noise_std", "dart_noise_std"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name}: expected a finite value >= 0, got {value}")
        for name in ("random_action_prob", "wrong_object_prob", "dart_gripper_flip_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {value}")

    @property
    def relabels(self) -> bool:
        """True when executed actions may differ from their labels (DART knobs on)."""
        return self.dart_noise_std > 0 or self.dart_gripper_flip_prob > 0

    def describe(self) -> str:
        return " ".join(f"{k}={v:g}" for k, v in asdict(self).items())


class ScriptedExpert:
    """Call :meth:`reset` at the start of every episode, then :meth:`step` (or :meth:`act`) once per step."""

    def __init__(self, knobs: ExpertKnobs | None = None, action_spec: ActionSpec | None = None):
        self.knobs = knobs or ExpertKnobs()
        self.action_spec = action_spec or ActionSpec.default()
        self._workspace = Workspace()
        self._rng = np.random.default_rng(0)
        self.task: Task | None = None
        self.cube = ""
        self.phase = "idle"  # what the last decision was (for logs and tests; never read back)

    def reset(self, task_id: str, seed: int | None = None) -> None:
        """Start an episode of ``task_id``; ``seed`` makes the knobs' randomness reproducible."""
        self.task = parse_task(task_id)
        self._rng = np.random.default_rng(seed)
        self.cube = self.task.cube
        if self._rng.random() < self.knobs.wrong_object_prob:
            others = [c for c in CUBE_COLOURS if c != self.task.cube]
            self.cube = others[int(self._rng.integers(len(others)))]
        self.phase = "idle"

    @property
    def wrong_object(self) -> bool:
        return self.task is not None and self.cube != self.task.cube

    def act(self, view: WorldView) -> np.ndarray:
        """The normalised action in [-1, 1]^5 to execute for the current world (all knobs applied)."""
        return self.step(view)[0]

    def step(self, view: WorldView) -> tuple[np.ndarray, np.ndarray]:
        """(executed, label): the action to send to the arm and the one to learn from.

        The label is the behaviour knobs' action (noise, random actions, wrong object: what the
        operator meant to do, as recorded today); the executed action additionally carries the
        DART perturbation. Without DART knobs both are the same array values.
        """
        if self.task is None:
            raise RuntimeError("act before reset: call reset(task_id) first")
        label = self.clean_action(view)
        if self._rng.random() < self.knobs.random_action_prob:
            label = self._rng.uniform(-1.0, 1.0, size=5)
        elif self.knobs.noise_std > 0:
            label = label + self._rng.normal(0.0, self.knobs.noise_std, size=5)
        label = np.clip(label, -1.0, 1.0)
        executed = label.copy()
        if self.knobs.dart_noise_std > 0:
            executed[:4] += self._rng.normal(0.0, self.knobs.dart_noise_std, size=4)
        if self.knobs.dart_gripper_flip_prob > 0 and self._rng.random() < self.knobs.dart_gripper_flip_prob:
            executed[4] = -executed[4]
        return np.clip(executed, -1.0, 1.0), label

    def clean_action(self, view: WorldView) -> np.ndarray:
        """The noiseless action: a pure function of ``view`` and the episode's task and cube."""
        assert self.task is not None
        if self.task.kind == "push":
            goal, yaw, gripper = self._push(view)
        else:
            goal, yaw, gripper = self._pick_place(view)
        return self._to_action(view, goal, yaw, gripper)

    # ---- pick and place -------------------------------------------------------------------

    def _pick_place(self, view: WorldView) -> tuple[np.ndarray, float, float]:
        assert self.task is not None
        cube = view.cube_pos[self.cube]
        ee = view.ee_pos
        opening = view.gripper_opening
        lift = cube[2] - CUBE_HALF
        xy_err = float(np.hypot(*(cube[:2] - ee[:2])))
        between = xy_err < HELD_XY and abs(cube[2] - ee[2]) < HELD_Z
        held = between and HELD_OPENING[0] < opening < HELD_OPENING[1]

        if self.task.kind == "place":
            goal_xy = view.target_pos[self.task.target or ""][:2]
            offset = goal_xy - cube[:2]  # move the cube, not the end effector, over the target
            over = float(np.hypot(*offset)) < XY_TOLERANCE
            if held:
                if over and lift < 0.006:
                    self.phase = "release"
                    return ee.copy(), view.ee_yaw, GRIPPER_OPEN
                if over:
                    self.phase = "lower"
                    return np.array([ee[0] + offset[0], ee[1] + offset[1], ee[2] - (lift - 0.002)]), view.ee_yaw, \
                        GRIPPER_CLOSE
                if lift < 0.04:
                    self.phase = "lift"
                    return np.array([ee[0], ee[1], CARRY_Z]), view.ee_yaw, GRIPPER_CLOSE
                self.phase = "carry"
                return np.array([ee[0] + offset[0], ee[1] + offset[1], CARRY_Z]), view.ee_yaw, GRIPPER_CLOSE
            if float(np.hypot(*offset)) < 2 * XY_TOLERANCE and lift < 0.01 and opening >= HELD_OPENING[1]:
                self.phase = "retreat"  # placed and let go: clear the cube
                return np.array([ee[0], ee[1], HOVER_Z]), view.ee_yaw, GRIPPER_OPEN
        elif held:
            self.phase = "lift"
            return np.array([ee[0], ee[1], LIFT_Z]), view.ee_yaw, GRIPPER_CLOSE

        if opening <= HELD_OPENING[0]:
            self.phase = "reopen"  # closed on nothing: open and go back up
            return np.array([ee[0], ee[1], HOVER_Z]), view.ee_yaw, GRIPPER_OPEN
        grasp_yaw = self._nearest_yaw(view.ee_yaw, view.cube_yaw[self.cube], math.pi / 2)
        aligned = xy_err < XY_TOLERANCE and abs(wrap_angle(grasp_yaw - view.ee_yaw)) < YAW_TOLERANCE
        if aligned and ee[2] < CLOSE_Z:
            self.phase = "close"
            return np.array([cube[0], cube[1], GRASP_Z]), grasp_yaw, GRIPPER_CLOSE
        if aligned:
            self.phase = "descend"
            return np.array([cube[0], cube[1], GRASP_Z]), grasp_yaw, GRIPPER_OPEN
        self.phase = "approach"
        return np.array([cube[0], cube[1], HOVER_Z]), grasp_yaw, GRIPPER_OPEN

    # ---- push -----------------------------------------------------------------------------

    def _push(self, view: WorldView) -> tuple[np.ndarray, float, float]:
        assert self.task is not None and self.task.target is not None
        cube = view.cube_pos[self.cube][:2]
        goal_xy = view.target_pos[self.task.target][:2]
        ee = view.ee_pos
        line = goal_xy - cube
        u = line / max(float(np.linalg.norm(line)), 1e-6)
        normal = np.array([-u[1], u[0]])
        rel = ee[:2] - cube
        along, lateral = float(rel @ u), float(rel @ normal)
        pre = cube - PUSH_STANDOFF * u
        in_band = abs(lateral) <= PUSH_MAX_LATERAL and -PUSH_STANDOFF - 0.02 <= along <= -PUSH_CONTACT + 0.012
        pushing = in_band and ee[2] < PUSH_LOW_Z
        # Broad face of the closed finger pair is normal to the site y axis: aim site y along u.
        push_yaw = self._nearest_yaw(view.ee_yaw, math.atan2(-u[0], u[1]), math.pi, keep_side=pushing)

        if pushing:
            self.phase = "push"  # advance along the line and pull back onto it
            step = min(PUSH_SPEED, float(np.linalg.norm(line)) + 0.005)
            goal = ee[:2] + step * u - 0.8 * lateral * normal
            return np.array([goal[0], goal[1], GRASP_Z]), push_yaw, GRIPPER_CLOSE
        at_pre = float(np.hypot(*(pre - ee[:2]))) < XY_TOLERANCE
        if at_pre and abs(wrap_angle(push_yaw - view.ee_yaw)) < YAW_TOLERANCE:
            self.phase = "push_descend"
            return np.array([pre[0], pre[1], GRASP_Z]), push_yaw, GRIPPER_CLOSE
        if ee[2] < HOVER_Z - 0.03 and not in_band:
            self.phase = "push_retreat"  # low but off the line (or past the cube): back off upwards
            back = ee[:2] - 0.01 * u
            return np.array([back[0], back[1], HOVER_Z]), push_yaw, GRIPPER_CLOSE
        self.phase = "push_approach"
        return np.array([pre[0], pre[1], HOVER_Z]), push_yaw, GRIPPER_CLOSE

    # ---- helpers --------------------------------------------------------------------------

    def _nearest_yaw(self, current: float, base: float, period: float, keep_side: bool = False) -> float:
        """The yaw equivalent to ``base`` modulo ``period`` closest to ``current``.

        Normally only equivalents inside the wrist's limits count. With ``keep_side`` (while
        pushing) the closest equivalent is taken and clipped instead: a gripper that flips half
        a turn mid-push loses the cube, one that saturates at its limit does not.
        """
        low, high = self._workspace.yaw
        candidates = [base + k * period for k in range(-4, 5)]
        if not keep_side:
            candidates = [c for c in candidates if low <= c <= high] or candidates
        best = min(candidates, key=lambda c: abs(c - current))
        return min(max(best, low), high)

    def _to_action(self, view: WorldView, goal: np.ndarray, yaw: float, gripper: float) -> np.ndarray:
        physical = np.zeros(5)
        physical[:3] = goal - view.ee_pos
        physical[3] = wrap_angle(yaw - view.ee_yaw)
        physical[4] = gripper
        return self.action_spec.values_to_normalized(physical)
