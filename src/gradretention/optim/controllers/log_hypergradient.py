"""Hypergradient descent on log α with a normalised hypergradient and a loss-spike safeguard.

For a param group, with ``h_t = Σ_p ⟨g_t, d_{t-1}⟩`` (Baydin et al. 2018's hypergradient, minus
the derivative of the loss at θ_{t-1} with respect to α_{t-1}) and ``‖g_t‖‖d_{t-1}‖`` its scale:

    u_t       = h_t / (‖g_t‖ ‖d_{t-1}‖)  = cos(g_t, d_{t-1})   ∈ [−1, 1]
    log α_t   = log α_{t-1} + β (u_t + c)                       (α_t = α_{t-1} · exp(β (u_t + c)))
    if L_t > (1 + s) · L̄_{t-1} or L_t is not finite:  α_t ← α_t / 2
    L̄_t       = ρ L̄_{t-1} + (1 − ρ) L_t                         (L̄_1 = L_1; a non-finite L_t is skipped)

Symbols → arguments: β = ``hypergrad_lr``, c = ``cosine_offset``, s = ``loss_spike`` (0 turns the
safeguard off), ρ = ``loss_smoothing``; ``trust_ratio`` τ (None: off) caps α ≤ τ‖θ‖/‖d‖
(:mod:`.safeguards`); ``lr_bounds`` optionally clamps α.

Why each piece:

- *Log scale.* The additive HD law moves α by β·h, whose size depends on the gradient scale
  and on α itself: a β that rescues α₀ = 1e-5 is far too small at α₀ = 0.1 (issue 19: from 0.1,
  SGDN-HD's α only fell to ≈ 0.097). On log α with the cosine, one step changes α by at most a
  factor e^{β(1+c)} whatever the gradient scale, so the same β spans decades of α₀. This is the
  multiplicative form HDM of Baydin et al. (2018, §3.1), ``α_t = α_{t-1}(1 + β' u_t)``, taken
  exactly (exp instead of its first order), which keeps α > 0 for any β.
- *Offset c ≥ 0.* The fixed point of ``u_t = 0`` is the greedy one-step lr, which is too small
  over a long horizon: the short-horizon bias of Wu et al. (ICLR 2018, "Understanding
  Short-Horizon Bias in Stochastic Meta-Optimization"). With c > 0, α settles where the
  successive directions are slightly anti-aligned (cos = −c), i.e. a little above greedy.
- *Safeguard.* A too-large α makes the loss jump before the cosine has a chance to turn:
  halving α on a jump above the loss's moving average stops it within a few steps (the
  additive law cannot shrink α by more than β·|h| per step).

β is one constant for every task (the default, 0.1, was fixed once: never tuned per task).

Stacking (Chandra et al., NeurIPS 2022, "Gradient Descent: The Ultimate Optimizer") would put
a hypergradient on β itself; :mod:`.log_rprop` does so in sign form (Rprop's step adaptation).

α is a float64 0-dim tensor on the params' device and the law runs without a host sync
(a non-finite u, e.g. ‖d_{t-1}‖ = 0 or an overflowing gradient, leaves α unchanged through
``torch.where``). The safeguard compares host floats: the loss (which the optimizer already
read as a float) and L̄, so it adds no device read either.
Group scalars kept (in ``state_dict()``): ``hd_steps`` (steps seen), ``hypergradient`` (last u),
``loss_ema`` (L̄, absent until a loss arrives), ``lr_halvings`` (safeguard firings),
``lr_capped`` (steps at which the trust cap bound, with ``trust_ratio``).

Example:
    >>> opt = ComposedOptimizer(model.parameters(), rule="sgdn", controller="log_hypergradient", lr=1e-3)
"""

from __future__ import annotations

from typing import Any

import torch

from gradretention.optim.base import Group, Rule, StepSignals
from gradretention.optim.controllers.safeguards import log_alpha_step


class LogHypergradientController:
    """α_t = α_{t-1}·exp(β(cos(g_t, d_{t-1}) + c)), halved on a loss spike; see the module docstring."""

    name = "log_hypergradient"
    needs_previous_direction = True
    #: the composed optimizer reduces ‖g_t‖‖d_{t-1}‖ for this controller (u_t is a cosine).
    needs_direction_scale = True
    needs_loss = True
    device_lr = True
    defaults: dict[str, Any] = {"hypergrad_lr": 0.1, "cosine_offset": 0.1, "loss_spike": 0.5,
                                "loss_smoothing": 0.9, "trust_ratio": None, "lr_bounds": None}

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Any:
        """α_t from ``group["lr"]`` (α_{t-1}, a device scalar), the step's cosine and its loss."""
        return log_alpha_step(group, signals, rule, self._law)

    @staticmethod
    def _law(group: Group, alpha: torch.Tensor, u: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """α·exp(β(u_t + c)); a non-finite u leaves α as it was."""
        factor = torch.exp(group["hypergrad_lr"] * (u + group["cosine_offset"]))
        return torch.where(finite, alpha * factor, alpha)

    def telemetry(self, group: Group) -> dict[str, float]:
        keys = ("hypergradient", "loss_ema", "lr_halvings", "lr_capped")
        return {key: float(group[key]) for key in keys if key in group}


CONTROLLERS = {"log_hypergradient": LogHypergradientController}
"""The names this module serves (collected by :mod:`gradretention.optim.controllers`)."""
