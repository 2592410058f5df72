"""The gradient-variance controller: rising gradient noise lowers α, falling noise raises it.

Per param group, at step t (specs/algorithms.md §2.2)::

    v_t = ρ v_{t-1} + (1−ρ) Var(g_t)                      (v_1 = Var(g_1))
    r_t = clamp((v_t − v_{t-1}) / (v_{t-1} + ε), −1, 1)   (r_1 = 0, ε = 1e-12)
    α_t = clamp(α_{t-1} (1 − κ r_t), α_0·min_factor, α_0·max_factor)

``Var`` is the unbiased sample variance (``torch.var``) over *all* gradient entries of the
group; ρ = ``variance_smoothing`` (0.9), κ = ``lr_scaling`` (0.1). It needs no
parameter-sized state: the variance is reduced on the device and crosses to the host as
one scalar per group and step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.base import Group, Rule, StepSignals

RELATIVE_EPS = 1e-12
"""ε in the relative change r_t: keeps r finite when the previous variance is zero."""


def gradient_variance(grads: list[Tensor], use_compiled: bool = False) -> Tensor:
    """Unbiased variance over all entries of ``grads``, as a 0-dim tensor on the first grad's device.

    Per-tensor means and variances are combined exactly (Chan et al.'s pairwise formula),
    so no gradient is concatenated or copied to the host. Fewer than two entries in all
    have no spread: the result is then 0, where ``torch.var`` would give NaN.

    Args:
        grads: gradient tensors of any shapes; bfloat16/float16 are reduced in float32.
        use_compiled: where the group's kernels run: Σg and Σg² in one read (:func:`sums_and_squares`).

    Returns:
        ``Var`` of the concatenated, flattened ``grads`` (correction 1).
    """
    grads = [g for g in grads if g.numel() > 0]
    if _moments_apply(grads):
        # Σg and Σg² per tensor: ~20× faster than torch.var_mean's Welford pass on the CPU.
        return gradient_moments(grads, use_compiled)[1]
    dtype = torch.promote_types(grads[0].dtype, torch.float32) if grads else torch.float32
    device = grads[0].device if grads else None
    total = sum(g.numel() for g in grads)
    if total < 2:
        return torch.zeros((), dtype=dtype, device=device)
    # Population variance and mean per tensor; one fused kernel each.
    parts = [torch.var_mean(g.to(dtype), correction=0) for g in grads]
    mean = torch.stack([m.to(device) * (g.numel() / total) for (_, m), g in zip(parts, grads)]).sum()
    spread = torch.stack([(v.to(device) + (m.to(device) - mean).square()) * g.numel()
                          for (v, m), g in zip(parts, grads)]).sum()
    return spread / (total - 1)


def _moments_apply(grads: list[Tensor]) -> bool:
    """Dense, contiguous float32/float64 grads of one dtype and device, at least two entries."""
    if sum(g.numel() for g in grads) < 2:
        return False
    first = grads[0]
    return all(g.dtype == first.dtype and g.device == first.device and g.is_contiguous() and not g.is_sparse
               and g.dtype in (torch.float32, torch.float64) for g in grads)


def _sums_and_squares(flats: list[Tensor]) -> Tensor:
    return torch.stack([torch.stack([flat.sum(), (flat * flat).sum()]) for flat in flats])


def sums_and_squares(flats: list[Tensor]) -> Tensor | None:
    """Per tensor ``[Σg, Σg²]`` (n × 2) from one read of each: the C++ loop of
    :mod:`gradretention.optim.native` on the CPU, else Inductor's kernel; None when neither runs here."""
    from gradretention.optim import native  # noqa: PLC0415 (builds lazily, on first use)

    found = native.sums_and_squares(flats)
    if found is not None:  # Inductor's two-output reduction is slower than eager sum + dot here
        kernels.CALLS["sums_and_squares"] += 1
        return found
    return kernels.run("sums_and_squares", _sums_and_squares, flats)


def gradient_moments(grads: list[Tensor], use_compiled: bool = False) -> tuple[Tensor, Tensor]:
    """Per-tensor means and the unbiased variance over all entries, as device tensors.

    Σg and Σg² per tensor (the second read hits the cache), combined exactly as Chan et
    al.'s pairwise formula: ``Σ_i Σ(g − mean_i)² + Σ_i n_i (mean_i − mean)²``. On the CPU this
    is ~20× faster than ``torch.var_mean`` (Welford); within a tensor it loses precision
    only when ``|mean_i|`` exceeds the spread by orders of magnitude. Fewer than two entries
    give 0, as :func:`~gradretention.optim.controllers.variance.gradient_variance` does.

    Args:
        grads: non-empty, contiguous tensors of one float dtype on one device.
        use_compiled: take Σg and Σg² in one compiled pass (:func:`sums_and_squares`).
    """
    flats = [grad.view(-1) for grad in grads]
    found = sums_and_squares(flats) if use_compiled else None
    if found is not None:
        sums_t, squares_t = found.unbind(1)
    else:
        sums, squares = [], []
        for flat in flats:
            sums.append(flat.sum())
            squares.append(torch.dot(flat, flat))
        sums_t, squares_t = torch.stack(sums), torch.stack(squares)
    counts = torch.tensor([flat.numel() for flat in flats], dtype=sums_t.dtype, device=sums_t.device)
    means = sums_t / counts
    total = sum(flat.numel() for flat in flats)
    if total < 2:
        return means, torch.zeros((), dtype=sums_t.dtype, device=sums_t.device)
    within = (squares_t - sums_t * means).clamp_min_(0)
    between = counts * (means - sums_t.sum() / total).square()
    return means, (within.sum() + between.sum()) / (total - 1)

@dataclass(frozen=True)
class VarianceStep:
    """One step of the law: the new smoothed variance, its relative change and α (floats or 0-dim tensors)."""

    variance: Any
    change: Any
    lr: Any


def _clamp(value: Any, low: Any, high: Any) -> Any:
    if isinstance(value, Tensor):
        return torch.clamp(value, low, high)
    return min(max(value, low), high)


def variance_law(variance: Any, previous: Any | None, lr: Any, lr0: Any, smoothing: float,
                 scaling: float, min_factor: float, max_factor: float) -> VarianceStep:
    """The §2.2 update for one group; ``previous`` is v_{t-1}, None at the first step.

    Written once for Python floats and for 0-dim tensors (the optimizer passes device
    tensors, so a step needs no host sync).

    Args:
        variance: Var(g_t) of this step.
        previous: v_{t-1}, or None at t = 1 (then v_1 = Var(g_1) and r_1 = 0).
        lr: α_{t-1} (as a scheduler may have left it in the group).
        lr0: α_0, the anchor of the bounds.
        smoothing: ρ; scaling: κ; min_factor, max_factor: the bounds relative to α_0.
    """
    if previous is None:
        smoothed, change = variance, torch.zeros_like(variance) if isinstance(variance, Tensor) else 0.0
    else:
        smoothed = smoothing * previous + (1 - smoothing) * variance
        change = _clamp((smoothed - previous) / (previous + RELATIVE_EPS), -1.0, 1.0)
    alpha = _clamp(lr * (1 - scaling * change), lr0 * min_factor, lr0 * max_factor)
    return VarianceStep(smoothed, change, alpha)


class VarianceController:
    """α scaled by the relative change of the smoothed gradient variance (see module docstring).

    Group scalars kept (in ``state_dict()``): ``grad_variance`` (v_t) and ``variance_change``
    (r_t), 0-dim float64 tensors on the params' device (no host sync per step; ``telemetry()``
    reads them when asked), and ``lr0`` (α_0, stored at the group's first step so the bounds
    are relative to it).

    .. note:: The bounds are anchored at α_0, the lr at the group's first step, so a torch
       LR scheduler composes with the controller but cannot take α below
       ``α_0·min_factor`` or above ``α_0·max_factor``. A non-finite gradient variance is
       propagated (α becomes NaN), so a diverged run shows as diverged.

    Example:
        >>> from gradretention.optim import ComposedOptimizer
        >>> opt = ComposedOptimizer(model.parameters(), rule="adam", controller="variance", lr=1e-3)
    """

    name = "variance"
    needs_previous_direction = False
    needs_loss = False
    device_lr = True

    def __init__(self) -> None:
        self.defaults: dict[str, Any] = {"variance_smoothing": 0.9, "lr_scaling": 0.1, "min_factor": 0.01,
                                         "max_factor": 10.0}

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Any:
        """α_t for ``group``; updates ``grad_variance``, ``variance_change`` and ``lr0`` in it."""
        lr = group["lr"]
        variance = gradient_variance(signals.grads, signals.compiled).to(device=lr.device, dtype=torch.float64)
        if "lr0" not in group:
            group["lr0"] = lr.clone()  # α_0, at the group's first step (a device scalar: no host read)
        previous = group.get("grad_variance")
        if previous is not None:
            previous = torch.as_tensor(previous, dtype=torch.float64).to(lr.device)
        step = variance_law(variance, previous, lr, group["lr0"], group["variance_smoothing"], group["lr_scaling"],
                            group["min_factor"], group["max_factor"])
        group["grad_variance"], group["variance_change"] = step.variance, step.change
        return step.lr

    def telemetry(self, group: Group) -> dict[str, float]:
        """v_t and r_t (α is reported by the optimizer as ``lr``)."""
        keys = ("grad_variance", "variance_change")
        return {key: float(group[key]) for key in keys if key in group}


CONTROLLERS = {"variance": VarianceController}
"""The names this module serves (collected by :mod:`gradretention.optim.controllers`)."""
