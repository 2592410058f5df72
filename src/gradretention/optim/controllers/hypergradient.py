"""Hypergradient descent on the learning rate (Baydin et al., ICLR 2018, arXiv:1703.04782).

For a param group, ``h_t = Σ_p ⟨g_t, d_{t-1}⟩`` is minus the derivative of the loss at
θ_{t-1} with respect to α_{t-1}. The lr optimizer ("lop") moves α along it:

- ``sgd``  (the paper's HD):  ``α_t = α_{t-1} + β h_t``
- ``sgdn`` (Nesterov on α):   ``B_t = μ_h B_{t-1} + h_t``;  ``α_t = α_{t-1} + β (h_t + μ_h B_t)``
- ``adam`` (Adam on α):       scalar ``M, V`` with their own count ``k_h`` (1 on step 2);
  ``α_t = α_{t-1} + β M̂/(√V̂ + ε_h)``
- ``multiplicative=True`` (HDM): the same laws fed ``u_t = h_t/(‖g_t‖‖d_{t-1}‖)`` give a
  relative change ``Δ``, and ``α_t = α_{t-1}(1 + Δ)``; with lop ``sgd`` this is the paper's
  ``α_t = α_{t-1}(1 + β' h_t/(‖g_t‖‖d_{t-1}‖))``.
α may go negative: the paper lets it, and its published runs show SGD-HD's α dipping
below 0 late in training (the step then climbs the loss until h turns α back). Optional
``lr_bounds=(low, high)`` clamps α. A non-finite h (overflowing gradients) leaves α and
the lr-optimizer state unchanged. One scalar state per group, fed by the
group-total ``h_t`` — unlike the reference variants, which kept one state per tensor and
let every tensor push the shared α.
"""

from __future__ import annotations

import math
from typing import Any

import torch

from gradretention.optim.base import Group, Rule, StepSignals

LR_OPTIMIZERS: tuple[str, ...] = ("sgd", "sgdn", "adam")

Scalar = Any
"""A Python float or a 0-dim tensor: the laws below are written once for both."""


def _sqrt(value: Scalar) -> Scalar:
    return torch.sqrt(value) if isinstance(value, torch.Tensor) else math.sqrt(value)


def sgd_law(h: Scalar, beta: float) -> Scalar:
    """Δα of plain hypergradient descent."""
    return beta * h


def sgdn_law(h: Scalar, beta: float, buffer: Scalar, momentum: float) -> tuple[Scalar, Scalar]:
    """(Δα, new buffer) of Nesterov momentum on α; the buffer starts at 0, so ``B_2 = h_2``."""
    buffer = momentum * buffer + h
    return beta * (h + momentum * buffer), buffer


def adam_law(h: Scalar, beta: float, m: Scalar, v: Scalar, count: Scalar,
             betas: tuple[float, float], eps: float) -> tuple[Scalar, Scalar, Scalar]:
    """(Δα, new M, new V) of Adam on α at hypergradient update number ``count`` (1-based)."""
    beta1, beta2 = betas
    m = beta1 * m + (1 - beta1) * h
    v = beta2 * v + (1 - beta2) * h * h
    m_hat = m / (1 - beta1**count)
    v_hat = v / (1 - beta2**count)
    return beta * m_hat / (_sqrt(v_hat) + eps), m, v


