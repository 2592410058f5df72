"""The compiled kernels: the reference maths as plain torch functions, one fused pass each.

Each public function packs its arguments and calls :func:`gradretention.optim.compiled.run`,
which compiles the private twin once (``torch.compile``, Inductor) and returns None when
it cannot; the caller then takes its eager path. Scalars that change from step to step
arrive as 0-dim (or per-tensor 1-D) tensors: a Python float would be baked into the code
and recompile at every new value. Flags (``decayed``, ``nesterov``, …) are Python bools:
one compiled variant per combination, chosen once per group.

RescaledSGD's and EnhancedSGD's kernels live in :mod:`.compiled_retention` and
:mod:`.compiled_enhanced`. The kernels keep each rule's op order, so the elementwise results equal the reference
loop's to within a few float32 ulps (eager uses fused multiply-adds in ``add(…, alpha=)``
and ``addcmul``; Inductor compiles with ``-ffp-contract=off``); reductions sum in another
order. ``tests/optim/test_compiled.py`` holds every kernel to its reference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradretention.optim.compiled import run

Group = dict[str, Any]


def scalar_like(value: float | Tensor, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor of ``like``'s dtype and device: a kernel input, not a constant."""
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def _adam_direction_dots(grads: list[Tensor], params: list[Tensor], exp_avgs: list[Tensor],
                         exp_avg_sqs: list[Tensor], eps_scaled: Tensor, scales: Tensor,
                         weight_decay: Tensor, decayed: bool) -> Tensor:
    terms = []
    for index, (grad, param, m, v) in enumerate(zip(grads, params, exp_avgs, exp_avg_sqs)):
        effective = grad + weight_decay * param if decayed else grad
        terms.append((effective * m / (v.sqrt() + eps_scaled[index])).sum(dtype=scales.dtype) * scales[index])
    return torch.stack(terms).sum()


def adam_direction_dots(grads: list[Tensor], params: list[Tensor], states: list[dict[str, Any]],
                        eps_scaled: list[float], scales: list[float], weight_decay: float) -> Tensor | None:
    """``Σ_i c_i Σ (g_i + wd·θ_i)·m_i/(√v_i + ε_i)`` in one pass (``c_i = √c2/c1``, ``ε_i = ε√c2``)."""
    accumulate = torch.float64 if params[0].dtype == torch.float64 else torch.float32
    device = params[0].device
    return run("adam_direction_dots", _adam_direction_dots, grads, params,
               [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
               torch.tensor(eps_scaled, dtype=params[0].dtype, device=device),
               torch.tensor(scales, dtype=accumulate, device=device),
               torch.tensor(weight_decay, dtype=params[0].dtype, device=device), weight_decay != 0)


# --- Base-rule updates with the direction kept for the next hypergradient (rules.py's maths). ---


def _sgd_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], directions: list[Tensor],
                alpha: Tensor, momentum: Tensor, damped: Tensor, weight_decay: Tensor, decayed: bool,
                heavy_ball: bool, nesterov: bool, keep: bool) -> Tensor:
    for index, (param, grad) in enumerate(zip(params, grads)):
        effective = grad + weight_decay * param if decayed else grad
        direction = effective
        if heavy_ball:
            buffer = buffers[index]
            buffer.mul_(momentum).add_(effective * damped)
            direction = effective + momentum * buffer if nesterov else buffer
        param.sub_(alpha * direction)
        if keep:
            directions[index].copy_(direction)
    return alpha


def _adagrad_update(params: list[Tensor], grads: list[Tensor], sums: list[Tensor], directions: list[Tensor],
                    alpha: Tensor, eps: Tensor, decays: Tensor, weight_decay: Tensor, decayed: bool,
                    keep: bool) -> Tensor:
    for index, (param, grad) in enumerate(zip(params, grads)):
        effective = grad + weight_decay * param if decayed else grad
        total = sums[index]
        total.addcmul_(effective, effective)
        direction = effective / (total.sqrt() + eps) / decays[index]
        param.sub_(alpha * direction)
        if keep:
            directions[index].copy_(direction)
    return alpha


