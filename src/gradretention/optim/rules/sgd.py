"""SGD with optional heavy-ball or Nesterov momentum: reference loop, fused path and compiled twin.

The reference loop is :meth:`SGDRule.direction` (torch.optim.SGD semantics); the fused path
runs torch's ``_fused_sgd_`` kernel (:func:`fused_sgd_update`) and reduces the hypergradient
over the stored directions (:func:`stored_direction_dots`); the compiled twin
(:func:`_compiled_sgd_update`) does the update and keeps d_t in one Inductor pass where torch's
kernel cannot write d_t. Tests hold all three equal in float64.
"""

from __future__ import annotations


from functools import partial

import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.base import Group, State


class SGDRule(kernels.StoredDirectionReductions):
    """SGD with optional heavy-ball or Nesterov momentum (torch.optim.SGD semantics).

    ``b_t = μ b_{t-1} + (1−τ) g_t`` with ``b_1 = g_1``; ``d_t = b_t``, or ``g_t + μ b_t``
    with Nesterov; ``d_t = g_t`` without momentum. State: ``momentum_buffer``.
    """

    name = "sgd"

    def __init__(self, nesterov_default: bool = False) -> None:
        self.defaults = {
            "momentum": 0.9 if nesterov_default else 0.0,
            "dampening": 0.0,
            "nesterov": nesterov_default,
            "weight_decay": 0.0,
        }
        if nesterov_default:
            self.name = "sgdn"

    def direction(self, param: Tensor, grad: Tensor, state: State, group: Group) -> Tensor:
        momentum = group["momentum"]
        if momentum == 0:
            return grad
        buffer = state.get("momentum_buffer")
        if buffer is None:
            buffer = state["momentum_buffer"] = grad.detach().clone()
        else:
            buffer.mul_(momentum).add_(grad, alpha=1 - group["dampening"])
        if group["nesterov"]:
            return grad.add(buffer, alpha=momentum)
        return buffer

    def previous_direction(self, state: State, group: Group) -> Tensor | None:
        # Heavy ball: the buffer *is* d_{t-1} until this step updates it.
        if self.rebuilds_previous_direction(group):
            return state.get("momentum_buffer")
        return None

    def rebuilds_previous_direction(self, group: Group) -> bool:
        return group["momentum"] != 0 and not group["nesterov"]

    fused = True

    def fused_update(self, params: list[Tensor], grads: list[Tensor], states: list[State], group: Group,
                     alpha: float | Tensor, keep: bool) -> None:
        fused_sgd_update(params, grads, states, group, alpha, keep)

    def compiled_update(self, params: list[Tensor], states: list[State], group: Group, alpha: float | Tensor,
                        keep: bool) -> bool:
        return compiled_sgd_update(self.name, params, states, group, alpha, keep)


def fused_sgd_update(params: list[Tensor], grads: list[Tensor], states: list[State], group: Group,
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


def _momentum_update(params: list[Tensor], grads: list[Tensor], states: list[State], group: Group,
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


def _store_directions(states: list[State], directions: list[Tensor]) -> None:
    for state, direction in zip(states, directions):
        stored = state.get("previous_direction")
        if stored is None:
            state["previous_direction"] = direction.detach().clone(memory_format=torch.preserve_format)
        else:
            stored.copy_(direction)


def _compiled_sgd_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], directions: list[Tensor],
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


def compiled_sgd_update(name: str, params: list[Tensor], states: list[State], group: Group, alpha: float | Tensor,
                        keep: bool) -> bool:
    """The update (and d_t with ``keep``) in one compiled pass; False before the state exists or without a compiler."""
    momentum = group["momentum"]
    wanted = (("momentum_buffer",) if momentum != 0 else ()) + (("previous_direction",) if keep else ())
    if not all(state.get(key) is not None for state in states for key in wanted):
        return False
    like, weight_decay = params[0], group["weight_decay"]
    done = kernels.run(f"{name}_update", _compiled_sgd_update, params, [p.grad for p in params],
                       [s["momentum_buffer"] for s in states] if momentum != 0 else [],
                       [s["previous_direction"] for s in states] if keep else [], kernels.scalar_like(alpha, like),
                       kernels.scalar_like(momentum, like), kernels.scalar_like(1 - group["dampening"], like),
                       kernels.scalar_like(weight_decay, like), weight_decay != 0, momentum != 0,
                       bool(group["nesterov"]) and momentum != 0, keep)
    return done is not None


RULES = {"sgd": SGDRule, "sgdn": partial(SGDRule, nesterov_default=True)}
"""The names this module serves (collected by :mod:`gradretention.optim.rules`)."""
