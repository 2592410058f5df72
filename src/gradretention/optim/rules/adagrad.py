"""Adagrad, written from scratch: reference loop and compiled twin (torch.optim.Adagrad semantics).

torch has no fused Adagrad kernel that could keep d_t for a hypergradient, so the fast path is
the compiled twin (:func:`_compiled_adagrad_update`): the update and d_t in one Inductor pass.
"""

from __future__ import annotations


import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.base import Group, State


class AdagradRule(kernels.StoredDirectionReductions, kernels.NoTorchFusedKernel):
    """Adagrad, written from scratch (torch.optim.Adagrad semantics).

    ``sum_t = sum_{t-1} + g²``; ``d_t = g / (√sum_t + ε) / (1 + (k−1)·lr_decay)``, so the
    learning-rate decay of the lecture and of torch lives in the direction.
    State: ``sum`` (starts at ``initial_accumulator_value``), ``step``.
    """

    name = "adagrad"
    defaults = {"lr_decay": 0.0, "initial_accumulator_value": 0.0, "eps": 1e-10, "weight_decay": 0.0}

    def direction(self, param: Tensor, grad: Tensor, state: State, group: Group) -> Tensor:
        if "sum" not in state:
            state["step"] = 0
            state["sum"] = torch.full_like(param, group["initial_accumulator_value"], memory_format=torch.preserve_format)
        state["step"] += 1
        decay = 1 + (state["step"] - 1) * group["lr_decay"]
        state["sum"].addcmul_(grad, grad, value=1)
        denominator = state["sum"].sqrt().add_(group["eps"])
        return grad.div(denominator).div_(decay)

    def previous_direction(self, state: State, group: Group) -> Tensor | None:
        return None

    def rebuilds_previous_direction(self, group: Group) -> bool:
        return False

    def compiled_update(self, params: list[Tensor], states: list[State], group: Group, alpha: float | Tensor,
                        keep: bool) -> bool:
        """The update (and d_t with ``keep``) in one Inductor pass, once ``sum`` exists."""
        wanted = ("sum", "previous_direction") if keep else ("sum",)
        if not all(state.get(key) is not None for state in states for key in wanted):
            return False
        like, weight_decay = params[0], group["weight_decay"]
        steps = [state["step"] + 1 for state in states]
        decays = [1 + (step - 1) * group["lr_decay"] for step in steps]
        done = kernels.run("adagrad_update", _compiled_adagrad_update, params, [p.grad for p in params],
                           [s["sum"] for s in states], [s["previous_direction"] for s in states] if keep else [],
                           kernels.scalar_like(alpha, like), kernels.scalar_like(group["eps"], like),
                           torch.tensor(decays, dtype=like.dtype, device=like.device),
                           kernels.scalar_like(weight_decay, like), weight_decay != 0, keep)
        if done is None:
            return False
        for state, step in zip(states, steps):
            state["step"] = step
        return True


def _compiled_adagrad_update(params: list[Tensor], grads: list[Tensor], sums: list[Tensor], directions: list[Tensor],
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


RULES = {"adagrad": AdagradRule}
"""The names this module serves (collected by :mod:`gradretention.optim.rules`)."""
