"""Safeguards shared by the multiplicative learning-rate laws: a loss-spike halving and a trust-ratio cap.

Both keep their state as scalars in the param group (so they round-trip through ``state_dict()``).

**Loss spike** (issue 19): with ``L̄`` the loss's moving average,

    spike_t = L_t > (1 + s) · L̄_{t-1} or L_t is not finite
    if spike_t, …, spike_{t-P+1} all hold:  α_t ← α_t / 2
    L̄_t = ρ L̄_{t-1} + (1 − ρ) L_t           (L̄_1 = L_1; a non-finite L_t is skipped)

s = ``loss_spike`` (0 turns it off), ρ = ``loss_smoothing``, P = ``spike_patience`` (1: every spike
halves, the controllers' class default; the registry rows of ``adam_lrprop``, ``*_rmshd``, ``*_stackhd``
and ``*_zprop`` take 2; ``*_loghd`` has no patience: every spike halves). It compares host floats only (the loss the
optimizer already read, and L̄), so it adds no device read.

Why a patience (issue 19): late in training a minibatch loss exceeds 1.5× its average by chance
alone — its relative spread grows as the loss falls — and each such draw halved α for good:
``adam_lrprop`` (then with P = 1) halved α 17 times in 300 steps on spiral and 14 times in 1,290 on fmnist-logreg,
which is the whole of its late downward drift (with s = 0 α stays within 0.6 decades of the tuned
lr). Minibatches are drawn independently, so a chance spike at step t says nothing about step t+1,
while a divergence persists: P = 2 keeps the guard against the latter at one step's delay and cuts a
chance firing of probability p to about p².

**Trust-ratio cap** (global form of LARS, You et al. 2017, "Large Batch Training of Convolutional
Networks", arXiv:1708.03888, and of LAMB, You et al., ICLR 2020): no step may move the group's
parameters by more than a fraction τ of their norm,

    α_t ≤ τ ‖θ_{t-1}‖ / ‖d‖                (no cap while ‖θ‖ = 0 or ‖d‖ is unknown)

τ = ``trust_ratio`` (None turns it off). ‖d_t‖ is not known before the rule runs, so from step 2
the cap uses the previous direction's norm ‖d_{t-1}‖ (``StepSignals.direction_norm``, over the
params that stepped at t−1; the fused paths reduce it in the hypergradient's pass). A caller that
gives only ``direction_scale`` = ‖g_t‖‖d_{t-1}‖ gets it divided by ‖g_t‖ (exact when every param of
the group stepped at t−1; the cap is a bound on the order of magnitude, not an identity).
At the group's first step, ‖d_1‖ itself is computed by the rule's reference loop on an empty,
discarded state (one temporary per param, once), so a too-large α₀ never touches the weights
uncapped: every α₀ above the cap gives the same first step. Why a cap and not only the spike:
a huge α can ruin the initialisation (or kill ReLUs) without any loss spike the average could
see (issue 19: ``adam_loghd`` at 40 epochs drifted to chance at a flat loss).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from gradretention.optim.base import Group, Rule, StepSignals


def loss_spike_factor(group: Group, loss: float) -> float:
    """0.5 when ``loss`` jumps above (1 + s)·L̄ or is not finite (P times in a row), else 1; updates L̄ (host floats)."""
    ema = group.get("loss_ema")
    if not math.isfinite(loss):
        spike = True
    else:
        spike = ema is not None and loss > (1 + group["loss_spike"]) * ema
        rho = group["loss_smoothing"]
        group["loss_ema"] = loss if ema is None else rho * ema + (1 - rho) * loss
    patience = group.get("spike_patience", 1)
    if patience > 1:
        group["loss_spikes"] = run = group.get("loss_spikes", 0) + 1 if spike else 0
        spike = run >= patience
    if spike:
        group["lr_halvings"] = group.get("lr_halvings", 0) + 1
    return 0.5 if spike else 1.0


def apply_loss_spike(group: Group, signals: StepSignals, alpha: Any) -> Any:
    """``alpha`` halved on a loss spike (when a loss was passed and the safeguard is on)."""
    if signals.loss is not None and group["loss_spike"] > 0:
        return alpha * loss_spike_factor(group, signals.loss)
    return alpha


def _norm(tensors: list[Tensor], device: torch.device) -> Tensor:
    """‖(t_1, …, t_n)‖₂ as a float64 device scalar (accumulated in float32 at least; tensors may span devices)."""
    dtype = torch.promote_types(tensors[0].dtype, torch.float32)
    # One dot product per tensor: t ** 2 would write and read back a temporary the size of the model.
    squares = [torch.dot(flat, flat).to(device, torch.float64) for flat in (t.reshape(-1).to(dtype) for t in tensors)]
    return torch.sqrt(torch.stack(squares).sum())


def trust_cap(group: Group, signals: StepSignals, rule: Rule) -> Tensor | None:
    """τ‖θ_{t-1}‖/‖d‖ as a float64 device scalar (+inf where it is undefined), or None when off."""
    if group.get("trust_ratio") is None or not signals.params:
        return None
    device = group["lr"].device
    if signals.direction_norm is not None:
        direction = signals.direction_norm.to(device, torch.float64)
    elif signals.hypergradient is not None:
        scale = torch.as_tensor(signals.direction_scale, dtype=torch.float64, device=device)
        direction = scale / _norm(signals.grads, device)
    elif group.get("hd_steps") == 1:  # d_1 from the rule on an empty state (the real one is empty too)
        direction = _norm([rule.direction(p, g, {}, group) for p, g in zip(signals.params, signals.grads)], device)
    else:
        return None
    cap = group["trust_ratio"] * _norm(signals.params, device) / direction
    usable = torch.isfinite(cap) & (cap > 0)
    return torch.where(usable, cap, torch.full_like(cap, math.inf))


def apply_trust_cap(group: Group, signals: StepSignals, rule: Rule, alpha: Tensor) -> Tensor:
    """``min(alpha, cap)``; counts the steps at which the cap bound (``lr_capped``, a device scalar)."""
    cap = trust_cap(group, signals, rule)
    if cap is None:
        return alpha
    bound = alpha > cap
    group["lr_capped"] = group.get("lr_capped", torch.zeros_like(cap)) + bound.to(torch.float64)
    return torch.where(bound, cap, alpha)


def log_alpha_step(group: Group, signals: StepSignals, rule: Rule,
                   law: Callable[[Group, Tensor, Tensor, Tensor], Tensor]) -> Any:
    """The frame every log-α controller shares around its law, one step.

    Counts the step (``hd_steps``); where the step has a cosine u_t = h_t / (‖g_t‖‖d_{t-1}‖) and
    ``hypergrad_lr`` ≠ 0, records it (``hypergradient``; a non-finite u — ‖d_{t-1}‖ = 0, an overflowing
    gradient — carries no information and is recorded as 0) and moves α by
    ``law(group, α_{t-1}, u_t, finite)``; then the loss-spike halving, the trust cap and the optional
    ``lr_bounds`` clamp, in that order.
    """
    group["hd_steps"] = group.get("hd_steps", 0) + 1
    alpha, h = group["lr"], signals.hypergradient
    group.setdefault("hypergradient", 0.0)
    if h is not None and group["hypergrad_lr"] != 0.0:
        u = h.to(torch.float64) / signals.direction_scale
        finite = torch.isfinite(u)
        group["hypergradient"] = u = torch.where(finite, u, 0.0)
        alpha = law(group, alpha, u, finite)
    alpha = apply_trust_cap(group, signals, rule, apply_loss_spike(group, signals, alpha))
    if group["lr_bounds"] is not None:
        alpha = alpha.clamp(*group["lr_bounds"])
    return alpha
