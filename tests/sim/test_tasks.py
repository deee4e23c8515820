"""Task ids, instruction sets, and every geometric success check on constructed states."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest
from qt_sim.scene import TabletopScene
from qt_sim.tasks import SuccessTracker, parse_task
from qt_sim.world import CUBE_COLOURS, CUBE_HALF, TARGET_COLOURS, SceneState

from qt_sim import tasks


def make_state(cubes: dict[str, tuple[float, float, float]] | None = None, contacts: dict[str, int] | None = None,
               targets: dict[str, tuple[float, float]] | None = None) -> SceneState:
    """A hand-built world: cubes resting apart, targets at fixed spots, gripper far away."""
    cube_pos = {"red": (0.35, -0.15, CUBE_HALF), "green": (0.35, 0.0, CUBE_HALF), "blue": (0.35, 0.15, CUBE_HALF)}
    cube_pos.update(cubes or {})
    target_pos = {"yellow": (0.5, -0.1), "purple": (0.5, 0.1)}
    target_pos.update(targets or {})
    return SceneState(
        ee_pos=np.array([0.3, 0.0, 0.2]), ee_quat=np.array([0.0, 1.0, 0.0, 0.0]), ee_yaw=0.0,
        gripper_opening=1.0, gripper_command=1.0, target_pose=np.array([0.3, 0.0, 0.2, 0.0]),
        cube_pos={c: np.array(p, dtype=float) for c, p in cube_pos.items()},
        cube_quat={c: np.array([1.0, 0, 0, 0]) for c in CUBE_COLOURS},
        cube_yaw={c: 0.0 for c in CUBE_COLOURS},
        target_pos={t: np.array([*p, 0.0008]) for t, p in target_pos.items()},
        finger_contacts={c: 0 for c in CUBE_COLOURS} | (contacts or {}),
    )


def test_task_family_covers_every_colour_combination():
    assert len(tasks.TASK_IDS) == 3 + 6 + 6
    assert {f"pick/{c}" for c in CUBE_COLOURS} <= set(tasks.TASK_IDS)
    for kind in ("push", "place"):
        assert {f"{kind}/{c}/{t}" for c in CUBE_COLOURS for t in TARGET_COLOURS} <= set(tasks.TASK_IDS)
    with pytest.raises(ValueError, match="task_id: unknown task 'pick/orange'"):
        parse_task("pick/orange")


def test_train_and_heldout_wordings_are_distinct_and_name_the_objects():
    train, heldout = tasks.all_instructions("train"), tasks.all_instructions("heldout")
    all_train = {w for ws in train.values() for w in ws}
    all_heldout = {w for ws in heldout.values() for w in ws}
    assert not all_train & all_heldout, "a held-out wording is also a training wording"
    for task_id in tasks.TASK_IDS:
        task = parse_task(task_id)
        assert len(set(train[task_id])) >= 2 and len(set(heldout[task_id])) >= 1
        for wording in train[task_id] + heldout[task_id]:
            assert task.cube in wording and (task.target is None or task.target in wording)
            assert tasks.task_for_instruction(wording.upper()) is not None
    assert tasks.task_for_instruction(train["place/red/yellow"][0]) == ("place/red/yellow", "train")
    assert tasks.task_for_instruction(heldout["pick/blue"][1]) == ("pick/blue", "heldout")
    assert tasks.task_for_instruction("dance") is None
    with pytest.raises(ValueError, match="split"):
        tasks.instructions("pick/red", "test")


def test_pick_succeeds_only_when_the_task_cube_is_lifted_high_enough():
    task = parse_task("pick/red")
    assert not tasks.is_success(task, make_state(), 0.0)
    low = make_state({"red": (0.35, -0.15, CUBE_HALF + tasks.LIFT_HEIGHT - 0.005)})
    high = make_state({"red": (0.35, -0.15, CUBE_HALF + tasks.LIFT_HEIGHT + 0.001)})
    other = make_state({"green": (0.35, 0.0, CUBE_HALF + 0.1)})
    assert not tasks.is_success(task, low, 0.0)
    assert tasks.is_success(task, high, 0.0)
    assert not tasks.is_success(task, other, 0.0)


def test_push_needs_the_cube_on_target_resting_and_never_carried():
    task = parse_task("push/red/yellow")
    on = (0.5 + tasks.ON_TARGET_RADIUS * 0.7, -0.1, CUBE_HALF)
    assert tasks.is_success(task, make_state({"red": on}), max_lift=0.0)
    assert not tasks.is_success(task, make_state({"red": on}), max_lift=tasks.PUSH_MAX_LIFT + 0.01)  # carried
    off = (0.5 + tasks.ON_TARGET_RADIUS + 0.005, -0.1, CUBE_HALF)
    assert not tasks.is_success(task, make_state({"red": off}), 0.0)
    hovering = (0.5, -0.1, CUBE_HALF + tasks.RESTING_TOLERANCE + 0.01)
    assert not tasks.is_success(task, make_state({"red": hovering}), 0.0)
    assert not tasks.is_success(task, make_state({"red": (0.5, 0.1, CUBE_HALF)}), 0.0)  # wrong target
    assert tasks.is_success(task, make_state({"red": on}, contacts={"red": 2}), 0.0)  # pusher may touch


def test_place_needs_on_target_resting_released_and_carried():
    task = parse_task("place/blue/purple")
    on = (0.5, 0.1 - 0.02, CUBE_HALF)
    assert tasks.is_success(task, make_state({"blue": on}), max_lift=tasks.PLACE_MIN_LIFT + 0.01)
    assert not tasks.is_success(task, make_state({"blue": on}), max_lift=0.0)  # pushed there
    assert not tasks.is_success(task, make_state({"blue": on}, contacts={"blue": 1}), 0.05)  # still held
    assert not tasks.is_success(task, make_state({"blue": (0.5, 0.1, CUBE_HALF + 0.03)}), 0.05)  # above
    assert not tasks.is_success(task, make_state({"blue": (0.5, -0.1, CUBE_HALF)}), 0.05)  # wrong target


def test_tracker_remembers_the_highest_lift_of_the_episode():
    task = parse_task("place/green/yellow")
    tracker = SuccessTracker(task, make_state())
    assert not tracker.update(make_state({"green": (0.5, -0.1, CUBE_HALF)}))  # slid there: not a place
    tracker = SuccessTracker(task, make_state())
    assert not tracker.update(make_state({"green": (0.45, -0.1, CUBE_HALF + 0.08)}, contacts={"green": 2}))
    assert tracker.update(make_state({"green": (0.5, -0.1, CUBE_HALF)}))


def test_success_checks_on_states_built_in_the_physics_engine():
    """The same checks read the real MuJoCo state: cubes placed by hand on the targets."""
    scene = TabletopScene()
    scene.reset(np.random.default_rng(3), "red", "yellow")
    m, d = scene.model, scene.data
    before = scene.state()
    yellow = before.target_pos["yellow"]
    adr = m.joint("cube_red").qposadr[0]
    d.qpos[adr : adr + 3] = (yellow[0] + 0.01, yellow[1], CUBE_HALF)
    mujoco.mj_forward(m, d)
    state = scene.state()
    assert tasks.is_on_target(state, "red", "yellow") and tasks.is_resting(state, "red")
    assert tasks.is_released(state, "red")
    assert tasks.is_success(parse_task("push/red/yellow"), state, max_lift=0.0)
    assert not tasks.is_success(parse_task("push/red/purple"), state, max_lift=0.0)
    d.qpos[adr + 2] = CUBE_HALF + 0.08
    mujoco.mj_forward(m, d)
    assert tasks.is_success(parse_task("pick/red"), scene.state(), 0.0)
    assert not tasks.is_success(parse_task("pick/green"), scene.state(), 0.0)
