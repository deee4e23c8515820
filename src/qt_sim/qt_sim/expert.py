"""Scripted expert: solves every task from the true object poses, with three failure knobs.

The expert is a small state machine per task kind that re-reads the world every step (so it
recovers from slips, pushes that drift, and its own noise):

* pick:  hover over the cube with the fingers open and the gripper yawed to the cube's faces,
         descend, close, lift.
* place: pick, carry the cube over the target at a safe height, lower it until it rests, open,
         retreat upwards.
* push:  close the fingers, hover behind the cube on the line target->cube with the broad finger
         face across that line, descend to the table, push along the line (re-aimed every step
         at the current cube position); back off and re-approach if the cube slips sideways.

Failure knobs (so collected data mixes successes and failures at a chosen rate):

* ``noise_std``: Gaussian noise added to every normalised action dimension, then clipped.
* ``random_action_prob``: per step, the action is replaced by a uniform random one.
* ``wrong_object_prob``: per episode, the expert goes for another cube than the task's.

It reads only what a camera-less operator station could also know from the ROS topics
(end-effector pose, finger opening, cube and target poses; see :class:`WorldView`), so the same
class drives both the gymnasium env and the expert teleop node.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

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
LIFT_Z = 0.15  # m, pick: lift the cube to here
XY_TOLERANCE = 0.010  # m, close enough above the cube / target
YAW_TOLERANCE = 0.10  # rad
CLOSE_STEPS = 3  # steps with the gripper closing before lifting
OPEN_STEPS = 2  # steps with the gripper opening before retreating (place)
PUSH_STANDOFF = 0.065  # m, pre-push point behind the cube centre
PUSH_CONTACT = 0.032  # m, cube half (0.02) + closed finger pair half thickness (0.012)
PUSH_SPEED = 0.010  # m per step while pushing
PUSH_MAX_LATERAL = 0.018  # m, pusher off the push line by more than this -> re-approach
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

    def __post_init__(self) -> None:
        if not (math.isfinite(self.noise_std) and self.noise_std >= 0):
            raise ValueError(f"noise_std: expected a finite value >= 0, got {self.noise_std}")
        for name in ("random_action_prob", "wrong_object_prob"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name}: expected a probability in [0, 1], got {value}")


class ScriptedExpert:
    """Call :meth:`reset` at the start of every episode, then :meth:`act` once per step."""

    def __init__(self, knobs: ExpertKnobs | None = None, action_spec: ActionSpec | None = None):
        self.knobs = knobs or ExpertKnobs()
        self.action_spec = action_spec or ActionSpec.default()
        self._workspace = Workspace()
        self._rng = np.random.default_rng(0)
        self.task: Task | None = None
        self.cube = ""
        self.phase = "idle"
        self._counter = 0

    def reset(self, task_id: str, seed: int | None = None) -> None:
        """Start an episode of ``task_id``; ``seed`` makes the knobs' randomness reproducible."""
        self.task = parse_task(task_id)
        self._rng = np.random.default_rng(seed)
        self.cube = self.task.cube
        if self._rng.random() < self.knobs.wrong_object_prob:
            others = [c for c in CUBE_COLOURS if c != self.task.cube]
            self.cube = others[int(self._rng.integers(len(others)))]
        self.phase = "push_approach" if self.task.kind == "push" else "approach"
        self._counter = 0

    @property
    def wrong_object(self) -> bool:
        return self.task is not None and self.cube != self.task.cube

    def act(self, view: WorldView) -> np.ndarray:
        """Normalised action in [-1, 1]^5 for the current world (knobs applied)."""
        if self.task is None:
            raise RuntimeError("act before reset: call reset(task_id) first")
        clean = self.clean_action(view)
        if self._rng.random() < self.knobs.random_action_prob:
            return self._rng.uniform(-1.0, 1.0, size=5)
        if self.knobs.noise_std > 0:
            clean = clean + self._rng.normal(0.0, self.knobs.noise_std, size=5)
        return np.clip(clean, -1.0, 1.0)

    def clean_action(self, view: WorldView) -> np.ndarray:
        """The noiseless action (advances the state machine)."""
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
        grasp_yaw = self._nearest_yaw(view.ee_yaw, view.cube_yaw[self.cube], math.pi / 2)
        lift = cube[2] - CUBE_HALF
        xy_err = float(np.hypot(*(cube[:2] - ee[:2])))
        held = lift > 0.01 and xy_err < 0.03 and view.gripper_opening > 0.2

        if self.phase == "approach":
            if xy_err < XY_TOLERANCE and abs(wrap_angle(grasp_yaw - view.ee_yaw)) < YAW_TOLERANCE:
                self.phase = "descend"
            return np.array([cube[0], cube[1], HOVER_Z]), grasp_yaw, GRIPPER_OPEN
        if self.phase == "descend":
            if xy_err > 2.5 * XY_TOLERANCE:
                self.phase = "approach"
            elif ee[2] < GRASP_Z + 0.012:
                self.phase, self._counter = "close", 0
            return np.array([cube[0], cube[1], GRASP_Z]), grasp_yaw, GRIPPER_OPEN
        if self.phase == "close":
            self._counter += 1
            if self._counter >= CLOSE_STEPS:
                # Fingers closed on nothing: the cube was missed, open and try again.
                self.phase = "lift" if view.gripper_opening > 0.2 else "approach"
            return np.array([cube[0], cube[1], GRASP_Z]), grasp_yaw, GRIPPER_CLOSE
        if self.phase == "lift":
            if ee[2] > 0.07 and not held:
                self.phase = "approach"  # dropped or missed
            elif self.task.kind == "place" and lift > 0.04:
                self.phase = "carry"
            return np.array([ee[0], ee[1], LIFT_Z]), view.ee_yaw, GRIPPER_CLOSE
        goal_xy = view.target_pos[self.task.target or ""][:2]
        offset = goal_xy - cube[:2]  # move the cube, not the end effector, over the target
        if self.phase == "carry":
            if not held:
                self.phase = "approach"
            elif float(np.hypot(*offset)) < XY_TOLERANCE * 0.8:
                self.phase = "lower"
            return np.array([ee[0] + offset[0], ee[1] + offset[1], CARRY_Z]), view.ee_yaw, GRIPPER_CLOSE
        if self.phase == "lower":
            if not held and lift > 0.01:
                self.phase = "approach"
            elif lift < 0.006:
                self.phase, self._counter = "release", 0
            goal_z = ee[2] - (lift - 0.002)
            return np.array([ee[0] + offset[0], ee[1] + offset[1], goal_z]), view.ee_yaw, GRIPPER_CLOSE
        if self.phase == "release":
            self._counter += 1
            if self._counter >= OPEN_STEPS:
                self.phase = "retreat"
            return ee.copy(), view.ee_yaw, GRIPPER_OPEN
        # retreat: straight up with the fingers open; if the cube is not on the target any more,
        # start over.
        if float(np.hypot(*offset)) > 0.04 and ee[2] > HOVER_Z - 0.02:
            self.phase = "approach"
        return np.array([ee[0], ee[1], HOVER_Z]), view.ee_yaw, GRIPPER_OPEN

    # ---- push -----------------------------------------------------------------------------

    def _push(self, view: WorldView) -> tuple[np.ndarray, float, float]:
        assert self.task is not None and self.task.target is not None
        cube = view.cube_pos[self.cube][:2]
        goal_xy = view.target_pos[self.task.target][:2]
        ee = view.ee_pos
        line = goal_xy - cube
        u = line / max(float(np.linalg.norm(line)), 1e-6)
        normal = np.array([-u[1], u[0]])
        # Broad face of the closed finger pair is normal to the site y axis: aim site y along u.
        push_yaw = self._nearest_yaw(view.ee_yaw, math.atan2(-u[0], u[1]), math.pi, keep_side=self.phase == "push")
        rel = ee[:2] - cube
        along, lateral = float(rel @ u), float(rel @ normal)
        pre = cube - PUSH_STANDOFF * u

        if self.phase == "push_approach":
            err = float(np.hypot(*(pre - ee[:2])))
            if err < XY_TOLERANCE and abs(wrap_angle(push_yaw - view.ee_yaw)) < YAW_TOLERANCE:
                self.phase = "push_descend"
            return np.array([pre[0], pre[1], HOVER_Z]), push_yaw, GRIPPER_CLOSE
        if self.phase == "push_descend":
            if float(np.hypot(*(pre - ee[:2]))) > 2.5 * XY_TOLERANCE:
                self.phase = "push_approach"
            elif ee[2] < GRASP_Z + 0.010:
                self.phase = "push"
            return np.array([pre[0], pre[1], GRASP_Z]), push_yaw, GRIPPER_CLOSE
        if self.phase == "push":
            if abs(lateral) > PUSH_MAX_LATERAL or along > -PUSH_CONTACT + 0.012:
                self.phase = "push_retreat"
            else:
                # Advance along the line and pull back onto it.
                step = min(PUSH_SPEED, float(np.linalg.norm(line)) + 0.005)
                goal = ee[:2] + step * u - 0.8 * lateral * normal
                return np.array([goal[0], goal[1], GRASP_Z]), push_yaw, GRIPPER_CLOSE
        # push_retreat: back away from the cube and lift before re-approaching.
        if ee[2] > HOVER_Z - 0.03:
            self.phase = "push_approach"
        back = ee[:2] - 0.01 * u
        return np.array([back[0], back[1], HOVER_Z]), push_yaw, GRIPPER_CLOSE

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
