"""Same seed, same episode: bit-identical images and physics state in separate processes."""

from __future__ import annotations

import subprocess
import sys

PROBE = r"""
import hashlib, sys
import numpy as np
from qt_sim.env import TabletopEnv
from qt_sim.expert import ExpertKnobs, ScriptedExpert, WorldView

seed = int(sys.argv[1])
env = TabletopEnv(width=64, height=64)
expert = ScriptedExpert(ExpertKnobs(noise_std=0.4, random_action_prob=0.1))
digest = hashlib.sha256()
obs, info = env.reset(seed=seed)
expert.reset(info["task_id"], seed=seed)
digest.update(info["instruction"].encode())
for _ in range(40):
    digest.update(obs["image"].tobytes())
    digest.update(obs["proprio"].tobytes())
    digest.update(env.scene.data.qpos.tobytes())
    obs, reward, terminated, truncated, info = env.step(expert.act(WorldView.from_scene(env.scene_state())))
    if terminated or truncated:
        break
print(info["task_id"], digest.hexdigest())
"""


def _run(seed: int) -> str:
    result = subprocess.run([sys.executable, "-c", PROBE, str(seed)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_same_seed_is_bit_identical_across_processes():
    first, second = _run(11), _run(11)
    assert first == second
    assert _run(12) != first