def _rmsprop_update(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor], grad_avgs: list[Tensor],
                    buffers: list[Tensor], directions: list[Tensor], alpha: Tensor, smoothing: Tensor, eps: Tensor,
                    momentum: Tensor, weight_decay: Tensor, decayed: bool, centered: bool, with_momentum: bool,
                    keep: bool) -> Tensor:
    for index, (param, grad) in enumerate(zip(params, grads)):
        effective = grad + weight_decay * param if decayed else grad
        square_avg = square_avgs[index]
        square_avg.mul_(smoothing).add_(effective * effective * (1 - smoothing))
        if centered:
            grad_avg = grad_avgs[index]
            grad_avg.lerp_(effective, 1 - smoothing)
            average = (square_avg - grad_avg * grad_avg).sqrt() + eps
        else:
            average = square_avg.sqrt() + eps
        if with_momentum:
            buffer = buffers[index]
            buffer.mul_(momentum).add_(effective / average)
            direction = buffer
        else:
            direction = effective / average
        param.sub_(alpha * direction)
        if keep:
            directions[index].copy_(direction)
    return alpha


UPDATABLE_RULES = ("sgd", "sgdn", "adagrad", "rmsprop")


def rule_update(rule_name: str, params: list[Tensor], states: list[dict[str, Any]], group: Group,
                alpha: float | Tensor, keep: bool) -> bool:
    """θ ← θ − α·d_t for every param with the rule's maths in one pass, ``d_t`` kept with ``keep``.

    Runs only once the rule's state exists (the first step allocates it on the eager path)
    and returns False otherwise, or when the kernel cannot be compiled here (nothing was
    written then). Adam is not here: torch's fused Adam already makes one pass.
    """
    if rule_name not in UPDATABLE_RULES:
        return False
    if rule_name in ("sgd", "sgdn"):
        wanted_keys: tuple[str, ...] = ("momentum_buffer",) if group["momentum"] != 0 else ()
    else:
        wanted_keys = ("sum",) if rule_name == "adagrad" else ("square_avg",)
    if keep:
        wanted_keys = (*wanted_keys, "previous_direction")
    if not all(state.get(key) is not None for state in states for key in wanted_keys):
        return False
    like = params[0]
    grads = [p.grad for p in params]
    directions = [s["previous_direction"] for s in states] if keep else []
    weight_decay = group["weight_decay"]
    common = (scalar_like(alpha, like),)
    if rule_name in ("sgd", "sgdn"):
        momentum = group["momentum"]
        buffers = [s["momentum_buffer"] for s in states] if momentum != 0 else []
        done = run(f"{rule_name}_update", _sgd_update, params, grads, buffers, directions, *common,
                   scalar_like(momentum, like), scalar_like(1 - group["dampening"], like), scalar_like(weight_decay, like),
                   weight_decay != 0, momentum != 0, bool(group["nesterov"]) and momentum != 0, keep)
        return done is not None
    if rule_name == "adagrad":
        for state in states:
            state["step"] += 1
        decays = [1 + (s["step"] - 1) * group["lr_decay"] for s in states]
        done = run("adagrad_update", _adagrad_update, params, grads, [s["sum"] for s in states], directions,
                   *common, scalar_like(group["eps"], like), torch.tensor(decays, dtype=like.dtype, device=like.device),
                   scalar_like(weight_decay, like), weight_decay != 0, keep)
        if done is None:
            for state in states:
                state["step"] -= 1
        return done is not None
    for state in states:
        state["step"] += 1
    centered, with_momentum = bool(group["centered"]), group["momentum"] > 0
    done = run("rmsprop_update", _rmsprop_update, params, grads, [s["square_avg"] for s in states],
               [s["grad_avg"] for s in states] if centered else [],
               [s["momentum_buffer"] for s in states] if with_momentum else [], directions, *common,
               scalar_like(group["alpha"], like), scalar_like(group["eps"], like), scalar_like(group["momentum"], like),
               scalar_like(weight_decay, like), weight_decay != 0, centered, with_momentum, keep)
    if done is None:
        for state in states:
            state["step"] -= 1
    return done is not None


def _sums_and_squares(flats: list[Tensor]) -> Tensor:
    return torch.stack([torch.stack([flat.sum(), (flat * flat).sum()]) for flat in flats])


def sums_and_squares(flats: list[Tensor]) -> Tensor | None:
    """Per tensor ``[Σg, Σg²]`` (n × 2) from one read of each; None when not compiled here."""
    return run("sums_and_squares", _sums_and_squares, flats)
