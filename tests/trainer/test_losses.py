"""Exact values of the Bellman targets, the conservative term and the n-step transitions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers.trainer_mdp import write_mdp
from qt_trainer.data import TransitionSampler
from qt_trainer.losses import LossSettings, bc_loss, bellman_targets, q_transformer_loss

ONE_STEP = LossSettings(n_step=1, use_mc_bound=False)


def _target_q_same() -> torch.Tensor:
    """Target-network Q [B=3, D=3, N=4] with a different max in every dimension."""
    q = torch.zeros(3, 3, 4)
    q[:, 0, 2] = 0.2  # dim 0's max: must NOT be used for dim 0's own target
    q[:, 1, 1] = 0.6  # dim 1's max -> target of dim 0
    q[:, 2, 3] = 0.7  # dim 2's max -> target of dim 1
    return q


def test_last_dimension_target_is_reward_plus_discounted_next_max() -> None:
    next_first = torch.tensor([[0.1, 0.5, 0.2, 0.0], [0.9, 0.3, 0.0, 0.0], [0.0, 0.0, 1.0, 0.4]])
    reward = torch.tensor([0.3, 1.0, 0.0])
    discount = torch.tensor([0.9, 0.0, 0.9])  # row 1: the episode ended, no bootstrap
    targets, td = bellman_targets(_target_q_same(), next_first, reward, discount, torch.zeros(3), 3, ONE_STEP)
    expected_last = torch.tensor([0.3 + 0.9 * 0.5, 1.0, 0.9 * 1.0])
    torch.testing.assert_close(targets[:, 2], expected_last)
    torch.testing.assert_close(td, targets)
    # Intermediate dims: max over the NEXT dimension's bins in the same state.
    torch.testing.assert_close(targets[:, 0], torch.full((3,), 0.6))
    torch.testing.assert_close(targets[:, 1], torch.full((3,), 0.7))


def test_monte_carlo_bound_is_a_lower_bound_on_every_dimension() -> None:
    next_first = torch.full((3, 4), 0.5)
    rtg = torch.tensor([0.95, 0.0, 0.65])
    settings = LossSettings(n_step=1, use_mc_bound=True)
    targets, td = bellman_targets(_target_q_same(), next_first, torch.zeros(3), torch.full((3,), 0.9), rtg, 3,
                                  settings)
    torch.testing.assert_close(targets, torch.maximum(td, rtg[:, None]))
    assert targets[0].tolist() == pytest.approx([0.95, 0.95, 0.95])  # lifted
    assert targets[1].tolist() == pytest.approx([0.6, 0.7, 0.45])  # a return of 0 never lowers a target
    assert targets[2].tolist() == pytest.approx([0.65, 0.7, 0.65])


def test_n_step_targets_skip_the_per_dimension_maximisation() -> None:
    settings = LossSettings(n_step=3, use_mc_bound=False)
    targets, _ = bellman_targets(None, torch.full((2, 4), 0.5), torch.tensor([0.0, 0.81]),
                                 torch.tensor([0.729, 0.0]), torch.zeros(2), 3, settings)
    torch.testing.assert_close(targets, torch.tensor([[0.3645] * 3, [0.81] * 3]))


def test_conservative_term_regresses_unseen_bins_to_zero() -> None:
    logits = torch.zeros(2, 2, 5, requires_grad=True)  # every Q = sigmoid(0) = 0.5
    bins = torch.tensor([[1, 3], [0, 4]])
    targets = torch.full((2, 2), 0.5)  # data bins already at their target: TD part is 0
    settings = LossSettings(alpha=2.0)
    loss, parts = q_transformer_loss(logits, bins, targets, settings)
    assert parts["loss/td"].item() == pytest.approx(0.0)
    assert parts["loss/conservative"].item() == pytest.approx(0.5 * 0.25)  # mean of (0.5 - 0)^2 / 2
    assert loss.item() == pytest.approx(2.0 * 0.125)
    loss.backward()
    grad = logits.grad
    taken = F.one_hot(bins, 5).bool()
    assert (grad[~taken] > 0).all()  # gradient descent pushes unseen Q down (toward 0, not 0.5)
    assert (grad[taken] == 0).all()
    loss_off, parts_off = q_transformer_loss(logits, bins, targets, LossSettings(use_conservative=False))
    assert loss_off.item() == pytest.approx(0.0) and parts_off["loss/conservative"].item() > 0


def test_td_term_uses_the_data_bin_of_each_dimension() -> None:
    logits = torch.full((1, 2, 4), -20.0)
    logits[0, 0, 2] = 20.0  # Q ~ 1 at the data bin of dim 0
    bins = torch.tensor([[2, 1]])
    _, parts = q_transformer_loss(logits, bins, torch.tensor([[1.0, 0.0]]), LossSettings(use_conservative=False))
    assert parts["loss/td"].item() == pytest.approx(0.0, abs=1e-8)


def test_minimiser_is_the_closed_form_per_bin_value() -> None:
    """Free Q values of one state trained on one transition: with the neighbour weights w_b the
    loss is sum_b [w_b / W (q_b - y)^2 + alpha (1 - w_b) / (N - 1) q_b^2] / 2 (or its
    cross-entropy form), whose minimiser is q_b = (w_b / W) y / (w_b / W + alpha (1 - w_b) / (N - 1))
    for both: y at the data bin, falling with the distance from it, and the one-hot objective's
    (y, 0, 0, ...) when sigma is 0."""
    n, data_bin, y, alpha = 9, 4, 0.8, 2.0
    bins, targets = torch.tensor([[data_bin]]), torch.tensor([[y]])
    for sigma, regression in ((0.0, "mse"), (1.5, "mse"), (0.0, "bce"), (1.5, "bce")):
        settings = LossSettings(alpha=alpha, bin_sigma=sigma, regression=regression)
        logits = torch.zeros(1, 1, n, requires_grad=True)
        optimiser = torch.optim.Adam([logits], lr=0.05)
        for _ in range(3000):
            optimiser.zero_grad()
            q_transformer_loss(logits, bins, targets, settings)[0].backward()
            optimiser.step()
        offsets = torch.arange(n, dtype=torch.float32) - data_bin
        w = torch.exp(-0.5 * (offsets / sigma) ** 2) if sigma else (offsets == 0).float()
        expected = (w / w.sum()) * y / (w / w.sum() + alpha * (1 - w) / (n - 1))
        # atol: the zeros are sigmoid's limit, approached slowly
        torch.testing.assert_close(torch.sigmoid(logits[0, 0]).detach(), expected, atol=1e-2, rtol=0)
        if sigma:
            q = expected.tolist()
            assert q[data_bin] == pytest.approx(y) and q[3] == q[5] and y > q[3] > q[2] > q[1] > 0.0
        else:
            assert expected[data_bin] == y and expected.sum() == y


def test_cross_entropy_regression_does_not_saturate() -> None:
    """A data bin whose Q sits near 0 but whose target is high: the squared error's gradient on
    the logit is (Q - y) Q (1 - Q), nearly 0; the cross-entropy's is (Q - y)."""
    logits = torch.full((1, 1, 4), -5.0, requires_grad=True)  # Q = 0.0067
    bins, targets = torch.tensor([[2]]), torch.tensor([[0.8]])
    grads = {}
    for regression in ("mse", "bce"):
        logits.grad = None
        q_transformer_loss(logits, bins, targets, LossSettings(use_conservative=False, regression=regression)
                           )[0].backward()
        grads[regression] = logits.grad[0, 0, 2].item()
    q = torch.sigmoid(torch.tensor(-5.0)).item()
    assert grads["bce"] == pytest.approx(q - 0.8, rel=1e-4)
    assert grads["mse"] == pytest.approx((q - 0.8) * q * (1 - q), rel=1e-4)
    assert abs(grads["bce"]) > 100 * abs(grads["mse"])


