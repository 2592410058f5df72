"""RescaledSGD's fast paths: the eager blocked passes and the two passes as compiled kernels.

The compiled kernels follow the conventions of :mod:`gradretention.optim.kernels`.

Pass 1 (``m ← γ m + g``, min and max of ``|m|``) prefers the hand-written loop of
:mod:`gradretention.optim.native`, which stores m and reduces over it in one read; Inductor's kernel here reads
m twice and is the fallback. Pass 2 (``θ ← θ − η ⊙ u``) is at its floor as compiled here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.kernels import run

Group = dict[str, Any]

FLAT_SPREAD = 1e-12
"""Relative spread below which a tensor's retained magnitudes count as all equal (s = 0)."""


# --- The eager fast path: in place, block by block, one host sync per group. ---


def fast_path_eligible(params: list[Tensor], state: dict[Tensor, dict[str, Any]]) -> bool:
    """Whether :meth:`RescaledSGD._fast_update` can run these params (dense, contiguous, float)."""
    for param in params:
        retained = state[param].get("retained_grad") if param in state else None
        if param.grad.is_sparse or not param.is_floating_point() or not param.is_contiguous() \
                or not param.grad.is_contiguous() or (retained is not None and not retained.is_contiguous()):
            return False
    return True


def retain_(param: Tensor, state: dict[str, Any], decay: float, weight_decay: float, buffer: Tensor,
            bounds: bool) -> list[Tensor]:
    """``m ← γ m + (g + wd·θ)`` in place, block by block, with the reference's roundings.

    Returns, when ``bounds``, ``[min|m|, max|m|]`` of each block (0-dim device tensors) taken
    while the block is in cache; else ``[]``. ``m`` is bit for bit the reference's: the
    rule's rate is ill-conditioned when all |m| are close, so the last bit matters there.
    """
    grad, m = param.grad, state.get("retained_grad")
    first = m is None
    if first:
        m = state["retained_grad"] = grad.detach().clone(memory_format=torch.preserve_format)
        if weight_decay != 0:
            m.add_(param, alpha=weight_decay)
    flat_m, flat_grad, flat_param = m.view(-1), grad.view(-1), param.view(-1)
    found = []
    for start in range(0, flat_m.numel(), kernels.BLOCK):
        block = flat_m[start:start + kernels.BLOCK]
        temp = buffer[:block.numel()]
        if not first:
            part = flat_grad[start:start + kernels.BLOCK]
            if weight_decay != 0:
                part = torch.add(part, flat_param[start:start + kernels.BLOCK], alpha=weight_decay, out=temp)
            block.mul_(decay).add_(part)
        if bounds:
            found.extend(torch.aminmax(torch.abs(block, out=temp)))
    return found


def magnitude_bounds(found: list[list[Tensor]]) -> list[tuple[float, float]]:
    """Per tensor ``(min |m|, max |m|)`` from its blocks' bounds, with one host sync for all."""
    values = torch.stack([value for blocks in found for value in blocks]).tolist()
    bounds, position = [], 0
    for blocks in found:
        pairs = values[position:position + len(blocks)]
        bounds.append((min(pairs[0::2]), max(pairs[1::2])))
        position += len(blocks)
    return bounds


def apply_retained_update(param: Tensor, m: Tensor, buffer: Tensor, floor: float, slope: float,
                          bounds: tuple[float, float], update: str) -> None:
    """θ ← θ − η ⊙ u with ``η = floor + slope·(|m| − low)`` and ``u = sign m`` or ``m``, block by block.

    ``η ⊙ sign m = (floor − slope·low)·sign m + slope·m`` needs one temporary (sign m) and
    stays accurate while ``low <= high − low`` (then ``slope·low <= lr − floor``). When all
    magnitudes lie within a factor of two, ``m − low·sign m`` is formed first instead, so the
    two large terms never cancel.
    """
    low, high = bounds
    narrow = slope != 0 and low > high - low
    offset = floor if narrow else floor - slope * low
    flat_param, flat_m = param.view(-1), m.view(-1)
    for start in range(0, flat_m.numel(), kernels.BLOCK):
        block_m, block_p = flat_m[start:start + kernels.BLOCK], flat_param[start:start + kernels.BLOCK]
        temp = buffer[:block_m.numel()]
        if update == "sign":
            block_p.add_(torch.sign(block_m, out=temp), alpha=-offset)
            if narrow:
                block_p.add_(torch.add(block_m, temp, alpha=-low, out=temp), alpha=-slope)
            elif slope != 0:
                block_p.add_(block_m, alpha=-slope)
        else:
            block_p.add_(block_m, alpha=-offset)
            if slope != 0:
                magnitude = torch.abs(block_m, out=temp)
                block_p.addcmul_(magnitude.sub_(low) if narrow else magnitude, block_m, value=-slope)


# --- The compiled twin. ---


