"""EnhancedSGD's step pieces: the reference preprocessing, the eager blocks and the compiled pass.

:func:`preprocessed` is the reference loop's g̃; the eager pieces (:func:`preprocess_block`,
:func:`momentum_update`, with :class:`~.enhanced_noise.StepNoise` for the noise of a block) run
the reference's ops block by block in a reused buffer; the compiled twin
(:func:`enhanced_update`) does preprocessing, noise and the momentum update in one Inductor
pass (the conventions of :mod:`gradretention.optim.kernels`). :class:`GroupWork`,
:func:`fast_path_eligible` and :func:`host_scalars` prepare a group's step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import reduce
from typing import Any

import torch
from torch import Tensor

from gradretention.optim.algorithms.enhanced_noise import StepNoise, index_dtype, keys_tensor, normals
from gradretention.optim import native
from gradretention.optim.kernels import CALLS, run, scalar_like

Group = dict[str, Any]


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


def _enhanced_part(param: Tensor, grad: Tensor, buffer: Tensor, noise: Tensor | None, mean: Tensor, alpha: Tensor,
                   momentum: Tensor, clip: Tensor, grad_scale: Tensor, noise_scale: Tensor, weight_decay: Tensor,
                   decayed: bool, centred: bool, clipped: bool, scaled: bool) -> None:
    direction = grad + weight_decay * param if decayed else grad
    if centred:
        direction = direction - mean
    if clipped:
        direction = direction.clamp(-clip, clip)
    if scaled:
        direction = direction * grad_scale
    if noise is not None:
        direction = direction + noise_scale * noise
    buffer.mul_(momentum).add_(direction)
    param.sub_(alpha * buffer)


def _enhanced_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], means: Tensor,
                     noise: list[Tensor], alpha: Tensor, momentum: Tensor, clip: Tensor, grad_scale: Tensor,
                     noise_scale: Tensor, weight_decay: Tensor, decayed: bool, centred: tuple[bool, ...],
                     clipped: bool, scaled: bool, noise_kind: str, starts: tuple[int, ...]) -> Tensor:
    for index, (param, grad, buffer) in enumerate(zip(params, grads, buffers)):
        piece = None
        if noise_kind == "counter":
            # noise[0] holds the step's keys; the entry indices are an iota Inductor never stores.
            entries = torch.arange(starts[index], starts[index] + param.numel(), dtype=noise[0].dtype,
                                   device=param.device)
            piece = normals(entries, noise[0], param.dtype).view(param.shape)
        elif noise_kind == "periodic":
            # noise[index] is the pool read from this tensor's start (P values): entry j takes value
            # j mod P. The expanded rows are index arithmetic for Inductor, never materialised.
            period = noise[index].numel()
            rows = -(-param.numel() // period)
            piece = noise[index].expand(rows, period).reshape(-1)[:param.numel()].view(param.shape)
        _enhanced_part(param, grad, buffer, piece, means[index], alpha, momentum, clip, grad_scale, noise_scale,
                       weight_decay, decayed, centred[index], clipped, scaled)
    return alpha


def enhanced_update(params: list[Tensor], buffers: list[Tensor], means: Tensor, group: Group, alpha: float,
                    momentum: float, clip: float | None, grad_scale: float, noise: Any) -> bool:
    """EnhancedSGD's ``b ← μ b + g̃``, ``θ ← θ − α b`` with ``g̃`` built in the same pass.

    ``g̃ = clamp(g − mean, ±clip)·grad_scale + noise_scale·z`` (each part as the group says);
    ``noise`` is the step's :class:`StepNoise` or None. The counter stream is computed in the
    pass from the step's keys and each entry's index (the tensors' start indices are static:
    fixed per model); a pool (period P) is read from each tensor's start (P values per tensor,
    a view of the pool twice over) and added row-broadcast. On the CPU without a pool the C++
    loop (:func:`gradretention.optim.native.enhanced_update`) runs instead of Inductor's pass
    when it builds; it counts under ``kernels.CALLS["enhanced_update_native"]``. Every param must already have its
    momentum buffer (the first step is eager). Returns False when the kernel cannot be
    compiled here; the noise position advances only on success.
    """
    like = params[0]
    sizes = [p.numel() for p in params]
    noise_kind, pieces, starts = "none", [], [noise.position] if noise is not None else []
    for size in sizes[:-1] if noise is not None else []:
        starts.append(starts[-1] + size)
    # A pool as long as the step's draws is the counter stream itself (a small step's one call).
    streamed = noise is None or noise.pool is None or noise.pool.numel() >= starts[0] + sum(sizes)
    if streamed and _native_update(params, buffers, means, group, alpha, momentum, clip,
                                                                grad_scale, noise, starts):
        return True
    if noise is not None and noise.pool is None:
        noise_kind = "counter"
        pieces = [keys_tensor(noise.keys, index_dtype(starts[-1] + sizes[-1]) == torch.int64, like.device)]
    elif noise is not None:
        noise_kind, period = "periodic", noise.pool.numel()
        doubled = torch.cat([noise.pool, noise.pool]).to(like)  # P values from any start are one contiguous view
        pieces = [doubled[start % period:start % period + period] for start in starts]
    centred = tuple(bool(group["centering"]) and p.dim() > 1 for p in params)
    weight_decay = group["weight_decay"]
    done = run("enhanced_update", _enhanced_update, params, [p.grad for p in params], buffers, means.to(like),
               pieces, scalar_like(alpha, like), scalar_like(momentum, like),
               scalar_like(clip if clip is not None else 0.0, like), scalar_like(grad_scale, like),
               scalar_like(group["noise_scale"], like), scalar_like(weight_decay, like), weight_decay != 0, centred,
               clip is not None, grad_scale != 1.0, noise_kind, tuple(starts) if noise_kind == "counter" else ())
    if done is None:
        return False
    if noise is not None:
        noise.advance(sum(sizes))
    return True


def _native_update(params: list[Tensor], buffers: list[Tensor], means: Tensor, group: Group, alpha: float,
                   momentum: float, clip: float | None, grad_scale: float, noise: StepNoise | None,
                   starts: list[int]) -> bool:
    """:func:`enhanced_update` through the C++ loop (CPU, no noise pool); False when it cannot run."""
    centred = torch.tensor([bool(group["centering"]) and p.dim() > 1 for p in params], device=means.device)
    means = torch.where(centred, means, torch.zeros((), dtype=means.dtype, device=means.device))
    step = {"alpha": alpha, "momentum": momentum, "clip": clip if clip is not None else math.inf,
            "grad_scale": grad_scale, "noise_scale": group["noise_scale"], "weight_decay": group["weight_decay"]}
    done = native.enhanced_update(params, [p.grad for p in params], buffers, means.to(params[0]),
                                  starts if noise is not None else None, noise.keys if noise is not None else (0, 0, 0),
                                  step)
    if done:
        CALLS["enhanced_update_native"] += 1
        if noise is not None:
            noise.advance(sum(p.numel() for p in params))
    return done


@dataclass(frozen=True)
class GroupWork:
    """One group's step inputs: params with grads, effective grads, per-tensor means (fast path), Var(g)."""

    group: dict[str, Any]
    params: list[Tensor]
    grads: list[Tensor]
    means: Tensor | None
    variance: Tensor | None


