"""Adam: reference loop, fused path and compiled twin, side by side (torch.optim.Adam semantics).

The reference loop is :meth:`AdamRule.direction`; the fused path updates with torch's
``_fused_adam_`` (:func:`fused_adam_update`) and rebuilds d_{t-1} from the moments for the
hypergradient chunk by chunk (:func:`adam_direction_dots`); where kernels run (``compiled``),
the hypergradient is one pass over g, m, v — a C++ loop on the CPU
(:func:`gradretention.optim.native.adam_direction_dots`), else the Inductor twin
(:func:`_adam_direction_dots_kernel`) — so Adam-HD needs no extra buffer. Tests hold all of
them equal in float64.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.base import Group, State


class AdamRule:
    """Adam (torch.optim.Adam semantics, ε added after the bias-corrected square root).

    ``m_t = β1 m + (1−β1) g``; ``v_t = β2 v + (1−β2) g²``;
    ``d_t = (m_t/(1−β1^t)) / (√(v_t/(1−β2^t)) + ε)``. State: ``exp_avg``, ``exp_avg_sq``, ``step``.
    """

    name = "adam"
    defaults = {"betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0.0}

    def direction(self, param: Tensor, grad: Tensor, state: State, group: Group) -> Tensor:
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        beta1, beta2 = group["betas"]
        exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
        state["step"] += 1
        exp_avg.lerp_(grad, 1 - beta1)
        exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        return _adam_direction(exp_avg, exp_avg_sq, state["step"], beta1, beta2, group["eps"])

    def previous_direction(self, state: State, group: Group) -> Tensor | None:
        if state.get("step", 0) == 0:
            return None
        beta1, beta2 = group["betas"]
        return _adam_direction(state["exp_avg"], state["exp_avg_sq"], state["step"], beta1, beta2, group["eps"])

    def rebuilds_previous_direction(self, group: Group) -> bool:
        return True

    fused = True

    def fused_update(self, params: list[Tensor], grads: list[Tensor], states: list[State], group: Group,
                     alpha: float | Tensor, keep: bool) -> None:
        fused_adam_update(params, grads, states, group, alpha)

    def fused_direction_dots(self, grads: list[Tensor], params: list[Tensor], states: list[State], group: Group,
                             usable: list[bool], use_compiled: bool) -> Tensor | None:
        return adam_direction_dots(grads, params, states, group, usable, use_compiled)

    def fused_direction_terms(self, grads: list[Tensor], params: list[Tensor], states: list[State], group: Group,
                              usable: list[bool], use_compiled: bool) -> tuple[Tensor, Tensor, Tensor] | None:
        return adam_direction_terms(grads, params, states, group, usable) if use_compiled else None

    def compiled_update(self, params: list[Tensor], states: list[State], group: Group, alpha: float | Tensor,
                        keep: bool) -> bool:
        return False  # torch's fused Adam already makes one pass


def _adam_direction(exp_avg: Tensor, exp_avg_sq: Tensor, step: int, beta1: float, beta2: float, eps: float) -> Tensor:
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    denominator = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    return (exp_avg / bias_correction1).div_(denominator)


def adam_direction_dots(grads: list[Tensor], params: list[Tensor], states: list[State],
                        group: Group, usable: list[bool], use_compiled: bool = False) -> Tensor | None:
    """Σ⟨g + wd·θ, d_{t-1}⟩ with Adam's d_{t-1} rebuilt block by block from its moments.

    ``d = (m/c1)/(√v/c2 + ε) = (c2/c1)·m/(√v + ε·c2)``: one sqrt, one add and one divide
    into a reused scratch block per chunk, then a dot — the block never leaves the cache.
    With ``use_compiled`` the whole sum is one Inductor kernel (:func:`_adam_direction_dots_kernel`), one pass.
    """
    beta1, beta2 = group["betas"]
    eps, weight_decay = group["eps"], group["weight_decay"]
    if use_compiled:
        chosen = [i for i, use in enumerate(usable) if use and grads[i].numel() > 0]
        if not chosen:
            return None
        dots = _compiled_adam_direction_dots([grads[i] for i in chosen], [params[i] for i in chosen],
                                             [states[i] for i in chosen], _direction_constants(group, states, chosen),
                                             weight_decay)
        if dots is not None:
            return dots
    terms = []
    for grad, param, state, use in zip(grads, params, states, usable):
        if not use or grad.numel() == 0:
            continue
        step = state["step"]
        correction1, correction2_sqrt = 1 - beta1**step, math.sqrt(1 - beta2**step)
        g, m, v, p = grad.view(-1), state["exp_avg"].view(-1), state["exp_avg_sq"].view(-1), param.view(-1)
        parts = []
        for start in range(0, g.numel(), kernels.CHUNK):
            part = slice(start, start + kernels.CHUNK)
            block = kernels.scratch(g, min(kernels.CHUNK, g.numel() - start))
            torch.sqrt(v[part], out=block).add_(eps * correction2_sqrt)
            torch.div(m[part], block, out=block)
            parts.append(torch.dot(g[part], block))
            if weight_decay != 0:
                parts.append(weight_decay * torch.dot(p[part], block))
        terms.append(torch.stack(parts).sum() * (correction2_sqrt / correction1))
    return torch.stack(terms).sum() if terms else None


def _direction_constants(group: Group, states: list[State], chosen: list[int]) -> list[tuple[float, float]]:
    """Per chosen param ``(ε_i, c_i) = (ε√c2, √c2/c1)`` at its step: ``d = c_i·m/(√v + ε_i)``."""
    beta1, beta2 = group["betas"]
    return [(group["eps"] * math.sqrt(1 - beta2**step), math.sqrt(1 - beta2**step) / (1 - beta1**step))
            for step in (states[i]["step"] for i in chosen)]


def adam_direction_terms(grads: list[Tensor], params: list[Tensor], states: list[State], group: Group,
                         usable: list[bool]) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(h, Σ‖g + wd·θ‖², Σ‖d_{t-1}‖²)`` in one pass over g, m, v (:func:`gradretention.optim.native.adam_direction_terms`).

    What HDM and the log-α controllers need, without rebuilding each d_{t-1} as a tensor. None
    when nothing is usable or the C++ loop does not run here (the optimizer then reduces them itself).
    """
    from gradretention.optim import native  # noqa: PLC0415 (builds lazily, on first use)

    chosen = [i for i, use in enumerate(usable) if use and grads[i].numel() > 0]
    if not chosen:
        return None
    terms = native.adam_direction_terms(
        [grads[i] for i in chosen], [params[i] for i in chosen], [states[i]["exp_avg"] for i in chosen],
        [states[i]["exp_avg_sq"] for i in chosen], _direction_constants(group, states, chosen), group["weight_decay"])
    if terms is None:
        return None
    kernels.CALLS["adam_direction_terms"] += 1
    h, grad_squares, direction_squares = terms.unbind()
    return h, grad_squares, direction_squares


