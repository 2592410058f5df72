"""The compiled kernels: the reference maths as plain torch functions, one fused pass each.

Each public function packs its arguments and calls :func:`gradretention.optim.compiled.run`,
which compiles the private twin once (``torch.compile``, Inductor) and returns None when
it cannot; the caller then takes its eager path. Scalars that change from step to step
arrive as 0-dim (or per-tensor 1-D) tensors: a Python float would be baked into the code
and recompile at every new value. Flags (``decayed``, ``nesterov``, …) are Python bools:
one compiled variant per combination, chosen once per group.

The kernels keep each rule's op order, so the elementwise results equal the reference
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


def _scalar(value: float, like: Tensor) -> Tensor:
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
    :func:`~gradretention.optim.retention.retention_rates`. Without ``rescale`` η = ``lr``.
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


def rule_update(rule_name: str, params: list[Tensor], states: list[dict[str, Any]], group: Group, alpha: float,
                keep: bool) -> bool:
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
    common = (_scalar(alpha, like),)
    if rule_name in ("sgd", "sgdn"):
        momentum = group["momentum"]
        buffers = [s["momentum_buffer"] for s in states] if momentum != 0 else []
        done = run(f"{rule_name}_update", _sgd_update, params, grads, buffers, directions, *common,
                   _scalar(momentum, like), _scalar(1 - group["dampening"], like), _scalar(weight_decay, like),
                   weight_decay != 0, momentum != 0, bool(group["nesterov"]) and momentum != 0, keep)
        return done is not None
    if rule_name == "adagrad":
        for state in states:
            state["step"] += 1
        decays = [1 + (s["step"] - 1) * group["lr_decay"] for s in states]
        done = run("adagrad_update", _adagrad_update, params, grads, [s["sum"] for s in states], directions,
                   *common, _scalar(group["eps"], like), torch.tensor(decays, dtype=like.dtype, device=like.device),
                   _scalar(weight_decay, like), weight_decay != 0, keep)
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
               _scalar(group["alpha"], like), _scalar(group["eps"], like), _scalar(group["momentum"], like),
               _scalar(weight_decay, like), weight_decay != 0, centered, with_momentum, keep)
    if done is None:
        for state in states:
            state["step"] -= 1
    return done is not None


def _sums_and_squares(flats: list[Tensor]) -> Tensor:
    return torch.stack([torch.stack([flat.sum(), (flat * flat).sum()]) for flat in flats])


def sums_and_squares(flats: list[Tensor]) -> Tensor | None:
    """Per tensor ``[Σg, Σg²]`` (n × 2) from one read of each; None when not compiled here."""
    return run("sums_and_squares", _sums_and_squares, flats)


# --- EnhancedSGD's update (enhanced.py): preprocessing, noise and heavy ball in one pass. ---


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
                     clipped: bool, scaled: bool, noise_kind: str) -> Tensor:
    for index, (param, grad, buffer) in enumerate(zip(params, grads, buffers)):
        piece = None
        if noise_kind == "per-entry":
            piece = noise[index].view(param.shape)
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
    ``noise`` is the step's :class:`~gradretention.optim.fastpath.StepNoise` or None. A pool
    that covers the entries is sliced; a shorter one (period P) is read from each tensor's
    start (P values per tensor, a view of the pool twice over) and added row-broadcast. Every param must already have its
    momentum buffer (the first step is eager). Returns False when the kernel cannot be
    compiled here; the noise position advances only on success.
    """
    like = params[0]
    sizes = [p.numel() for p in params]
    noise_kind, pieces = "none", []
    if noise is not None:
        pool, period = noise.pool.to(like), noise.pool.numel()
        starts, position = [], noise.position
        for size in sizes:
            starts.append(position)
            position = (position + size) % period
        if noise.position + sum(sizes) <= period:
            noise_kind = "per-entry"
            pieces = [pool[start:start + size] for start, size in zip(starts, sizes)]
        else:
            noise_kind = "periodic"
            doubled = torch.cat([pool, pool])  # P values from any start are one contiguous view
            pieces = [doubled[start:start + period] for start in starts]
    centred = tuple(bool(group["centering"]) and p.dim() > 1 for p in params)
    weight_decay = group["weight_decay"]
    done = run("enhanced_update", _enhanced_update, params, [p.grad for p in params], buffers, means.to(like),
               pieces, _scalar(alpha, like), _scalar(momentum, like),
               _scalar(clip if clip is not None else 0.0, like), _scalar(grad_scale, like),
               _scalar(group["noise_scale"], like), _scalar(weight_decay, like), weight_decay != 0, centred,
               clip is not None, grad_scale != 1.0, noise_kind)
    if done is None:
        return False
    if noise is not None:
        noise.position = (noise.position + sum(sizes)) % noise.pool.numel()
    return True
