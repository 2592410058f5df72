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

from gradretention.optim import compiled_kernels

Group = dict[str, Any]

CHUNK = 1 << 20
"""Elements per reduction chunk (4 MiB of float32, one reused scratch block that stays in the
last-level cache). Measured at 10 M params on 2 cores: 1<<14 → 4.6×, 1<<16 → 2.8×,
1<<18 → 2.5×, 1<<20 → 2.5× fused Adam's time for Adam-HD: per-op overhead dominates small chunks."""

FAST_RULES = ("sgd", "sgdn", "adam")


EXACT_DTYPES = (torch.float32, torch.float64)
"""Param dtypes the fused kernels serve. Half precision takes the reference loop: torch's CPU
``_fused_sgd_`` half kernel is broken in torch 2.13 (after 20 bfloat16 steps its error against
float64 is 15× the reference loop's and reruns of one script disagree), and the hypergradient's
dot products would be accumulated in half precision."""


KERNEL_DEVICES = ("cpu", "cuda")
"""Device types with torch's fused Adam/SGD kernels (``meta`` and others take the reference loop)."""


def kernels_exact(param: Tensor) -> bool:
    """Whether torch's fused kernels may run a group whose params look like ``param``."""
    return param.dtype in EXACT_DTYPES and param.device.type in KERNEL_DEVICES


def eligible(rule_name: str, params: list[Tensor]) -> bool:
    """Whether the fused path can run this group (else the reference loop does)."""
    return rule_name in FAST_RULES and uniform_dense(params) and kernels_exact(params[0])


def uniform_dense(params: list[Tensor]) -> bool:
    """Non-empty, dense, contiguous params and grads of one floating dtype on one device."""
    if not params:
        return False
    first = params[0]
    if first.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        return False
    return all(p.device == first.device and p.dtype == first.dtype and p.is_contiguous()
               and p.grad.dtype == p.dtype and p.grad.is_contiguous() and not p.grad.is_sparse for p in params)


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
                        group: Group, usable: list[bool], use_compiled: bool = False) -> Tensor | None:
    """Σ⟨g + wd·θ, d_{t-1}⟩ with Adam's d_{t-1} rebuilt block by block from its moments.

    ``d = (m/c1)/(√v/c2 + ε) = (c2/c1)·m/(√v + ε·c2)``: one sqrt, one add and one divide
    into a reused scratch block per chunk, then a dot — the block never leaves the cache.
    With ``use_compiled`` the whole sum is one Inductor kernel (:mod:`.compiled`), one pass.
    """
    beta1, beta2 = group["betas"]
    eps, weight_decay = group["eps"], group["weight_decay"]
    if use_compiled:
        chosen = [i for i, use in enumerate(usable) if use and grads[i].numel() > 0]
        if not chosen:
            return None
        steps = [states[i]["step"] for i in chosen]
        dots = compiled_kernels.adam_direction_dots(
            [grads[i] for i in chosen], [params[i] for i in chosen], [states[i] for i in chosen],
            [eps * math.sqrt(1 - beta2**step) for step in steps],
            [math.sqrt(1 - beta2**step) / (1 - beta1**step) for step in steps], weight_decay)
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
        for start in range(0, g.numel(), CHUNK):
            part = slice(start, start + CHUNK)
            scratch = _scratch(g, min(CHUNK, g.numel() - start))
            torch.sqrt(v[part], out=scratch).add_(eps * correction2_sqrt)
            torch.div(m[part], scratch, out=scratch)
            parts.append(torch.dot(g[part], scratch))
            if weight_decay != 0:
                parts.append(weight_decay * torch.dot(p[part], scratch))
        terms.append(torch.stack(parts).sum() * (correction2_sqrt / correction1))
    return torch.stack(terms).sum() if terms else None


_SCRATCH: dict[tuple[torch.device, torch.dtype], Tensor] = {}


