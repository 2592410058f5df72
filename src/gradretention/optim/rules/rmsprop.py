"""RMSprop: reference loop and compiled twin (torch.optim.RMSprop semantics).

torch has no fused RMSprop kernel, so the fast path is the compiled twin
(:func:`_compiled_rmsprop_update`): the update and d_t in one Inductor pass.
"""

from __future__ import annotations


import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.base import Group, State


class RMSpropRule(kernels.StoredDirectionReductions, kernels.NoTorchFusedKernel):
    """RMSprop (torch.optim.RMSprop semantics: smoothing ``alpha``, ``eps``, ``centered``, ``momentum``).

    ``v = α v + (1−α) g²``; centred: ``c = α c + (1−α) g`` and ``v − c²`` under the root;
    ``u = g / (√· + ε)``; with momentum ``b = μ b + u`` and ``d = b``, else ``d = u``.
    State: ``step``, ``square_avg``, ``grad_avg``, ``momentum_buffer``.
    """

    name = "rmsprop"
    defaults = {"alpha": 0.99, "eps": 1e-8, "centered": False, "momentum": 0.0, "weight_decay": 0.0}

    def direction(self, param: Tensor, grad: Tensor, state: State, group: Group) -> Tensor:
        if "square_avg" not in state:
            state["step"] = 0
            state["square_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["momentum"] > 0:
                state["momentum_buffer"] = torch.zeros_like(param, memory_format=torch.preserve_format)
            if group["centered"]:
                state["grad_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["step"] += 1
        alpha = group["alpha"]
        square_avg = state["square_avg"].mul_(alpha).addcmul_(grad, grad, value=1 - alpha)
        if group["centered"]:
            grad_avg = state["grad_avg"].lerp_(grad, 1 - alpha)
            average = square_avg.addcmul(grad_avg, grad_avg, value=-1).sqrt_()
        else:
            average = square_avg.sqrt()
        average.add_(group["eps"])
        if group["momentum"] > 0:
            return state["momentum_buffer"].mul_(group["momentum"]).addcdiv_(grad, average)
        return grad.div(average)

    def previous_direction(self, state: State, group: Group) -> Tensor | None:
        if group["momentum"] > 0:
            return state.get("momentum_buffer") if state.get("step", 0) > 0 else None
        return None

    def rebuilds_previous_direction(self, group: Group) -> bool:
        return group["momentum"] > 0

    def compiled_update(self, params: list[Tensor], states: list[State], group: Group, alpha: float | Tensor,
                        keep: bool) -> bool:
        """The update (and d_t with ``keep``) in one Inductor pass, once ``square_avg`` exists."""
        wanted = ("square_avg", "previous_direction") if keep else ("square_avg",)
        if not all(state.get(key) is not None for state in states for key in wanted):
            return False
        like, weight_decay = params[0], group["weight_decay"]
        centered, with_momentum = bool(group["centered"]), group["momentum"] > 0
        done = kernels.run("rmsprop_update", _compiled_rmsprop_update, params, [p.grad for p in params],
                           [s["square_avg"] for s in states], [s["grad_avg"] for s in states] if centered else [],
                           [s["momentum_buffer"] for s in states] if with_momentum else [],
                           [s["previous_direction"] for s in states] if keep else [],
                           kernels.scalar_like(alpha, like), kernels.scalar_like(group["alpha"], like),
                           kernels.scalar_like(group["eps"], like), kernels.scalar_like(group["momentum"], like),
                           kernels.scalar_like(weight_decay, like), weight_decay != 0, centered, with_momentum, keep)
        if done is None:
            return False
        for state in states:
            state["step"] += 1
        return True


def _compiled_rmsprop_update(params: list[Tensor], grads: list[Tensor], square_avgs: list[Tensor], grad_avgs: list[Tensor],
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


RULES = {"rmsprop": RMSpropRule}
"""The names this module serves (collected by :mod:`gradretention.optim.rules`)."""
