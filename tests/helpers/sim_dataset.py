"""A small dataset straight from the simulator and the scripted expert, for trainer tests.

It skips the bags on purpose: the trainer's tests need sim data with task ids, object poses and
the default proprio layout in seconds. The real path (bags -> qt convert) is tested in
tests/sim/test_inprocess_collect.py and run by bench/learning_ladder.py.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from qt_common.action_spec import ActionSpec
from qt_common.dataset import Dataset, DatasetWriter, Episode
from qt_sim.env import TabletopEnv
from qt_sim.expert import ExpertKnobs, ScriptedExpert, WorldView
from qt_sim.world import OBJECT_ORDER, object_poses

from qt_common import proprio


def write_expert_dataset(path: Path, tasks: tuple[str, ...], episodes: int, size: int = 16,
                         horizon: int = 40) -> Dataset:
    spec = ActionSpec.default()
    env = TabletopEnv(width=size, height=size, horizon=horizon, tasks=tasks)
    expert = ScriptedExpert(ExpertKnobs(dart_noise_std=0.3), spec)
    layout = proprio.DEFAULT_LAYOUT
    writer = DatasetWriter(path, spec, (size, size, 3), proprio.LAYOUTS[layout].dim, proprio_layout=layout,
                           object_pose_dim=7 * len(OBJECT_ORDER))
    try:
        for i in range(episodes):
            task = tasks[i % len(tasks)]
            obs, info = env.reset(seed=i, options={"task_id": task})
            expert.reset(task, seed=i)
            frames, bins, vectors, poses = [], [], [], []
            terminated = truncated = False
            while not (terminated or truncated):
                state = env.scene_state()
                executed, label = expert.step(WorldView.from_scene(state))
                frames.append(obs["image"])
                bins.append(spec.values_to_bins(spec.normalized_to_values(label)))
                vectors.append(proprio.build(layout, state.ee_pos, state.ee_quat, state.joint_positions[-2:]))
                poses.append(object_poses(state).reshape(-1))
                obs, _, terminated, truncated, info = env.step(executed)
            writer.add_episode(Episode(np.stack(frames), np.stack(bins), info["instruction"],
                                       "success" if terminated else "failure", np.stack(vectors), task_id=task,
                                       object_poses=np.stack(poses).astype(np.float32)))
        return writer.commit()
    finally:
        env.close()