def _scratch(like: Tensor, size: int) -> Tensor:
    """A reused CHUNK-sized buffer per device and dtype (allocating per chunk costs page faults)."""
    key = (like.device, like.dtype)
    buffer = _SCRATCH.get(key)
    if buffer is None or buffer.numel() < size:
        buffer = _SCRATCH[key] = torch.empty(CHUNK, device=like.device, dtype=like.dtype)
    return buffer[:size]


def adam_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]], group: Group,
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
    # The kernel reads the step count from float32 tensors; ours stay plain ints in the state.
    steps = [torch.tensor(float(state["step"]), device=params[0].device) for state in states]
    beta1, beta2 = group["betas"]
    torch._fused_adam_(params, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
                       steps, lr=alpha, beta1=beta1, beta2=beta2, weight_decay=group["weight_decay"],
                       eps=group["eps"], amsgrad=False, maximize=False)


def sgd_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]], group: Group,
               alpha: float | Tensor, keep_direction: bool) -> None:
    """θ ← θ − α·d with d the SGD / heavy-ball / Nesterov direction (torch's fused SGD kernel).

    With ``keep_direction`` the Nesterov or plain direction is also written to
    ``previous_direction`` (heavy ball needs none: its buffer is the direction).
    """
    momentum, weight_decay = group["momentum"], group["weight_decay"]
    if momentum == 0:
        effective = torch._foreach_add(grads, params, alpha=weight_decay) if weight_decay != 0 else grads
        if keep_direction:
            _store_directions(states, effective)
        if isinstance(alpha, Tensor):
            for param, direction in zip(params, effective):  # a 0-dim factor rounds as alpha= does
                param.addcmul_(direction, -alpha)
        else:
            torch._foreach_add_(params, effective, alpha=-alpha)
        return
    if keep_direction and group["nesterov"] and weight_decay == 0:
        # Tensor by tensor, so d_t = g + μ b_t is written while g and b are still in cache.
        for param, grad, state in zip(params, grads, states):
            first_step = "momentum_buffer" not in state
            if first_step:
                state["momentum_buffer"] = torch.empty_like(param, memory_format=torch.preserve_format)
            if state.get("previous_direction") is None:
                state["previous_direction"] = torch.empty_like(param, memory_format=torch.preserve_format)
            torch._fused_sgd_([param], [grad], [state["momentum_buffer"]], weight_decay=0.0, momentum=momentum,
                              lr=alpha, dampening=group["dampening"], nesterov=True, maximize=False,
                              is_first_step=first_step)
            torch.add(grad, state["momentum_buffer"], alpha=momentum, out=state["previous_direction"])
        return
    # torch's kernel takes one is_first_step flag per call, and a param may get its first
    # gradient after the others have stepped: call it once for each kind of param.
    fresh = [i for i, state in enumerate(states) if "momentum_buffer" not in state]
    seasoned = [i for i, state in enumerate(states) if "momentum_buffer" in state]
    for index in fresh:
        states[index]["momentum_buffer"] = torch.empty_like(params[index], memory_format=torch.preserve_format)
    for indices, first_step in ((seasoned, False), (fresh, True)):
        if indices:
            _momentum_update([params[i] for i in indices], [grads[i] for i in indices],
                             [states[i] for i in indices], group, alpha, keep_direction, first_step)


def _momentum_update(params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]], group: Group,
                     alpha: float | Tensor, keep_direction: bool, first_step: bool) -> None:
    momentum, weight_decay = group["momentum"], group["weight_decay"]
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


# --- Pieces of the RescaledSGD and EnhancedSGD fast paths (retention.py, enhanced.py). ---

BLOCK = 1 << 20
"""Elements per block of a per-tensor temporary: 4 MiB of float32, so the temporary and the
matching slices of the state it is combined with stay in cache between the ops."""


