"""Trace a checkpoint's greedy rollouts in the sim: where a pick policy goes wrong, step by step.

    python bench/rollout_trace.py runs/ladder/R5/run-qt-s0/best.pt --episodes 8          # outcome classes
    python bench/rollout_trace.py runs/ladder/R5/run-qt-s0/best.pt --task pick/red --seed 100000 --steps

``qt q-diagnostics`` says what a Q function believes along the *dataset's* episodes; this says
what the policy does on *its own* states, which is where a learned policy fails: per episode
(test layouts, seeds from 100000 as ``qt eval``) one outcome class (success / went for another
cube / descended next to the named cube without lifting it / never descended), the offset from
the named cube where the end effector first went below 4 cm, and the greedy Q of the first
dimension along the episode; with ``--steps``, every step's offset (cm), height, finger
opening, greedy bins and their Q. Models with object tokens (``--obs-tokens``) also show how far
the position the policy reads of the named cube is from the true one. Pick tasks, image or
state models; 1 torch thread.
"""

from __future__ import annotations

import argparse
from collections import Counter

import numpy as np
import torch

LOW_Z = 0.04  # m: "descended" once the end effector is below this
LIFTED_Z = 0.05  # m: a cube centre above this is lifted


def position_scale(state: dict) -> tuple[np.ndarray, np.ndarray] | None:
    """(mean, std) of the object positions the auxiliary head was trained on (standardised
    targets, Trainer._aux_targets), from the run's dataset; None if the model has no object tokens."""
    from qt_common.dataset import Dataset
    from qt_trainer.data import object_positions

    if state["model_config"].get("obs_tokens", "keypoints") == "keypoints":
        return None
    positions = object_positions(Dataset(state["data_path"]))
    assert positions is not None, "an object-token model is trained on data with object poses"
    return positions[1], positions[2]


def trace_episode(model, spec, evaluator, embedding: torch.Tensor, task: str, seed: int, steps: bool,
                  scale: tuple[np.ndarray, np.ndarray] | None = None) -> str:
    """Run one greedy episode; print its steps if asked; return its outcome class. With ``scale``
    (object-token models) also how far the positions the policy reads are from the named cube's."""
    from qt_sim.world import OBJECT_ORDER

    env, colour = evaluator.env, task.split("/")[1]
    env.reset(seed=seed, options={"task_id": task, "instruction": evaluator.wordings[task]})
    obs, _, done, truncated, _ = env.step_values(np.zeros(spec.num_dims))
    first_low, lifted_other, q_first, seen_error, t = None, False, [], [], 0
    named = OBJECT_ORDER.index(f"cube_{colour}")
    while not (done or truncated):
        image, proprio = evaluator._observation(obs["image"], "cpu")
        bins, q = model.greedy(image, embedding, proprio)
        scene = env.scene_state()
        offset = scene.cube_pos[colour][:2] - scene.ee_pos[:2]
        seen = ""
        if scale is not None:
            predicted = model.object_positions(image, embedding, proprio)[0].numpy() * scale[1] + scale[0]
            error = predicted.reshape(-1, 3)[named] - scene.cube_pos[colour]
            seen_error.append(float(np.linalg.norm(error[:2])))
            seen = f" seen off cm {np.round(error * 100, 1)}"
        if first_low is None and scene.ee_pos[2] < LOW_Z:
            nearest = min(scene.cube_pos, key=lambda c: np.linalg.norm(scene.cube_pos[c][:2] - scene.ee_pos[:2]))
            first_low = (nearest, float(np.linalg.norm(offset)))
        lifted_other |= any(scene.cube_pos[c][2] > LIFTED_Z for c in scene.cube_pos if c != colour)
        q_first.append(float(q[0, 0]))
        if steps:
            values = " ".join(f"{v:.2f}" for v in q[0].tolist())
            print(f"  t {t:3d} offset cm {np.round(offset * 100, 1)} z {scene.ee_pos[2]:.3f} "
                  f"open {scene.gripper_opening:.2f} bins {bins[0].tolist()} Q {values}{seen}")
        obs, _, done, truncated, _ = env.step_values(spec.bins_to_values(bins[0].numpy()).astype(np.float64))
        t += 1
    if done:
        kind = "success"
    elif lifted_other or (first_low is not None and first_low[0] != colour):
        kind = "went for another cube"
    elif first_low is None:
        kind = "never descended"
    else:
        kind = "descended next to the named cube, no lift"
    where = "" if first_low is None else f", first low over {first_low[0]} at {first_low[1] * 100:.1f} cm"
    if seen_error:
        where += f"; named cube seen {np.mean(seen_error) * 100:.1f} cm off in xy (max {max(seen_error) * 100:.1f})"
    every = max(1, len(q_first) // 10)
    print(f"{task} seed {seed}: {kind} after {t} steps{where}; Q(dim 0) along: "
          f"{' '.join(f'{v:.2f}' for v in q_first[::every])}", flush=True)
    return kind


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", help="a run's best.pt or checkpoint.pt")
    parser.add_argument("--task", action="append", help="pick task(s) (default pick/red, pick/green, pick/blue)")
    parser.add_argument("--episodes", type=int, default=4, help="per task, layouts from --seed")
    parser.add_argument("--seed", type=int, default=100_000, help="first layout seed (100000: qt eval's test layouts)")
    parser.add_argument("--horizon", type=int, default=100)
    parser.add_argument("--steps", action="store_true", help="print every step")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_grad_enabled(False)
    from qt_trainer.checkpoint import load_checkpoint
    from qt_trainer.export import model_from_checkpoint
    from qt_trainer.rollouts import RolloutEvaluator, task_wordings

    state = load_checkpoint(args.checkpoint)
    model, spec = model_from_checkpoint(state)
    model.eval()
    cfg = model.cfg
    embeddings = {t: np.asarray(e, np.float32) for t, e in zip(state["instructions"], state["embeddings"], strict=True)}
    counts: Counter[str] = Counter()
    scale = position_scale(state)
    for task in args.task or ["pick/red", "pick/green", "pick/blue"]:
        evaluator = RolloutEvaluator(tasks=[task], wordings=task_wordings([task], state["instructions"]),
                                     embeddings=embeddings, image_hw=(cfg.image_height, cfg.image_width),
                                     proprio_layout=state["proprio_layout"], obs_mode=cfg.obs_mode, spec=spec,
                                     control_period_s=0.1, episodes_per_task=1, horizon=args.horizon,
                                     seed_base=args.seed)
        embedding = torch.from_numpy(embeddings[evaluator.wordings[task]])[None]
        for k in range(args.episodes):
            counts[trace_episode(model, spec, evaluator, embedding, task, args.seed + k, args.steps, scale)] += 1
    print("outcomes:", dict(counts))


if __name__ == "__main__":
    main()