def _retain_and_bounds(retained: list[Tensor], grads: list[Tensor], params: list[Tensor], decay: Tensor,
                       weight_decay: Tensor, decayed: bool, bounds: bool) -> Tensor:
    found = []
    for m, grad, param in zip(retained, grads, params):
        effective = grad + weight_decay * param if decayed else grad
        m.mul_(decay).add_(effective)
        if bounds:
            magnitude = m.abs()
            found.append(torch.stack([magnitude.amin(), magnitude.amax()]))
    # Always an output: Dynamo hands back None for a graph without one, which means "not compiled" here.
    return torch.stack(found) if bounds else decay


def retain_and_bounds(retained: list[Tensor], grads: list[Tensor], params: list[Tensor], decay: float,
                      weight_decay: float, bounds: bool) -> tuple[bool, Tensor | None]:
    """``m ← γ m + (g + wd·θ)`` in place and, with ``bounds``, per tensor ``[min|m|, max|m|]`` (n × 2).

    The reference's two roundings (``γ·m``, then ``+ g``). Returns ``(done, bounds)``;
    ``done`` is False when the kernel cannot be compiled here (nothing was written then).
    """
    dtype, device = params[0].dtype, params[0].device
    result = run("retain_and_bounds", _retain_and_bounds, retained, grads, params,
                 torch.tensor(decay, dtype=dtype, device=device),
                 torch.tensor(weight_decay, dtype=dtype, device=device), weight_decay != 0, bounds)
    if result is None:
        return False, None
    return True, result if bounds else None


def _retained_update(params: list[Tensor], retained: list[Tensor], bounds: Tensor, span: Tensor,
                     floor: Tensor, flat_spread: Tensor, sign_update: bool, rescale: bool) -> Tensor:
    for index, (param, m) in enumerate(zip(params, retained)):
        direction = m.sign() if sign_update else m
        if rescale:
            low, high = bounds[index, 0], bounds[index, 1]
            spread = high - low
            denominator = torch.where(spread > flat_spread * high, spread, torch.full_like(spread, float("inf")))
            rates = (m.abs() - low) / denominator * span + floor
            param.addcmul_(direction, rates, value=-1)
        else:
            param.sub_(direction * span)
    return span


def retained_update(params: list[Tensor], retained: list[Tensor], bounds: Tensor | None, lr: float, floor: float,
                    update: str, rescale: bool, flat_spread: float) -> bool:
    """θ ← θ − η ⊙ u, the reference's ``η = (|m| − low)/spread·(lr − floor) + floor``, in one pass.

    ``bounds`` is :func:`retain_and_bounds`'s n × 2 tensor (device, no host sync); ``spread``
    becomes ``+inf`` for (nearly) equal magnitudes, so η is the floor there, as in
    :func:`~gradretention.optim.algorithms.retention.retention_rates`. Without ``rescale`` η = ``lr``.
    Returns False when the kernel cannot be compiled here.
    """
    dtype, device = params[0].dtype, params[0].device
    if bounds is None:
        bounds = torch.zeros((len(params), 2), dtype=dtype, device=device)
    # lr − floor in double, as the reference's Python scalar, then one rounding to the dtype.
    span = lr - floor if rescale else lr
    done = run("retained_update", _retained_update, params, retained, bounds,
               torch.tensor(span, dtype=dtype, device=device), torch.tensor(floor, dtype=dtype, device=device),
               torch.tensor(flat_spread, dtype=dtype, device=device), update == "sign", rescale)
    return done is not None


def compiled_step(params: list[Tensor], states: list[dict[str, Any]], group: Group, flat_spread: float) -> bool:
    """One RescaledSGD update of a group through the compiled passes; False: nothing done, go eager.

    Every param must already have its ``retained_grad`` (the first step is eager).
    """
    from gradretention.optim import native  # noqa: PLC0415 (native builds lazily)

    if any("retained_grad" not in state for state in states):
        return False
    retained = [state["retained_grad"] for state in states]
    rescale, grads = group["retain_min"], [p.grad for p in params]
    bounds = native.retain_and_bounds(retained, grads, params, group["decay"], group["weight_decay"], rescale)
    if bounds is None:
        done, bounds = retain_and_bounds(retained, grads, params, group["decay"], group["weight_decay"], rescale)
        if not done:
            return False
    elif not rescale:
        bounds = None
    lr = group["lr"]
    floor = min(group["base_lr"], lr)
    if retained_update(params, retained, bounds, lr, floor, group["update"], rescale, flat_spread):
        return True
    # The second kernel would not compile although the first pass ran: finish this step eagerly.
    pairs = bounds.tolist() if bounds is not None else [(0.0, 0.0)] * len(params)
    for param, m, (low, high) in zip(params, retained, pairs):
        slope = (lr - floor) / (high - low) if rescale and high - low > flat_spread * high else 0.0
        apply_retained_update(param, m, torch.empty(min(param.numel(), 1 << 20), dtype=param.dtype,
                                                    device=param.device), floor if rescale else lr, slope,
                              (low, high), group["update"])
    return True
