"""RMS-normalised hypergradient on log α, optionally stacked: its step size κ adapted by its own hypergradient.

For a param group, with ``u_t = cos(g_t, d_{t-1})`` (Baydin et al. 2018's hypergradient over its
scale ‖g_t‖‖d_{t-1}‖, as in :mod:`.log_hypergradient`) and q̂_t the bias-corrected moving average
of u² (:mod:`.signal_statistics`):

    ũ_t      = u_t / √q̂_t                      (Adam-style normalisation of the hypergradient)
    log κ_t  = clip(log κ_{t-1} + γ ũ_t ũ'_{t-1},  log κ_min, log κ_max)     (only with γ > 0)
    log α_t  = log α_{t-1} + κ_t ũ'_t,            ũ'_t = ũ_t  (or, with k > 0: [|m̂_t| > k·se_t] m̂_t/√q̂_t)
    α_t      ← α_t / 2 after P consecutive loss spikes;   α_t ← min(α_t, τ‖θ‖/‖d_{t-1}‖)   (:mod:`.safeguards`)

Symbols → arguments: κ_0 = ``hypergrad_lr`` (β; 0 turns the law off), γ = ``hyper_hypergrad_lr``
(0: κ = β for good, the plain RMS-normalised law), (κ_min, κ_max) = ``step_sizes``, ρ of the
moving averages = ``signal_smoothing``, k = ``significance`` (0: off), s = ``loss_spike``,
P = ``spike_patience``, τ = ``trust_ratio`` (None: no cap); ``lr_bounds`` optionally clamps α.

Why each piece:

- *RMS normalisation* (issue 19, item 2). The log-HD law moves log α by β·u, so where successive
  gradients are nearly uncorrelated (|u| ≈ 0.05) a climb of 4 decades takes thousands of steps.
  Dividing by u's RMS, as Adam divides a gradient by its RMS (Kingma & Ba, ICLR 2015), makes a
  consistent signal move log α by ≈ κ per step whatever its size, yet keeps the signal's
  magnitude (unlike :mod:`.log_rprop`'s sign): a weak, inconsistent u moves α less.
- *Stacking* (Chandra, Xie, Ragan-Kelley & Meijer, NeurIPS 2022, "Gradient Descent: The Ultimate
  Optimizer"). The loss L_t depends on κ_{t-1} through log α_{t-1} = log α_{t-2} + κ_{t-1} ũ'_{t-1},
  and ∂L_t/∂log α_{t-1} ∝ −u_t, so −∂L_t/∂κ_{t-1} ∝ u_t ũ'_{t-1}: a hypergradient on κ, taken here
  normalised (ũ_t ũ'_{t-1} ≈ +1 while the signal persists, −1 when it alternates) and on log κ
  (κ > 0; the HDM form one level up). γ = 0.2 ≈ ln 1.2: a persistent signal grows κ as fast as
  Rprop's η⁺ = 1.2 grows η, an alternating one shrinks it by e^{-0.2} (Rprop: ×0.5).
- *Dead zone and safeguards*: as in :mod:`.log_rprop` (k, P, τ, s mean the same there).

Settings (registry rows ``*_rmshd``, ``*_stackhd``): κ_0 = β = 0.1 (log-HD's β), ρ = 0.9,
(κ_min, κ_max) = (0.01, ln 2) and τ = 0.05 as ``*_lrprop``, γ = 0.2, P = 2 (a halving needs two
spikes in a row: :mod:`.safeguards`) — fixed once, never per task.

α, κ and the moments are float64 device scalars; the step makes no host read (a non-finite u —
‖d_{t-1}‖ = 0, overflow — counts as u = 0). Group scalars kept (in ``state_dict()``): ``hd_steps``,
``hypergradient`` (last u), ``lr_step`` (κ), ``lr_signal`` (ũ'_{t-1}), ``signal_mean``,
``signal_square``, ``signal_steps``, ``loss_ema``, ``loss_spikes``, ``lr_halvings``, ``lr_capped``.

Example:
    >>> opt = ComposedOptimizer(model.parameters(), rule="adam", controller="log_rms_hypergradient",
    ...                         lr=1e-5, hyper_hypergrad_lr=0.2, trust_ratio=0.05)
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gradretention.optim.base import Group, Rule, StepSignals
from gradretention.optim.controllers.hypergradient import _scalar
from gradretention.optim.controllers.safeguards import log_alpha_step
from gradretention.optim.controllers.signal_statistics import (rms_normalised, significant_mean,
                                                               update_signal_moments)


class LogRMSHypergradientController:
    """log α moved by κ·u/RMS(u), κ optionally moved by its own hypergradient; see the module docstring."""

    name = "log_rms_hypergradient"
    needs_previous_direction = True
    needs_direction_scale = True
    needs_loss = True
    device_lr = True
    defaults: dict[str, Any] = {"hypergrad_lr": 0.1, "hyper_hypergrad_lr": 0.0, "step_sizes": (0.01, math.log(2)),
                                "signal_smoothing": 0.9, "significance": 0.0, "trust_ratio": None,
                                "loss_spike": 0.5, "loss_smoothing": 0.9, "spike_patience": 1, "lr_bounds": None}

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Any:
        """α_t from ``group["lr"]`` (α_{t-1}, a device scalar), the step's cosine and its loss."""
        return log_alpha_step(group, signals, rule, self._law)

    @staticmethod
    def _law(group: Group, alpha: torch.Tensor, u: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """α·exp(κ_t ũ'_t), updating ``lr_step`` (κ), ``lr_signal`` (ũ') and the moments in ``group``; a
        non-finite u counts as 0."""
        mean, square = update_signal_moments(group, u)
        normalised = rms_normalised(u, square)
        if group["significance"] > 0:
            signal = rms_normalised(mean, square) * significant_mean(group, mean, square)
        else:
            signal = normalised
        step = _scalar(group.get("lr_step", group["hypergrad_lr"]), alpha)
        if group["hyper_hypergrad_lr"] > 0:
            previous = _scalar(group.get("lr_signal", 0.0), alpha)
            low, high = group["step_sizes"]
            step = (step * torch.exp(group["hyper_hypergrad_lr"] * normalised * previous)).clamp(low, high)
        group["lr_step"], group["lr_signal"] = step, signal
        return alpha * torch.exp(step * signal)

    def telemetry(self, group: Group) -> dict[str, float]:
        keys = ("hypergradient", "lr_step", "signal_mean", "loss_ema", "lr_halvings", "lr_capped")
        return {key: float(group[key]) for key in keys if key in group}


CONTROLLERS = {"log_rms_hypergradient": LogRMSHypergradientController}
"""The names this module serves (collected by :mod:`gradretention.optim.controllers`)."""
