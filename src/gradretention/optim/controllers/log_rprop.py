"""Rprop on log α: a sign hypergradient with a self-tuning step, a trust-ratio cap and a loss-spike safeguard.

For a param group, with ``u_t = cos(g_t, d_{t-1}) = h_t / (‖g_t‖‖d_{t-1}‖)`` (the normalised
hypergradient of Baydin et al. 2018, as in :mod:`.log_hypergradient`):

    s_t      = sign(u_t + c)                                         (0 without a d_{t-1})
               or, with k > 0:  sign(m̂_t) · [|m̂_t| > k·se_t],  m̂_t the running mean of u + c
    η_t      = clip(η_{t-1} · {η⁺ if s_t s_{t-1} > 0;  η⁻ if < 0;  1 else},  η_min, η_max)
    log α_t  = log α_{t-1} + η_t s_t
    α_t      ← α_t / 2 on a loss spike;   α_t ← min(α_t, τ‖θ_{t-1}‖/‖d_{t-1}‖)   (:mod:`.safeguards`)

Symbols → arguments: η_0 = ``hypergrad_lr`` (0 turns the law off), (η⁻, η⁺) = ``etas``,
(η_min, η_max) = ``step_sizes`` (torch.optim.Rprop's names), c = ``cosine_offset``,
τ = ``trust_ratio`` (None: no cap), s = ``loss_spike``, ρ = ``loss_smoothing``, P = ``spike_patience``
(consecutive spikes before a halving); k = ``significance`` (0: off) and its EMA weight
``signal_smoothing`` (:mod:`.signal_statistics`); ``lr_bounds`` optionally clamps α.

Why each piece:

- *Sign on log α* (Rprop, Riedmiller & Braun, ICNN 1993, "A direct adaptive method for faster
  backpropagation learning: the RPROP algorithm"). The log-α hypergradient law of
  :mod:`.log_hypergradient` moves log α by β(u + c), so from α₀ = 1e-5 it needs
  ln(10⁴)/(β·u) steps — thousands where successive gradients are nearly uncorrelated (u ≈ 0.05),
  which is why it held only 2 decades on mnist1d (issue 19). The sign removes the signal's
  magnitude: α travels at the rate η whatever u's size, as long as its sign is consistent.
- *Self-tuning rate η* (the Rprop rule, and a sign form of a stacked hyperoptimizer, Chandra et
  al., NeurIPS 2022, "Gradient Descent: The Ultimate Optimizer"). The loss at step t depends on
  η_{t-1} through log α_{t-1}, so ``−∂L_t/∂η_{t-1} ∝ u_t s_{t-1}``: a hypergradient on η that is
  positive when successive signals agree. Rprop's factors (η⁺ = 1.2, η⁻ = 0.5) take its sign.
  While α is far from where the signal flips, η grows geometrically up to η_max = ln 2 (α at
  most doubles per step), so α₀ = 1e-5 reaches 1e-2 within ≈ 20 steps; once the signal flips
  around its fixed point, η shrinks to η_min and α stays put: the first phase is a geometric
  search and the second an annealed hypergradient law, with no schedule between them.
- *Dead zone* (``significance`` k > 0, issue 19). Late in training u is noise whose sign still
  leans one way: the law then walks α down (or up) by η per step on no evidence. With k > 0 the
  sign is that of u's running mean m̂, and 0 (α and η held) unless |m̂| exceeds k standard errors
  (:mod:`.signal_statistics`; Pflug 1983, Lang et al. NeurIPS 2019). A non-finite u counts as 0.
- *Safeguards.* The cap makes every α₀ above it equivalent from the first step and bounds the
  upward drift that noise-dominated cosines cause (c > 0 made ``adam_loghd`` climb to chance
  over 1,400 steps); the loss-spike halving acts faster than any sign step.

One setting for every task (the registry's defaults, never tuned per task): η_0 = 0.1,
(η⁻, η⁺) = (0.5, 1.2) and η_max = ln 2 from Rprop and the "at most double" bound, η_min = 0.01
(a drift of ≥ 1 decade over ≈ 250 steps of consistent sign), c = 0 (the greedy fixed point),
τ = ``trust_ratio`` from the registry row (0.05), and P = 2 in ``adam_lrprop`` (the class default and
``sgdn_lrprop`` keep 1): with P = 1 chance minibatch spikes halved Adam's α for good late in training,
68 times over fmnist-logreg's 20 epochs (issue 19; :mod:`.safeguards`); Nesterov's overshoots alternate
(loss up, down, up), which P = 2 lets through on Rosenbrock, so its row keeps P = 1.

α and the law's state are float64 device scalars; the step makes no host read (non-finite
u — ‖d_{t-1}‖ = 0, overflow — gives s = 0 through ``torch.where``).
Group scalars kept (in ``state_dict()``): ``hd_steps``, ``hypergradient`` (last u), ``lr_step``
(η), ``lr_sign`` (s_{t-1}), ``loss_ema``, ``lr_halvings``, ``lr_capped`` (steps at the cap),
``loss_spikes`` (with P > 1), ``signal_mean``/``signal_square``/``signal_steps`` (with k > 0).

Example:
    >>> opt = ComposedOptimizer(model.parameters(), rule="adam", controller="log_rprop", lr=1e-5)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gradretention.optim.base import Group, Rule, StepSignals
from gradretention.optim.controllers.hypergradient import _scalar
from gradretention.optim.controllers.safeguards import log_alpha_step
from gradretention.optim.controllers.signal_statistics import significant_mean, update_signal_moments


class LogRpropController:
    """log α moved by η_t·sign(cos(g_t, d_{t-1}) + c), η adapted by Rprop; see the module docstring."""

    name = "log_rprop"
    needs_previous_direction = True
    needs_direction_scale = True
    needs_loss = True
    device_lr = True
    defaults: dict[str, Any] = {"hypergrad_lr": 0.1, "etas": (0.5, 1.2), "step_sizes": (0.01, math.log(2)),
                                "cosine_offset": 0.0, "trust_ratio": None, "loss_spike": 0.5,
                                "loss_smoothing": 0.9, "spike_patience": 1, "significance": 0.0,
                                "signal_smoothing": 0.9, "lr_bounds": None}

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Any:
        """α_t from ``group["lr"]`` (α_{t-1}, a device scalar), the step's cosine and its loss."""
        return log_alpha_step(group, signals, rule, self._law)

    @staticmethod
    def _law(group: Group, alpha: torch.Tensor, u: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """α·exp(η_t s_t), updating ``lr_step`` (η) and ``lr_sign`` (s) in ``group``; a non-finite u gives s = 0."""
        if group["significance"] > 0:
            mean, square = update_signal_moments(group, u + group["cosine_offset"])
            sign = torch.sign(mean) * significant_mean(group, mean, square)
        else:
            sign = torch.where(finite, torch.sign(u + group["cosine_offset"]), 0.0)
        previous = _scalar(group.get("lr_sign", 0.0), alpha)
        step = _scalar(group.get("lr_step", group["hypergrad_lr"]), alpha)
        down, up = group["etas"]
        agreement = sign * previous
        # float64 factors: torch.where on two Python floats would round them to float32.
        factor = torch.where(agreement > 0, up, torch.where(agreement < 0, _scalar(down, alpha), 1.0))
        step = (step * factor).clamp(*group["step_sizes"])
        group["lr_step"], group["lr_sign"] = step, sign
        return alpha * torch.exp(step * sign)

    def telemetry(self, group: Group) -> dict[str, float]:
        keys = ("hypergradient", "lr_step", "loss_ema", "lr_halvings", "lr_capped", "signal_mean")
        return {key: float(group[key]) for key in keys if key in group}


CONTROLLERS = {"log_rprop": LogRpropController}
"""The names this module serves (collected by :mod:`gradretention.optim.controllers`)."""
