"""The MuJoCo tabletop scene: layout sampling, end-effector delta control and state read-out.

No rendering and no gymnasium here: the env, the driver node and the expert all build on this
one class, so physics and control behave the same everywhere.

Control: the scene keeps a commanded end-effector target (x, y, z, yaw) in base_link. Each
control step adds the action's deltas (physical units per step, already scaled by the action
spec), clips the target to the workspace and to within ``TRACKING_LIMIT`` of the measured
end effector (a real controller's anti-windup), solves the closed-form IK and lets the joint
position servos track it for one control period of physics. The gripper value is a signed
rate: the opening command moves by ``value`` full strokes per step (-1 closes fully within a
step, 1 opens fully, 0 holds), so "no motion" (all zeros) really holds everything still.
"""

from __future__ import annotations

import math
from importlib import resources

import mujoco
import numpy as np
import transforms3d

from qt_sim import arm
from qt_sim.world import CUBE_COLOURS, CUBE_HALF, TARGET_COLOURS, SceneState

HOME_POSE = np.array([0.30, 0.0, 0.20, 0.0])  # x y z yaw of the end effector after reset
TRACKING_LIMIT = 0.05  # m, how far the commanded target may run ahead of the real end effector
SETTLE_STEPS = 25  # physics steps run after a reset so contacts settle before the first frame

# Layout sampling region and clearances (m). Cubes start apart and off the targets, and the
# straight line from the task's cube to its target is kept free of the other cubes.
CUBE_REGION = ((0.30, 0.52), (-0.20, 0.20))
TARGET_REGION = ((0.28, 0.54), (-0.22, 0.22))
MIN_CUBE_GAP = 0.10
MIN_TARGET_GAP = 0.14
MIN_CUBE_TARGET_GAP = 0.10
PATH_CLEARANCE = 0.065


def model_path() -> str:
    return str(resources.files("qt_sim") / "assets" / "tabletop.xml")


class TabletopScene:
    """One MuJoCo model + data with the project's control law. Deterministic given the rng."""

    def __init__(self, control_period_s: float = 0.1, workspace: arm.Workspace | None = None):
        self.model = mujoco.MjModel.from_xml_path(model_path())
        self.data = mujoco.MjData(self.model)
        if not control_period_s > 0:
            raise ValueError(f"control_period_s: expected a positive period in seconds, got {control_period_s}")
        # Whole physics steps per control step; a period that is not a multiple of the 2 ms
        # timestep is rounded (30 Hz runs 17 steps = 34 ms of simulated time per tick).
        self.substeps = max(1, round(control_period_s / self.model.opt.timestep))
        self.control_period_s = self.substeps * self.model.opt.timestep
        self.workspace = workspace or arm.Workspace()
        m = self.model
        self._arm_qpos = np.array([m.joint(n).qposadr[0] for n in arm.ARM_JOINTS])
        self._arm_dof = np.array([m.joint(n).dofadr[0] for n in arm.ARM_JOINTS])
        self._finger_qpos = np.array([m.joint(n).qposadr[0] for n in arm.FINGER_JOINTS])
        self._finger_dof = np.array([m.joint(n).dofadr[0] for n in arm.FINGER_JOINTS])
        self._arm_act = np.array([m.actuator(n).id for n in arm.ARM_JOINTS])
        self._finger_act = np.array([m.actuator(n).id for n in arm.FINGER_JOINTS])
        self._ee_site = m.site("ee").id
        self._cube_qpos = {c: m.joint(f"cube_{c}").qposadr[0] for c in CUBE_COLOURS}
        self._cube_geom = {m.geom(f"cube_{c}").id: c for c in CUBE_COLOURS}
        self._finger_geoms = {m.geom(n).id for n in arm.FINGER_JOINTS}
        self._target_mocap = {c: m.body(f"target_{c}").mocapid[0] for c in TARGET_COLOURS}
        self.target = HOME_POSE.copy()
        self.gripper_command = 1.0

    # ---- reset ----------------------------------------------------------------------------

    def reset(self, rng: np.random.Generator, cube: str | None = None, goal: str | None = None) -> None:
        """Sample a new layout; ``cube``/``goal`` name the task's objects (path kept clear)."""
        cubes, targets = sample_layout(rng, cube, goal)
        mujoco.mj_resetData(self.model, self.data)
        for colour, (x, y, yaw) in cubes.items():
            adr = self._cube_qpos[colour]
            self.data.qpos[adr : adr + 3] = (x, y, CUBE_HALF)
            self.data.qpos[adr + 3 : adr + 7] = transforms3d.euler.euler2quat(0.0, 0.0, yaw)
        for colour, (x, y) in targets.items():
            self.data.mocap_pos[self._target_mocap[colour]] = (x, y, 0.0008)
        self.target = HOME_POSE.copy()
        self.gripper_command = 1.0
        self.data.qpos[self._arm_qpos] = arm.inverse_kinematics(self.target)
        self.data.qpos[self._finger_qpos] = arm.FINGER_TRAVEL
        self._write_controls()
        mujoco.mj_forward(self.model, self.data)
        for _ in range(SETTLE_STEPS):
            mujoco.mj_step(self.model, self.data)

    # ---- control --------------------------------------------------------------------------

    def apply(self, values: np.ndarray) -> None:
        """Execute one control step of physical action values (dx dy dz dyaw gripper)."""
        values = np.asarray(values, dtype=np.float64)
        if values.shape != (5,) or not np.isfinite(values).all():
            raise ValueError(f"values: expected 5 finite numbers (dx dy dz dyaw gripper), got {values!r}")
        ee = self.data.site_xpos[self._ee_site]
        target = self.target + values[:4]
        target[:3] = np.clip(target[:3], ee - TRACKING_LIMIT, ee + TRACKING_LIMIT)
        self.target = self.workspace.clip(target)
        self.gripper_command = float(np.clip(self.gripper_command + values[4], 0.0, 1.0))
        self._write_controls()
        for _ in range(self.substeps):
            mujoco.mj_step(self.model, self.data)

    def _write_controls(self) -> None:
        self.data.ctrl[self._arm_act] = arm.inverse_kinematics(self.target)
        self.data.ctrl[self._finger_act] = self.gripper_command * arm.FINGER_TRAVEL

    # ---- read-out -------------------------------------------------------------------------

    def state(self) -> SceneState:
        d = self.data
        xmat = d.site_xmat[self._ee_site].reshape(3, 3)
        cube_pos, cube_quat, cube_yaw = {}, {}, {}
        for colour, adr in self._cube_qpos.items():
            cube_pos[colour] = d.qpos[adr : adr + 3].copy()
            quat = d.qpos[adr + 3 : adr + 7].copy()
            cube_quat[colour] = quat
            cube_yaw[colour] = float(transforms3d.euler.quat2euler(quat)[2])
        fingers = d.qpos[self._finger_qpos]
        return SceneState(
            ee_pos=d.site_xpos[self._ee_site].copy(),
            ee_quat=transforms3d.quaternions.mat2quat(xmat),
            ee_yaw=math.atan2(xmat[1, 0], xmat[0, 0]),
            gripper_opening=float(np.clip(fingers.mean() / arm.FINGER_TRAVEL, 0.0, 1.0)),
            gripper_command=self.gripper_command,
            target_pose=self.target.copy(),
            cube_pos=cube_pos,
            cube_quat=cube_quat,
            cube_yaw=cube_yaw,
            target_pos={c: d.mocap_pos[i].copy() for c, i in self._target_mocap.items()},
            finger_contacts=self._finger_contacts(),
            joint_positions=np.concatenate([d.qpos[self._arm_qpos], fingers]),
            joint_velocities=np.concatenate([d.qvel[self._arm_dof], d.qvel[self._finger_dof]]),
        )

    def _finger_contacts(self) -> dict[str, int]:
        touching: dict[str, set[int]] = {c: set() for c in CUBE_COLOURS}
        for contact in self.data.contact[: self.data.ncon]:
            pair = (contact.geom1, contact.geom2)
            for a, b in (pair, pair[::-1]):
                if a in self._finger_geoms and b in self._cube_geom:
                    touching[self._cube_geom[b]].add(a)
        return {c: len(s) for c, s in touching.items()}


