"""Simulator benchmark: control steps per second with the camera, and the expert's success table.

    . ./env.sh && python bench/sim_bench.py                 # one core (default), all sizes, table
    python bench/sim_bench.py --cores all --steps 600       # let Mesa use every core
    python bench/sim_bench.py --no-table                    # speed only

Speed: the scripted expert drives real episodes (contacts, grasps) through ``env.step`` at each
camera size; "steps/s" is the whole control step (50 physics steps + render + success check),
excluding the expert's own compute. "physics only" is the same loop without the camera.
"One core" pins the process to a single CPU and Mesa's rasteriser to one thread.

Table: the expert's success rate per task kind (every colour combination, ``--seeds`` layouts
each) for a few knob settings, rendering off (success does not depend on it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time


def _pin_one_core() -> str:
    # Must happen before Mesa starts its threads (i.e. before the first GL context).
    os.environ["LP_NUM_THREADS"] = "1"
    cpu = sorted(os.sched_getaffinity(0))[0]
    os.sched_setaffinity(0, {cpu})
    return f"one core (cpu {cpu}, LP_NUM_THREADS=1)"


def measure_speed(width: int, height: int, steps: int, render: bool) -> float:
    import numpy as np
    from qt_sim.env import TabletopEnv
    from qt_sim.expert import ScriptedExpert, WorldView
    from qt_sim.tasks import TASK_IDS

    env = TabletopEnv(width=width, height=height, render_images=render)
    expert = ScriptedExpert()
    spent, done, episode = 0.0, 0, 0
    try:
        while done < steps:
            task_id = TASK_IDS[episode % len(TASK_IDS)]
            env.reset(seed=episode, options={"task_id": task_id})
            expert.reset(task_id, seed=episode)
            episode += 1
            terminated = truncated = False
            while not (terminated or truncated) and done < steps:
                action = np.asarray(expert.act(WorldView.from_scene(env.scene_state())))
                start = time.perf_counter()
                _, _, terminated, truncated, _ = env.step(action)
                spent += time.perf_counter() - start
                done += 1
    finally:
        env.close()
    return done / spent


KNOB_SETTINGS = [
    ("clean", {}),
    ("noise 0.3", {"noise_std": 0.3}),
    ("noise 0.8", {"noise_std": 0.8}),
    ("random 0.3", {"random_action_prob": 0.3}),
    ("wrong 0.3", {"wrong_object_prob": 0.3}),
    ("mixed 0.3/0.1/0.2", {"noise_std": 0.3, "random_action_prob": 0.1, "wrong_object_prob": 0.2}),
    ("mixed 0.5/0.2/0.2", {"noise_std": 0.5, "random_action_prob": 0.2, "wrong_object_prob": 0.2}),
    ("mixed 0.8/0.3/0.2", {"noise_std": 0.8, "random_action_prob": 0.3, "wrong_object_prob": 0.2}),
    ("DART 0.3, flips 0.1 (clean labels)", {"dart_noise_std": 0.3, "dart_gripper_flip_prob": 0.1}),
]


def success_rows(seeds: int) -> list[str]:
    import numpy as np
    from qt_sim.env import TabletopEnv
    from qt_sim.expert import ExpertKnobs
    from qt_sim.rollout import success_table
    from qt_sim.tasks import KINDS, TASK_IDS

    env = TabletopEnv(render_images=False)
    rows = [f"| knobs (noise/random/wrong) | {' | '.join(KINDS)} | all | mean steps |", "|---|" + "---|" * 5]
    print("\n".join(rows), flush=True)
    for label, knobs in KNOB_SETTINGS:
        table = success_table(env, ExpertKnobs(**knobs), TASK_IDS, range(seeds))
        by_kind = {k: [r.success for t, rs in table.items() if t.startswith(k + "/") for r in rs] for k in KINDS}
        everything = [r for rs in table.values() for r in rs]
        cells = [f"{100 * np.mean(by_kind[k]):.0f} %" for k in KINDS]
        overall = f"{100 * np.mean([r.success for r in everything]):.1f} %"
        steps = np.mean([r.steps for r in everything])
        rows.append(f"| {label} | {' | '.join(cells)} | {overall} | {steps:.1f} |")
        print(rows[-1], flush=True)
    env.close()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=400, help="control steps per camera size")
    parser.add_argument("--sizes", default="64x64,96x96,224x224,640x480")
    parser.add_argument("--cores", choices=["one", "all"], default="one")
    parser.add_argument("--seeds", type=int, default=20, help="layouts per task in the success table")
    parser.add_argument("--no-table", action="store_true")
    args = parser.parse_args(argv)

    where = _pin_one_core() if args.cores == "one" else f"all cores ({os.cpu_count()})"
    from qt_sim.gl import select_gl_backend

    print(f"qt_sim bench: {where}, GL backend {select_gl_backend()}, {args.steps} steps per size", flush=True)
    print(f"  physics only (no camera): {measure_speed(96, 96, args.steps, render=False):7.1f} steps/s", flush=True)
    for size in args.sizes.split(","):
        width, height = (int(v) for v in size.split("x"))
        rate = measure_speed(width, height, args.steps, render=True)
        print(f"  camera {width:>3}x{height:<3}: {rate:7.1f} steps/s", flush=True)
    if not args.no_table:
        print(f"\nexpert success, {args.seeds} seeds x 15 tasks per row:", flush=True)
        success_rows(args.seeds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
