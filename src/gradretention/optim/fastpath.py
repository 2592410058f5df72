"""Fast paths of the composed optimizer: the same maths as the reference loop, fewer passes.

An optimizer step streams memory, so its cost is the bytes it moves. These paths reuse
torch's fused CPU/CUDA kernels for the parameter update (``_fused_adam_``, ``_fused_sgd_``)
and reduce the hypergradient ``h = Σ⟨g_t, d_{t-1}⟩`` in cache-sized chunks, so the
temporaries of rebuilding Adam's d_{t-1} never travel to DRAM. They are held equal to
the reference loop by ``tests/optim/test_fastpath.py`` (float32, rtol 1e-5).

Eligible: dense, contiguous params of one floating dtype on one device with their grads,
rules ``sgd``/``sgdn``/``adam``. Anything else takes the reference loop.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

Group = dict[str, Any]

CHUNK = 1 << 16
"""Elements per reduction chunk: 256 KiB of float32, so a chunk's temporaries stay in L2."""

FAST_RULES = ("sgd", "sgdn", "adam")


def eligible(rule_name: str, params: list[Tensor]) -> bool:
    """Whether the fused path can run this group (else the reference loop does)."""
    if rule_name not in FAST_RULES or not params:
        return False
    first = params[0]
    if first.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        return False
    return all(p.device == first.device and p.dtype == first.dtype and p.is_contiguous()
               and p.grad.is_contiguous() and not p.grad.is_sparse for p in params)


def stored_direction_dots(grads: list[Tensor], params: list[Tensor], directions: list[Tensor | None],
                          weight_decay: float) -> Tensor | None:
    """Σ⟨g + wd·θ, d⟩ over params with a stored d, as one 0-dim tensor (no host sync)."""
    terms = []
    for grad, param, direction in zip(grads, params, directions):
        if direction is None:
            continue
        term = torch.dot(grad.view(-1), direction.view(-1))
        if weight_decay != 0:
            term = term + weight_decay * torch.dot(param.view(-1), direction.view(-1))
        terms.append(term)
    return torch.stack(terms).sum() if terms else None


def adam_direction_dots(grads: list[Tensor], params: list[Tensor], states: list[dict[str, Any]],
                        group: Group, usable: list[bool]) -> Tensor | None:
    """Σ⟨g + wd·θ, d_{t-1}⟩ with Adam's d_{t-1} rebuilt chunk by chunk from its moments."""
    beta1, beta2 = group["betas"]
    eps, weight_decay = group["eps"], group["weight_decay"]
    terms = []
    for grad, param, state, use in zip(grads, params, states, usable):
        if not use:
            continue
        step = state["step"]
        correction1 = 1 - beta1**step
        correction2_sqrt = math.sqrt(1 - beta2**step)
        g, m, v, p = grad.view(-1), state["exp_avg"].view(-1), state["exp_avg_sq"].view(-1), param.view(-1)
        for start in range(0, g.numel(), CHUNK):
            part = slice(start, start + CHUNK)
            direction = v[part].sqrt().div_(correction2_sqrt).add_(eps)
            torch.div(m[part], direction, out=direction).div_(correction1)
            terms.append(torch.dot(g[part], direction))
            if weight_decay != 0:
                terms.append(weight_decay * torch.dot(p[part], direction))
    return torch.stack(terms).sum() if terms else None


def adam_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]], group: Group,
                alpha: float) -> None:
    """θ ← θ − α·m̂/(√v̂ + ε) with torch's fused Adam kernel (coupled L2 as torch.optim.Adam)."""
    for param, state in zip(params, states):
        if "exp_avg" not in state:
            state["step"] = 0
            state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
    # The kernel reads the step count from float32 tensors; ours stay plain ints in the state.
    steps = [torch.tensor(float(state["step"]), device=params[0].device) for state in states]
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                       steps, lr=alpha, beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                       eps=group["eps"], amsgrad=False, maximize=False)


def sgd_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]], group: Group,
               alpha: float, keep_direction: bool) -> None:
    """θ ← θ − α·d with d the SGD / heavy-ball / Nesterov direction (torch's fused SGD kernel).

    With ``keep_direction`` the Nesterov or plain direction is also written to
    ``previous_direction`` (heavy ball needs none: its buffer is the direction).
    """
    momentum, weight_decay = group["momentum"], group["weight_decay"]
    if momentum == 0:
        effective = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay != 0 else grads
        if keep_direction:
            _store_directions(states, effective)
        torch._foreach_add_(params, effective, alpha=-alpha)
        return
    first_step = "momentum_buffer" not in states[0]
    if first_step:
        for param, state in zip(params, states):
            state["momentum_buffer"] = torch.empty_like(param, memory_format=torch.preserve_format)
    buffers = [state["momentum_buffer"] for state in states]
    nesterov_directions = []
    if keep_direction and group["nesterov"]:
        for param, state in zip(params, states):
            if state.get("previous_direction") is None:
                state["previous_direction"] = torch.empty_like(param, memory_format=torch.preserve_format)
            nesterov_directions.append(state["previous_direction"])
        if weight_decay != 0:
            # d_t = g + wd·θ_{t-1} + μ b_t: the decay term needs θ before the update moves it.
            torch._foreach_copy_(nesterov_directions, grads)
            torch._foreach_add_(nesterov_directions, params, alpha=weight_decay)
    torch._fused_sgd_(params, grads, buffers, weight_decay=weight_decay, momentum=momentum, lr=alpha,
                      dampening=group["dampening"], nesterov=group["nesterov"], maximize=False,
                      is_first_step=first_step)
    if nesterov_directions:
        if weight_decay != 0:
            torch._foreach_add_(nesterov_directions, buffers, alpha=momentum)
        else:
            for grad, buffer, direction in zip(grads, buffers, nesterov_directions):
                torch.add(grad, buffer, alpha=momentum, out=direction)


def _store_directions(states: list[dict[str, Any]], directions: list[Tensor]) -> None:
    for state, direction in zip(states, directions):
        stored = state.get("previous_direction")
        if stored is None:
            state["previous_direction"] = direction.detach().clone(memory_format=torch.preserve_format)
        else:
            stored.copy_(direction)