def sample_layout(
    rng: np.random.Generator, cube: str | None = None, goal: str | None = None, max_tries: int = 10000
) -> tuple[dict[str, tuple[float, float, float]], dict[str, tuple[float, float]]]:
    """Rejection-sample cube (x, y, yaw) and target (x, y) positions meeting the clearances."""
    for _ in range(max_tries):
        cubes = {
            c: (rng.uniform(*CUBE_REGION[0]), rng.uniform(*CUBE_REGION[1]), rng.uniform(-math.pi / 4, math.pi / 4))
            for c in CUBE_COLOURS
        }
        targets = {t: (rng.uniform(*TARGET_REGION[0]), rng.uniform(*TARGET_REGION[1])) for t in TARGET_COLOURS}
        if _layout_ok(cubes, targets, cube, goal):
            return cubes, targets
    raise RuntimeError("layout sampling failed; the clearances cannot be met in the sampling region")


def _layout_ok(cubes: dict, targets: dict, cube: str | None, goal: str | None) -> bool:
    cube_xy = {c: np.array(v[:2]) for c, v in cubes.items()}
    target_xy = {t: np.array(v) for t, v in targets.items()}
    names = list(cube_xy)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if np.linalg.norm(cube_xy[a] - cube_xy[b]) < MIN_CUBE_GAP:
                return False
        for t in target_xy.values():
            if np.linalg.norm(cube_xy[a] - t) < MIN_CUBE_TARGET_GAP:
                return False
    if np.linalg.norm(target_xy["yellow"] - target_xy["purple"]) < MIN_TARGET_GAP:
        return False
    if cube is not None and goal is not None:
        # The pushed or carried cube's straight path (from a pusher stand-off behind it) must
        # stay clear of the other cubes, or the expert would shove them along.
        start, end = cube_xy[cube], target_xy[goal]
        direction = (end - start) / max(np.linalg.norm(end - start), 1e-9)
        for other in names:
            if other != cube and _segment_distance(cube_xy[other], start - 0.07 * direction, end) < PATH_CLEARANCE:
                return False
    return True


def _segment_distance(point: np.ndarray, a: np.ndarray, b: np.ndarray) -> float:
    ab = b - a
    t = float(np.clip(np.dot(point - a, ab) / max(np.dot(ab, ab), 1e-12), 0.0, 1.0))
    return float(np.linalg.norm(point - (a + t * ab)))
