"""qt eval's two modes decide alike: the real policy node over ROS and the in-process decision path,
same model, same seed, produce the same commands on the same frames, step for step.

The model is a tiny random one (a real exported artefact) that takes ee_pose proprioception and
whose decisions change along the episode (checked), so the comparison covers the image, the
7-value proprio layout, the instruction embedding, the decoder and the safety layer's slew ramp.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers.tiny_policy import export_tiny_policy
from qt_eval.inprocess import run_inprocess
from qt_eval.plan import make_plan, node_parameters
from qt_eval.ros_sim import RosEvalConfig, run_ros
from qt_policy_node.run import default_params_file

pytest.importorskip("qt_sim.driver_node")

HORIZON = 14


@pytest.fixture(scope="module")
def plan_and_model(tmp_path_factory) -> tuple[list, Path]:
    plan = make_plan(("pick/red",), "train", 100_000, 1)
    # Random weights, seed 3: its decisions vary along the episode and engage the slew limit.
    model = export_tiny_policy(tmp_path_factory.mktemp("model") / "tiny", image_size=(48, 64), proprio_dim=7, seed=3,
                               instructions=tuple(s.instruction for s in plan))
    return plan, model


def test_ros_and_inprocess_execute_the_same_commands_on_the_same_frames(plan_and_model):
    plan, model = plan_and_model
    params_file = default_params_file()
    every = lambda index, spec: True  # noqa: E731
    local = run_inprocess(model, node_parameters(params_file), plan, horizon=HORIZON, keep_frames=every,
                          keep_executed=True)[0]
    # 10 Hz wall: a 100 ms budget per tick keeps the timer-driven node one decision per frame even
    # on a loaded machine (what the timing counters below check).
    ros = run_ros(RosEvalConfig(model, params_file, rate_hz=10.0, sim_period_s=0.1, horizon=HORIZON), plan,
                  keep_frames=every, keep_executed=True)[0]
    assert ros.lockstep_misses == 0 and ros.repeated_commands == 0, "timing broke one decision per frame"
    assert (ros.steps, ros.outcome) == (local.steps, local.outcome) == (HORIZON - 1, "failure")
    assert len(ros.frames) == len(local.frames) == HORIZON
    for k, (a, b) in enumerate(zip(ros.frames, local.frames, strict=True)):
        assert np.array_equal(a, b), f"frame {k} differs"
    commands = np.array(local.executed)
    assert len({tuple(c) for c in commands}) >= 3, "the model's decisions should change along the episode"
    np.testing.assert_array_equal(np.array(ros.executed), commands)
    assert ros.decode_ms and ros.command_latency_ms and ros.control_rate_hz > 5
