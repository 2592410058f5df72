"""Base update rules: each turns a gradient into a *direction* ``d_t`` with no learning rate in it.

The composed optimizer applies ``θ_t = θ_{t-1} − α_t · d_t`` where ``α_t`` comes from a
learning-rate controller. Each rule equals its ``torch.optim`` twin step for step (the
oracle tests hold them equal in float64) and keeps its state under torch's key names.

A rule also says how to obtain the previous direction ``d_{t-1}`` that hypergradient
controllers need. Rules whose state already holds it (momentum SGD, Adam, momentum
RMSprop) rebuild it for free; the others have the composed optimizer keep one copy.
"""

from __future__ import annotations

import math
from typing import Any, Protocol

import torch
from torch import Tensor

State = dict[str, Any]
Group = dict[str, Any]


class BaseRule(Protocol):
    """What the composed optimizer needs from a base rule."""

    name: str
    defaults: dict[str, Any]

    def direction(self, param: Tensor, grad: Tensor, state: State, group: Group) -> Tensor:
        """Update the rule's state with ``grad`` and return ``d_t`` (never mutate it afterwards)."""
        ...

    def previous_direction(self, state: State, group: Group) -> Tensor | None:
        """``d_{t-1}`` rebuilt from the state *before* this step's update, or None if not rebuildable."""
        ...

    def rebuilds_previous_direction(self, group: Group) -> bool:
        """Whether :meth:`previous_direction` works for this group (else a copy of d_t is kept)."""
        ...


class SGDRule:
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


def _adam_direction(exp_avg: Tensor, exp_avg_sq: Tensor, step: int, beta1: float, beta2: float, eps: float) -> Tensor:
    bias_correction1 = 1 - beta1**step
    bias_correction2_sqrt = math.sqrt(1 - beta2**step)
    denominator = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)
    return (exp_avg / bias_correction1).div_(denominator)


class AdagradRule:
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


class RMSpropRule:
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


def make_rule(name: str) -> BaseRule:
    """The base rule called ``name``; ``ValueError`` listing the valid names otherwise."""
    factories = {"sgd": SGDRule, "sgdn": lambda: SGDRule(nesterov_default=True), "adam": AdamRule,
                 "adagrad": AdagradRule, "rmsprop": RMSpropRule}
    if name not in factories:
        raise ValueError(f"Unknown base rule {name!r}; valid rules: {', '.join(sorted(factories))}")
    return factories[name]()


RULE_NAMES: tuple[str, ...] = ("sgd", "sgdn", "adam", "adagrad", "rmsprop")
