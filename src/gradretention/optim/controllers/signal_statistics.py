"""Running statistics of a controller's scalar signal: its RMS, its mean, and a z-test of that mean.

The log-α laws (:mod:`.log_rprop`, :mod:`.log_rms_hypergradient`) read one scalar per step, the
cosine ``u_t = cos(g_t, d_{t-1})``. Late in training it is mostly minibatch noise: its mean sits
within a standard error of 0 while its sign still flips one way slightly more often than the other.
These helpers keep exponential moving averages (weight ρ = ``signal_smoothing``) of the signal x_t
and of x_t², bias-corrected as in Adam (Kingma & Ba, ICLR 2015), over the n steps that had a signal:

    m_t = ρ m_{t-1} + (1 − ρ) x_t,      q_t = ρ q_{t-1} + (1 − ρ) x_t²
    m̂_t = m_t / (1 − ρⁿ),               q̂_t = q_t / (1 − ρⁿ)             (RMS: √q̂_t)

and a significance test of the mean (a dead zone): the EMA is a weighted mean with Kish's
effective sample size ``n_eff = (Σw)²/Σw² = (1 − ρⁿ)²(1 + ρ) / ((1 − ρ)(1 − ρ²ⁿ))`` (1 at n = 1,
(1 + ρ)/(1 − ρ) as n → ∞), so with the unbiased weighted variance its standard error is

    se_t² = (q̂_t − m̂_t²) / (n_eff − 1),        significant ⇔ |m̂_t| > k · se_t   (never at n = 1)

k = ``significance``. Successive cosines are not independent (they share a direction), so se_t is
the i.i.d. approximation: the test is a noise gate, not a calibrated p-value. The idea of testing
the running mean of successive-gradient inner products for stationarity is Pflug's (1983, "On the
determination of the step size in stochastic quasigradient methods") and Chee & Toulis's (AISTATS
2018, "Convergence diagnostics for stochastic gradient descent with constant learning rate"); Lang,
Zhang & Xiao (NeurIPS 2019, "Using Statistics to Automate Stochastic Optimization") gate lr changes
on such a test with k standard errors.

State (float64 device scalars, and a host int, in the group so they round-trip through
``state_dict()``): ``signal_mean`` (m), ``signal_square`` (q), ``signal_steps`` (n).
"""

from __future__ import annotations

import torch
from torch import Tensor

from gradretention.optim.base import Group
from gradretention.optim.controllers.hypergradient import _scalar


def update_signal_moments(group: Group, x: Tensor) -> tuple[Tensor, Tensor]:
    """(m̂_t, q̂_t) after folding ``x`` (a float64 device scalar) into the group's moving averages."""
    rho = group["signal_smoothing"]
    steps = group.get("signal_steps", 0) + 1
    mean = rho * _scalar(group.get("signal_mean", 0.0), x) + (1 - rho) * x
    square = rho * _scalar(group.get("signal_square", 0.0), x) + (1 - rho) * x * x
    group["signal_mean"], group["signal_square"], group["signal_steps"] = mean, square, steps
    weight = 1 - rho**steps
    return mean / weight, square / weight


def effective_sample_size(rho: float, steps: int) -> float:
    """Kish's n_eff of an EMA with weight ρ over ``steps`` samples: (Σw)²/Σw²."""
    if steps <= 1 or rho == 0.0:
        return float(min(steps, 1))
    return (1 - rho**steps) ** 2 * (1 + rho) / ((1 - rho) * (1 - rho ** (2 * steps)))


def significant_mean(group: Group, mean: Tensor, square: Tensor) -> Tensor:
    """1.0 where |m̂| > k·se (k = ``significance``), else 0.0, as a float64 device scalar (no host read)."""
    n_eff = effective_sample_size(group["signal_smoothing"], group["signal_steps"])
    if n_eff <= 1.0:  # one sample (or ρ = 0): no variance estimate, nothing is significant
        return torch.zeros_like(mean)
    variance = (square - mean * mean).clamp(min=0.0)
    threshold = group["significance"] * torch.sqrt(variance / (n_eff - 1))
    return (mean.abs() > threshold).to(torch.float64)


def rms_normalised(x: Tensor, square: Tensor) -> Tensor:
    """x / √q̂ (0 where q̂ = 0: a signal that has always been 0 carries no information)."""
    rms = torch.sqrt(square)
    return torch.where(rms > 0, x / torch.where(rms > 0, rms, 1.0), 0.0)