def test_bc_loss_is_cross_entropy_over_bins() -> None:
    logits = torch.randn(4, 3, 6, generator=torch.Generator().manual_seed(0))
    bins = torch.tensor([[0, 1, 2], [3, 4, 5], [5, 5, 5], [0, 0, 0]])
    loss, parts = bc_loss(logits, bins)
    torch.testing.assert_close(loss, F.cross_entropy(logits.reshape(-1, 6), bins.reshape(-1)))
    assert 0.0 <= parts["bc/accuracy"].item() <= 1.0


def test_sampler_n_step_rewards_and_bootstrap(tmp_path: Path) -> None:
    """Episode A: 4 frames, success; episode B: 2 frames, failure. gamma 0.5, n = 2."""
    data = write_mdp(tmp_path / "d", [([0, 1, 2, 3], [(1, 1)] * 4, "success"), ([4, 5], [(2, 2)] * 2, "failure")],
                     gamma=0.5)
    sampler = TransitionSampler(data, gamma=0.5, n_step=2)
    batch = sampler.batch(np.arange(6))
    np.testing.assert_allclose(batch.reward, [0, 0, 0.5, 1.0, 0, 0])  # frame 2: r_3 discounted once
    np.testing.assert_allclose(batch.discount, [0.25, 0.25, 0, 0, 0, 0])  # bootstrap only inside the episode
    np.testing.assert_array_equal(batch.next_image[0], data.images[2])
    np.testing.assert_array_equal(batch.next_image[1], data.images[3])
    np.testing.assert_allclose(batch.return_to_go, [0.125, 0.25, 0.5, 1.0, 0, 0])
    one = TransitionSampler(data, gamma=0.5, n_step=1).batch(np.arange(6))
    np.testing.assert_allclose(one.discount, [0.5, 0.5, 0.5, 0, 0.5, 0])
    np.testing.assert_allclose(one.reward, [0, 0, 0, 1, 0, 0])
    # Deterministic per (seed, step); DDP ranks split one global batch.
    np.testing.assert_array_equal(sampler.indices(7, 8), sampler.indices(7, 8))
    both = np.sort(np.concatenate([sampler.indices(7, 8, 0, 2), sampler.indices(7, 8, 1, 2)]))
    np.testing.assert_array_equal(both, np.sort(sampler.indices(7, 8)))
