"""``qt collect --policy MODEL --inprocess [--epsilon E]``: a policy's own rollouts in the sim, as bags.

Why: offline Q-learning improves on its data when that data holds the policy's own attempts,
successes and failures (the paper adds autonomous episodes to the demonstrations). This records
them in exactly the bag format of in-process expert collection (qt_eval.inprocess_collect: same
driver, recorder core and message code), labelled by the sim's success check, every command an
``ArmAction`` with ``source`` POLICY, so ``qt convert`` makes them a dataset (source ``policy``).

The decisions are the policy node's (qt_policy_node.agent.PolicyAgent, built from the node's
parameters: decoder, instruction embedding, proprio layout, safety layer with its slew limit),
as the in-process evaluation uses them. Exploration is epsilon-greedy over the action bins:
each step, each action dimension independently takes a uniformly random bin with probability
``epsilon`` instead of the policy's; the random draw is seeded per episode (the layout seed),
so a run is reproducible. What is executed and recorded is the explored command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

EXPLORATION_SEED = 0x51C0  # mixed with the layout seed: exploration draws differ from layout draws


class PolicyActor:
    """qt_eval.inprocess_collect.Actor for a policy: the node's decision path plus epsilon-greedy bins."""

    def __init__(self, model_dir: Path, params: dict[str, Any], spec: Any, epsilon: float = 0.0):
        from qt_policy_node.agent import PolicyAgent

        if not 0.0 <= epsilon <= 1.0:
            raise ValueError(f"epsilon: expected a probability in [0, 1], got {epsilon}")
        self.agent = PolicyAgent(Path(model_dir), params)
        if self.agent.spec.digest() != spec.digest():
            raise ValueError("the policy's action spec differs from the simulator's (action_spec_file parameter)")
        self.spec, self.epsilon = spec, float(epsilon)
        self.period_s = 1.0 / float(self.agent.decoder.card["control_rate_hz"])
        self.rng = np.random.default_rng(EXPLORATION_SEED)
        self.explored = 0  # dimensions replaced by a random bin, over the run
        self.decided = 0  # dimensions decided, over the run

    def reset(self, event: Any) -> None:
        self.agent.begin_episode(event.instruction)
        self.rng = np.random.default_rng([EXPLORATION_SEED, int(event.seed)])

    def act(self, out: Any, msgs: Any, stamp: Any, frame_id: str, tick: int) -> tuple[Any, None]:
        from qt_msgs.msg import ArmAction

        state = out.state
        values, _ = self.agent.act(out.image, state.ee_pos, state.ee_quat, state.joint_positions[-2:],
                                   (tick - 1) * self.period_s)
        values = self.explore(values).astype(np.float32).astype(np.float64)  # as ArmAction carries them
        msg = ArmAction(dimension_names=self.spec.names, values=[float(v) for v in values],
                        bins=[int(b) for b in self.spec.values_to_bins(values)], num_bins=self.spec.num_bins,
                        source=ArmAction.SOURCE_POLICY)
        msg.header.stamp, msg.header.frame_id = stamp, frame_id
        return msg, None

    def explore(self, values: np.ndarray) -> np.ndarray:
        """Each dimension, with probability epsilon, the value of a uniformly random bin."""
        self.decided += values.size
        if self.epsilon <= 0.0:
            return values
        mask = self.rng.random(values.size) < self.epsilon
        if not mask.any():
            return values
        self.explored += int(mask.sum())
        random_bins = self.rng.integers(0, self.spec.num_bins, size=values.size)
        explored = values.copy()
        explored[mask] = self.spec.bins_to_values(random_bins)[mask]
        return explored


def policy_actor_factory(model_dir: Path, epsilon: float, params_file: Path | None = None) -> Any:
    """A picklable-argument factory for InprocessCollector(actor=...): builds the actor in the
    process that runs the simulator (a ``--jobs`` worker loads its own ONNX session)."""
    from qt_policy_node.run import default_params_file

    from qt_eval.plan import node_parameters

    params = node_parameters((params_file or default_params_file()).expanduser().resolve())
    return lambda spec: PolicyActor(model_dir, params, spec, epsilon)