class HypergradientController:
    """α driven by the hypergradient; see the module docstring for the laws.

    α may go negative (as in the paper) unless ``lr_bounds`` is set; a non-finite
    hypergradient leaves α unchanged.

    α and the lr-optimizer state are 0-dim float64 tensors on the params' device, computed
    without a host sync (a finite check selects with ``torch.where``), so a step never waits
    for the device and ``torch.compile`` traces it whole; ``telemetry()`` reads them when asked.
    Group scalars kept (in ``state_dict()``): ``hypergradient`` (last h), ``hd_steps`` (steps
    seen, an int), ``hd_updates`` (k_h), ``hd_buffer`` (B), ``hd_exp_avg`` (M), ``hd_exp_avg_sq`` (V).
    """

    name = "hypergradient"
    needs_previous_direction = True
    needs_loss = False
    device_lr = True

    def __init__(self, lr_optimizer: str = "sgd") -> None:
        if lr_optimizer not in LR_OPTIMIZERS:
            raise ValueError(f"Unknown lr optimizer {lr_optimizer!r}; valid: {', '.join(LR_OPTIMIZERS)}")
        self.lr_optimizer = lr_optimizer
        self.defaults: dict[str, Any] = {"hypergrad_lr": 1e-3, "lr_bounds": None, "multiplicative": False}
        if lr_optimizer == "sgdn":
            self.defaults["hypergrad_momentum"] = 0.9
        if lr_optimizer == "adam":
            self.defaults["hypergrad_betas"] = (0.9, 0.999)
            self.defaults["hypergrad_eps"] = 1e-8

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Scalar:
        """α_t from ``group["lr"]`` (α_{t-1}, a device scalar) and the step's hypergradient."""
        group["hd_steps"] = group.get("hd_steps", 0) + 1
        h, lr = signals.hypergradient, group["lr"]
        group["hypergradient"] = 0.0 if h is None else h
        if h is None or group["hypergrad_lr"] == 0.0:
            return lr
        u = h.to(torch.float64)
        if isinstance(signals.direction_scale, torch.Tensor) or signals.direction_scale != 1.0:
            u = u / signals.direction_scale  # HDM's ‖g‖‖d‖ (a division by 1.0 would be an op per step for nothing)
        finite = torch.isfinite(u)  # overflowing gradients (or ‖d‖ = 0): no information about the step size
        change = self._change(group, torch.where(finite, u, 0.0), finite)
        alpha = torch.where(finite, lr * (1 + change) if group["multiplicative"] else lr + change, lr)
        if group["lr_bounds"] is not None:
            low, high = group["lr_bounds"]
            alpha = alpha.clamp(low, high)
        return alpha

    def _change(self, group: Group, h: torch.Tensor, finite: torch.Tensor) -> torch.Tensor:
        """Δα, and the lr optimizer's new state (kept where ``finite`` is False)."""
        beta = group["hypergrad_lr"]
        if self.lr_optimizer == "sgd":
            return sgd_law(h, beta)
        zero = torch.zeros((), dtype=torch.float64, device=h.device)
        if self.lr_optimizer == "sgdn":
            buffer = _scalar(group.get("hd_buffer", zero), h)
            change, new_buffer = sgdn_law(h, beta, buffer, group["hypergrad_momentum"])
            group["hd_buffer"] = torch.where(finite, new_buffer, buffer)
            return change
        count = _scalar(group.get("hd_updates", zero), h) + finite.to(torch.float64)
        m, v = _scalar(group.get("hd_exp_avg", zero), h), _scalar(group.get("hd_exp_avg_sq", zero), h)
        change, new_m, new_v = adam_law(h, beta, m, v, count, tuple(group["hypergrad_betas"]), group["hypergrad_eps"])
        group["hd_updates"] = count
        group["hd_exp_avg"], group["hd_exp_avg_sq"] = torch.where(finite, new_m, m), torch.where(finite, new_v, v)
        return change

    def telemetry(self, group: Group) -> dict[str, float]:
        keys = ("hypergradient", "hd_buffer", "hd_exp_avg", "hd_exp_avg_sq")
        return {key: float(group[key]) for key in keys if key in group}


def _scalar(value: Scalar, like: torch.Tensor) -> torch.Tensor:
    """``value`` as a float64 0-dim tensor on ``like``'s device (state saved as floats, or on another device)."""
    if isinstance(value, torch.Tensor) and value.device == like.device and value.dtype == torch.float64:
        return value
    return torch.as_tensor(value, dtype=torch.float64).to(like.device)


def hypergradient_terms(pairs: list[tuple[torch.Tensor, torch.Tensor]],
                        normalise: bool) -> tuple[torch.Tensor, Scalar]:
    """(h, scale) from (g_t, d_{t-1}) pairs as device tensors: scale is ‖g‖‖d‖ for HDM, else 1.

    The reference reduction; each rule's ``fused_direction_dots`` computes the same sums on its fused path.
    """
    # Accumulate in float32 at least, so bfloat16 params still give a usable h.
    dtype = torch.promote_types(pairs[0][0].dtype, torch.float32)
    device = pairs[0][0].device  # a group may span devices: each term crosses to the first one

    def total(terms: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([term.to(device) for term in terms]).sum()

    dots = total([torch.sum(g.to(dtype) * d.to(dtype)) for g, d in pairs])
    if not normalise:
        return dots, 1.0
    g_norm_sq = total([torch.sum(g.to(dtype) ** 2) for g, _ in pairs])
    d_norm_sq = total([torch.sum(d.to(dtype) ** 2) for _, d in pairs])
    return dots, torch.sqrt(g_norm_sq.double()) * torch.sqrt(d_norm_sq.double())


CONTROLLERS = {"hypergradient": HypergradientController}
"""The names this module serves (collected by :mod:`gradretention.optim.controllers`)."""
