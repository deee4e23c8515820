"""The learning rule on small MDPs whose optimal per-dimension Q is known in closed form.

Real training (tiny network, real dataset files, real sentence embedding), few hundred steps.
Per-dimension closed forms on the data's support: Q of an intermediate dimension equals the
max of the next dimension's Q in the same state; Q of the last dimension equals
r + gamma * max of the first dimension's Q in the next state (0 after a failed end).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from helpers.trainer_mdp import q_values, write_mdp
from qt_trainer.config import ModelConfig

TOL = 0.05
GAMMA = 0.9


def test_bandit_two_dims_only_one_bin_pair_pays(tmp_path: Path, train_mdp) -> None:
    a1, b1, a2, b2 = 60, 190, 30, 220
    episodes = [([0], [(x, y)], "success" if (x, y) == (b1, b2) else "failure") for x in (a1, b1) for y in (a2, b2)]
    data = write_mdp(tmp_path / "bandit", episodes, GAMMA, repeat=4)

    trainer = train_mdp(data, 300)
    q1 = q_values(trainer, 0)[0]
    assert abs(q1[b1] - 1.0) < TOL and abs(q1[a1] - 0.0) < TOL  # max over dim 2 after each first bin
    for first, paying in ((a1, None), (b1, b2)):
        q2 = q_values(trainer, 0, (first, 0))[1]
        for second in (a2, b2):
            expected = 1.0 if second == paying else 0.0
            assert abs(q2[second] - expected) < TOL, (first, second, q2[second])
    unseen = np.delete(q1, [a1, b1])
    assert unseen.max() < TOL  # conservative term: bins never taken are regressed to 0

    # Greedy decoding is greedy: it finds the only paying pair, which is the joint argmax.
    model = trainer.model.eval()
    with torch.no_grad():
        bins, q = model.greedy(torch.from_numpy(np.broadcast_to(trainer.dataset.images[0], (1, 8, 8, 3)).copy()),
                               trainer.embeddings[:1])
    assert bins[0].tolist() == [b1, b2] and q[0, 1] > 1 - TOL

    # Without the conservative term, unseen bins keep their initial ~0.5, and the maximisation
    # over the next dimension picks them up: Q of the non-paying first bin is far from 0.
    ablated = train_mdp(data, 300, use_conservative=False)
    q1_ablated = q_values(ablated, 0)[0]
    assert np.delete(q1_ablated, [a1, b1]).mean() > 0.3
    assert q1_ablated[a1] > 0.3


@pytest.mark.parametrize("size", ["tiny", pytest.param("small", marks=pytest.mark.slow)])
def test_multi_step_chain_with_discount(tmp_path: Path, train_mdp, size: str) -> None:
    """s0 -> s1 -> s2 -> s3 -> success under the good action; several failures branch off.

    Q*(s_k, good) = gamma^(3-k) for both dimensions, Q*(s_k, bad) = 0. The MC bound is off,
    so only the Bellman backup (with its discount and reward) can produce these values; a
    failed episode passing through s0..s2 makes the MC return of those frames 0. The slow
    variant trains the default-size network (about 45 s on 2 cores).
    """
    good, bad, bad2 = (200, 210), (40, 50), (40, 210)
    episodes = [([0, 1, 2, 3], [good] * 4, "success")]
    for k in range(4):
        for wrong in (bad, bad2):
            episodes.append((list(range(k + 1)), [good] * k + [wrong], "failure"))
    data = write_mdp(tmp_path / "chain", episodes, GAMMA, repeat=2)

    overrides = {} if size == "tiny" else {"model": ModelConfig(), "lr": 1e-3}
    trainer = train_mdp(data, 800, use_mc_bound=False, target_copy_every=25, **overrides)
    for state in range(4):
        expected = GAMMA ** (3 - state)
        q1 = q_values(trainer, state)[0]
        q2_good = q_values(trainer, state, good)[1]
        q2_bad = q_values(trainer, state, bad)[1]
        assert abs(q1[good[0]] - expected) < TOL, (state, q1[good[0]], expected)
        assert abs(q2_good[good[1]] - expected) < TOL, (state, q2_good[good[1]], expected)
        assert abs(q1[bad[0]]) < TOL and abs(q2_bad[bad[1]]) < TOL and abs(q2_bad[bad2[1]]) < TOL


def test_monte_carlo_bound_with_success_and_failure_sharing_a_prefix(tmp_path: Path, train_mdp) -> None:
    """Success: s0 -a-> s1 -a-> s2 -a-> reward. Failures: s0 -a-> s1 -c-> end (two variants of c).

    Q*(s0, a) = gamma^2 although half the (s0, a) frames have return-to-go 0: the MC return
    is a lower bound (max), never the target itself (which would give ~gamma^2 / 2 there).
    Early in training the bound already lifts Q along the successful trajectory while plain
    TD, bootstrapping through a lagging target network, has not propagated the reward yet.
    """
    a, c, c2 = (200, 210), (40, 50), (40, 210)
    episodes = [([0, 1, 2], [a, a, a], "success"), ([0, 1], [a, c], "failure"), ([0, 1], [a, c2], "failure")]
    data = write_mdp(tmp_path / "mixed", episodes, GAMMA, repeat=4)
    closed = {(2, a): 1.0, (1, a): GAMMA, (0, a): GAMMA**2, (1, c): 0.0}

    def errors(trainer) -> dict[tuple[int, tuple[int, int]], float]:
        out = {}
        for (state, action), value in closed.items():
            q1 = q_values(trainer, state)[0][action[0]]
            q2 = q_values(trainer, state, action)[1][action[1]]
            out[(state, action)] = max(abs(q1 - value), abs(q2 - value))
        return out

    early_bound = errors(train_mdp(data, 200, target_copy_every=100))
    early_td = errors(train_mdp(data, 200, target_copy_every=100, use_mc_bound=False))
    assert early_bound[(1, a)] < TOL and early_bound[(2, a)] < TOL
    assert early_td[(1, a)] > 0.2  # the ablation has not propagated the reward back yet

    converged = errors(train_mdp(data, 700, target_copy_every=25))
    assert max(converged.values()) < TOL, converged