def gradient_moments(grads: list[Tensor], use_compiled: bool = False) -> tuple[Tensor, Tensor]:
    """Per-tensor means and the unbiased variance over all entries, as device tensors.

    Σg and Σg² per tensor (the second read hits the cache), combined exactly as Chan et
    al.'s pairwise formula: ``Σ_i Σ(g − mean_i)² + Σ_i n_i (mean_i − mean)²``. On the CPU this
    is ~20× faster than ``torch.var_mean`` (Welford); within a tensor it loses precision
    only when ``|mean_i|`` exceeds the spread by orders of magnitude. Fewer than two entries
    give 0, as :func:`~gradretention.optim.controllers.variance.gradient_variance` does.

    Args:
        grads: non-empty, contiguous tensors of one float dtype on one device.
        use_compiled: take Σg and Σg² in one compiled pass (:mod:`.compiled_kernels`).
    """
    flats = [grad.view(-1) for grad in grads]
    found = compiled_kernels.sums_and_squares(flats) if use_compiled else None
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


def add_periodic_(target: Tensor, pool: Tensor, start: int, scale: float) -> None:
    """``target[j] += scale · pool[(start + j) mod P]`` for a 1-D contiguous ``target``, in ≤ 3 adds."""
    size, count = pool.numel(), target.numel()
    head = min(count, size - start)
    target[:head].add_(pool[start:start + head], alpha=scale)
    rows = (count - head) // size
    if rows:
        # A stride-0 view repeats the pool without materialising the repetition.
        target[head:head + rows * size].view(rows, size).add_(pool.expand(rows, size), alpha=scale)
    done = head + rows * size
    if done < count:
        target[done:].add_(pool[:count - done], alpha=scale)


def momentum_update(param: Tensor, direction: Tensor, buffer: Tensor, alpha: float, momentum: float,
                    first: bool) -> None:
    """``b ← μ b + d`` (``b ← d`` at the first step), ``θ ← θ − α b``: torch.optim.SGD's arithmetic.

    torch's fused SGD kernel does it in one pass, bit for bit as the single-tensor loop; it
    takes no buffer without momentum, so μ = 0 runs the loop's two ops to keep ``b`` equal.
    """
    if momentum == 0:
        if first:
            buffer.copy_(direction)
        else:
            buffer.mul_(momentum).add_(direction)
        param.add_(buffer, alpha=-alpha)
        return
    torch._fused_sgd_([param], [direction], [buffer], weight_decay=0.0, momentum=momentum, lr=alpha,
                      dampening=0.0, nesterov=False, maximize=False, is_first_step=first)


def preprocess_block(grad: Tensor, out: Tensor, mean: Tensor | None, clip: float | None,
                     grad_scale: float) -> Tensor:
    """``out = clamp(grad − mean, ±clip) · grad_scale`` in place (each step optional), the
    reference's ops in its order, so the result is the same bit for bit."""
    if mean is not None:
        torch.sub(grad, mean, out=out)
        if clip is not None:
            out.clamp_(-clip, clip)
    elif clip is not None:
        torch.clamp(grad, -clip, clip, out=out)
    else:
        out.copy_(grad)
    if grad_scale != 1.0:
        out.mul_(grad_scale)
    return out


class StepNoise:
    """One step's noise: a pool of P standard normals, read with period P over the entries in order."""

    def __init__(self, pool: Tensor) -> None:
        self.pool = pool
        self.position = 0

    def like(self, tensor: Tensor) -> Tensor:
        """The next ``tensor.numel()`` draws (cyclically), shaped like ``tensor`` (the reference path)."""
        size = self.pool.numel()
        index = torch.arange(self.position, self.position + tensor.numel(), device=self.pool.device) % size
        self.position = (self.position + tensor.numel()) % size
        return self.pool[index].view(tensor.shape).to(tensor)

    def add_to_(self, target: Tensor, scale: float) -> None:
        """``target += scale · like(target)`` for a 1-D contiguous ``target``, without the gather."""
        pool = self.pool.to(target)
        add_periodic_(target, pool, self.position, scale)
        self.position = (self.position + target.numel()) % pool.numel()