def fast_path_eligible(params: list[Tensor]) -> bool:
    """Whether EnhancedSGD's fast path can run these params (dense, contiguous, one float dtype)."""
    return all(p.dtype in (torch.float32, torch.float64) and p.dtype == params[0].dtype == p.grad.dtype
               and p.device == params[0].device and p.is_contiguous() and not p.grad.is_sparse
               and p.grad.is_contiguous() for p in params)


def preprocessed(grad: Tensor, group: dict[str, Any], clip: float | None, grad_scale: float,
                  noise: StepNoise | None) -> Tensor:
    """g̃ = clamp(centred g, ±clip)·grad_scale + noise; never writes into ``p.grad``."""
    if group["centering"] and grad.dim() > 1:
        grad = grad - grad.mean()
    if clip is not None:
        grad = grad.clamp(-clip, clip)
    if grad_scale != 1.0:
        grad = grad * grad_scale
    if noise is not None:
        grad = grad.add(noise.like(grad), alpha=group["noise_scale"])
    return grad


def host_scalars(variances: list[Tensor], loss: Any) -> tuple[list[float], float | None]:
    """The group variances and the loss as floats, fetched from the device together."""
    tensors = list(variances)
    if isinstance(loss, Tensor):
        tensors.append(loss.detach().reshape(()))
    dtype = reduce(torch.promote_types, (t.dtype for t in tensors))
    device = tensors[0].device
    values = torch.stack([t.to(device=device, dtype=dtype) for t in tensors]).tolist()
    if isinstance(loss, Tensor):
        return values[:-1], values[-1]
    return values, None if loss is None else float(loss)