def fused_adam_update(params: list[Tensor], grads: list[Tensor], states: list[State], group: Group,
                alpha: float | Tensor) -> None:
    """θ ← θ − α·m̂/(√v̂ + ε) with torch's fused Adam kernel (coupled L2 as torch.optim.Adam).

    α may be a float64 0-dim tensor on the params' device (the kernel's tensor-lr overload; same bits).
    """
    for param, state in zip(params, states):
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
    # The kernel reads the step count from float32 tensors; ours stay plain ints in the state. One
    # tensor per distinct count (the kernel only reads it): a tensor per param cost ~3 µs each.
    counts = {state["step"] for state in states}
    shared = {count: torch.tensor(float(count), device=params[0].device) for count in counts}
    steps = [shared[state["step"]] for state in states]
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                       steps, lr=alpha, beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                       eps=group["eps"], amsgrad=False, maximize=False)


def _adam_direction_dots_kernel(grads: list[Tensor], params: list[Tensor], exp_avgs: list[Tensor],
                                exp_avg_sqs: list[Tensor], constants: Tensor, weight_decay: Tensor,
                                decayed: bool) -> Tensor:
    eps_scaled = constants[:, 0].to(params[0].dtype)
    terms = []
    for index, (grad, param, m, v) in enumerate(zip(grads, params, exp_avgs, exp_avg_sqs)):
        effective = grad + weight_decay * param if decayed else grad
        terms.append((effective * m / (v.sqrt() + eps_scaled[index])).sum(dtype=constants.dtype)
                     * constants[index, 1])
    return torch.stack(terms).sum()


def _compiled_adam_direction_dots(grads: list[Tensor], params: list[Tensor], states: list[State],
                                  constants: list[tuple[float, float]], weight_decay: float) -> Tensor | None:
    """``Σ_i c_i Σ (g_i + wd·θ_i)·m_i/(√v_i + ε_i)`` in one pass; ``constants[i] = (ε_i, c_i)`` with
    ``ε_i = ε√c2`` and ``c_i = √c2/c1``: the C++ loop of :mod:`~gradretention.optim.native`
    on the CPU, else the Inductor kernel (its constants in one host-to-tensor copy per step)."""
    from gradretention.optim import native  # noqa: PLC0415 (builds lazily, on first use)

    exp_avgs, exp_avg_sqs = [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states]
    dots = native.adam_direction_dots(grads, params, exp_avgs, exp_avg_sqs, constants, weight_decay)
    if dots is not None:  # the C++ loop reads g, m, v faster than Inductor's reduction (see native)
        kernels.CALLS["adam_direction_dots"] += 1
        return dots
    accumulate = torch.float64 if params[0].dtype == torch.float64 else torch.float32
    device = params[0].device
    return kernels.run("adam_direction_dots", _adam_direction_dots_kernel, grads, params,
                       exp_avgs, exp_avg_sqs, torch.tensor(constants, dtype=accumulate, device=device),
                       torch.tensor(weight_decay, dtype=params[0].dtype, device=device), weight_decay != 0)


RULES = {"adam": AdamRule}
"""The names this module serves (collected by :mod:`gradretention.optim.rules`)."""
