"""The Q-Transformer objective (Chebotar et al., CoRL 2023) and the behaviour-cloning baseline.

For a transition (s_t, a_t = (a^1..a^D), r_t, s_{t+1}), with Q computed teacher-forced on the
data prefix, the per-dimension Bellman targets are

* intermediate dimension d < D:  y_d = max_b Q_target(s_t, a^{1:d}, b)   (next dim, same state)
* last dimension:                y_D = r_t + gamma * max_b Q_target(s_{t+1}, b)   (first dim of
  the next state; no bootstrap when the episode ends at t)
* n-step (n > 1): every dimension uses y = sum_{k<n} gamma^k r_{t+k} + gamma^n max_b
  Q_target(s_{t+n}, b), skipping the per-dimension maximisation (as the paper does);
* Monte Carlo lower bound: y <- max(y, return_to_go_t), for every dimension.

Loss = 1/2 mean_d (Q(s, a^{1:d}) - y_d)^2 + alpha/2 mean_d mean_{b != a^d} Q(s, a^{1:d-1}, b)^2.
The conservative term regresses the bins *not taken* toward 0 (the minimum possible return with
binary rewards), not toward sigmoid(0) = 0.5 and not downward without bound as in CQL.

``regression`` "bce" (an option of this project) replaces both squared errors by Bernoulli
cross-entropies on the logits (Q and its targets lie in [0, 1] with binary rewards). The
minimiser is the same (for a bin taken with weight p and pulled to 0 with weight c:
q = p y / (p + c) either way) but the gradient on a logit is (Q - y) instead of
(Q - y) Q (1 - Q). Why: the conservative term drives the Q of every rarely taken bin close to 0,
where the squared error's gradient vanishes with Q; a bin taken in 1 % of similar states then
barely learns its value even when it led to success (measured: Q 0.009 for a data bin whose
return was 0.80, R5's diagnostics; docs/E2E.md).

With ``bin_sigma`` > 0 (an option of this project, not the paper's), a bin b at distance
|b - a^d| from the data bin shares the transition's target with weight w = exp(-d^2 / 2 sigma^2)
and takes the conservative pull with weight 1 - w. Why: bins are ordered values (256 bins over
+-2 cm is 0.16 mm per bin), yet the plain objective learns every bin's Q only from transitions
that took exactly that bin. The expert's fine approach moves are spread over ~250 bins at under
1 % each while the saturated and neutral bins take 40-60 % of the frames, so the conservative
term keeps every fine bin low and greedy falls back to full speed or standing still whenever
the state estimate is uncertain (measured from pixels: docs/E2E.md, R5).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class LossSettings:
    n_step: int = 1
    alpha: float = 1.0
    use_conservative: bool = True
    use_mc_bound: bool = True
    bin_sigma: float = 0.0  # > 0: neighbouring bins share the data bin's target (see module doc)
    regression: str = "mse"  # or "bce": the same fixed point without sigmoid saturation (module doc)


def bellman_targets(
    target_q_same: Tensor | None,
    next_first_q: Tensor,
    reward: Tensor,
    discount: Tensor,
    return_to_go: Tensor,
    num_dims: int,
    settings: LossSettings,
) -> tuple[Tensor, Tensor]:
    """Per-dimension targets [B, D] and the TD part before the MC bound (for logging).

    ``target_q_same``: target-network Q [B, D, N] at s_t, teacher-forced on the data bins
    (not needed for n-step). ``next_first_q``: target-network Q [B, N] of the first dimension
    at the bootstrap state. ``reward``: (n-step discounted) reward sum [B]. ``discount``:
    gamma^n, or 0 where the episode ends before the bootstrap state [B].
    """
    last = reward + discount * next_first_q.max(dim=-1).values  # [B]
    if settings.n_step == 1:
        if target_q_same is None:
            raise ValueError("target_q_same: required for 1-step targets")
        intermediate = target_q_same[:, 1:, :].max(dim=-1).values  # [B, D-1]: next dim, same state
        td = torch.cat([intermediate, last[:, None]], dim=1)
    else:
        td = last[:, None].expand(-1, num_dims)
    targets = torch.maximum(td, return_to_go[:, None]) if settings.use_mc_bound else td
    return targets.detach(), td.detach()


def q_transformer_loss(logits: Tensor, bins: Tensor, targets: Tensor, settings: LossSettings
                       ) -> tuple[Tensor, dict[str, Tensor]]:
    """Total loss and its parts. ``logits`` [B, D, N] online network, ``bins`` [B, D] data."""
    logits = logits.float()
    q = torch.sigmoid(logits)
    n = q.shape[-1]
    near = data_bin_weights(bins, n, settings.bin_sigma)  # [B, D, N], 1 at the data bin
    q_data = q.gather(2, bins.long().unsqueeze(-1))[..., 0]  # [B, D]
    far = 1.0 - near
    n_unseen = n - 1
    if settings.regression == "bce":
        per_bin_td = F.binary_cross_entropy_with_logits(logits, targets.unsqueeze(-1).expand_as(logits),
                                                        reduction="none")
        per_bin_zero = F.softplus(logits)  # -log(1 - Q): cross-entropy toward 0
    else:
        per_bin_td = 0.5 * (q - targets.unsqueeze(-1)).pow(2)
        per_bin_zero = 0.5 * q.pow(2)
    td_loss = ((near * per_bin_td).sum(dim=-1) / near.sum(dim=-1)).mean()
    conservative = ((far * per_bin_zero).sum(dim=-1) / n_unseen).mean()
    total = td_loss + settings.alpha * conservative if settings.use_conservative else td_loss
    parts = {
        "loss/total": total.detach(),
        "loss/td": td_loss.detach(),
        "loss/conservative": conservative.detach(),
        "q/data": q_data.mean().detach(),
        "q/unseen": (q.masked_fill(near >= 1.0, 0.0).sum(dim=-1) / n_unseen).mean().detach(),
        "target/mean": targets.mean().detach(),
        "target/max": targets.max().detach(),
    }
    return total, parts


def data_bin_weights(bins: Tensor, num_bins: int, sigma: float) -> Tensor:
    """[B, D, N] weight of each bin as "the action taken": one-hot, or a Gaussian of width
    ``sigma`` bins around the data bin (1 at the data bin itself)."""
    if sigma <= 0:
        return F.one_hot(bins.long(), num_bins).float()
    offsets = torch.arange(num_bins, device=bins.device, dtype=torch.float32) - bins.float().unsqueeze(-1)
    return torch.exp(-0.5 * (offsets / sigma) ** 2)


def bc_loss(logits: Tensor, bins: Tensor, sigma_bins: float = 0.0) -> tuple[Tensor, dict[str, Tensor]]:
    """RT-1 style behaviour cloning: cross-entropy over bins, teacher-forced per dimension.

    ``sigma_bins`` > 0 replaces the one-hot target by a Gaussian over neighbouring bins (then
    renormalised). Why: bins are ordered values, and plain cross-entropy treats the bin next to
    the right one as wrong as the farthest; the soft target teaches that order directly, which
    made low-dim BC learn the proportional reaching motion several times faster here.
    """
    n = logits.shape[-1]
    log_p = logits.float().log_softmax(dim=-1)
    if sigma_bins > 0:
        offsets = torch.arange(n, device=logits.device, dtype=torch.float32) - bins.float().unsqueeze(-1)
        target = torch.exp(-0.5 * (offsets / sigma_bins) ** 2)
        target = target / target.sum(dim=-1, keepdim=True)
        loss = -(target * log_p).sum(dim=-1).mean()
    else:
        loss = F.nll_loss(log_p.reshape(-1, n), bins.long().reshape(-1))
    accuracy = (logits.argmax(dim=-1) == bins.long()).float().mean()
    return loss, {"loss/total": loss.detach(), "loss/bc": loss.detach(), "bc/accuracy": accuracy.detach()}
