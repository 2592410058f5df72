"""The one optimizer that owns ``step()``: a base rule × a learning-rate controller.

Each step, per param group::

    g_t   = grad + weight_decay·θ            (coupled L2, out of place: p.grad is never written)
    α_t   = controller.next_lr(group, g_t, d_{t-1}, loss)   # before the update
    d_t   = rule.direction(g_t)                # updates the rule's state
    θ_t   = θ_{t-1} − α_t · d_t

``group["lr"]`` holds α, so torch LR schedulers compose, and each group keeps its own α
and controller scalars.
"""

from __future__ import annotations

from typing import Any, Callable

import torch
from torch import Tensor

from gradretention.optim.controllers import ConstantController, HypergradientController, LRController, StepSignals
from gradretention.optim.hyperparams import check_hyperparameters
from gradretention.optim.rules import BaseRule, Group, make_rule

Closure = Callable[[], Any]


def make_controller(name: str, lr_optimizer: str = "sgd") -> LRController:
    if name == "constant":
        return ConstantController()
    if name == "hypergradient":
        return HypergradientController(lr_optimizer)
    # Imported here: the variance controller is an optional module of its own.
    from gradretention.optim.controllers import variance  # noqa: PLC0415

    if name == "variance":
        return variance.VarianceController()
    raise ValueError(f"Unknown controller {name!r}; valid controllers: constant, hypergradient, variance")


class ComposedOptimizer(torch.optim.Optimizer):
    """A base update rule driven by a learning-rate controller.

    Args:
        params: iterable of tensors or param-group dicts.
        rule: ``sgd``, ``sgdn``, ``adam``, ``adagrad``, ``rmsprop`` or a :class:`BaseRule`.
        controller: ``constant``, ``hypergradient`` or ``variance``, or an :class:`LRController`.
        lr: the initial learning rate α_0.
        lr_optimizer: for ``controller="hypergradient"``: ``sgd``, ``sgdn`` or ``adam``.
        **hyperparameters: the rule's and the controller's (e.g. ``momentum``, ``betas``,
            ``hypergrad_lr``); an unknown name is a ``ValueError`` listing the valid ones.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = ComposedOptimizer(model.parameters(), rule="adam", controller="hypergradient", lr=1e-3)
    """

    def __init__(self, params: Any, rule: str | BaseRule = "sgd", controller: str | LRController = "constant",
                 lr: float = 1e-3, lr_optimizer: str = "sgd", **hyperparameters: Any) -> None:
        self.rule = make_rule(rule) if isinstance(rule, str) else rule
        self.controller = make_controller(controller, lr_optimizer) if isinstance(controller, str) else controller
        defaults = {"lr": lr, **self.rule.defaults, **self.controller.defaults}
        unknown = sorted(set(hyperparameters) - set(defaults))
        if unknown:
            raise ValueError(
                f"Unknown hyperparameter(s) {', '.join(unknown)} for rule {self.rule.name!r} with controller "
                f"{self.controller.name!r}; valid: {', '.join(sorted(defaults))}")
        defaults.update(hyperparameters)
        check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        check_hyperparameters({key: value for key, value in param_group.items() if key != "params"})
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure: Closure | None = None, *, loss: Any = None) -> Any:
        """One update of every param with a gradient; returns the closure's loss (or ``loss``)."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        loss_value = _loss_float(loss) if loss is not None and self._controller_uses_loss() else None
        for group in self.param_groups:
            self._step_group(group, loss_value)
        return loss

    def _controller_uses_loss(self) -> bool:
        return getattr(self.controller, "uses_loss", False)

    def _step_group(self, group: Group, loss: float | None) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        grads = [_effective_grad(p, group["weight_decay"]) for p in params]
        group_step = group.get("step_count", 0) + 1
        group["step_count"] = group_step
        previous = [self._previous_direction(p, group, group_step) for p in params] \
            if self.controller.needs_previous_direction else [None] * len(params)
        alpha = self.controller.next_lr(group, StepSignals(params, grads, previous, loss), self.rule)
        group["lr"] = alpha
        for param, grad in zip(params, grads):
            state = self.state[param]
            direction = self.rule.direction(param, grad, state, group)
            param.add_(direction, alpha=-alpha)
            if self.controller.needs_previous_direction:
                self._remember_direction(param, state, direction, group, group_step)

    def _previous_direction(self, param: Tensor, group: Group, group_step: int) -> Tensor | None:
        state = self.state[param]
        # A param skipped at step t-1 (no grad) did not move then: its d_{t-1} is zero.
        if state.get("updated_at") != group_step - 1:
            return None
        stored = state.get("previous_direction")
        return stored if stored is not None else self.rule.previous_direction(state, group)

    def _remember_direction(self, param: Tensor, state: dict[str, Any], direction: Tensor,
                            group: Group, group_step: int) -> None:
        state["updated_at"] = group_step
        if self.rule.rebuilds_previous_direction(group):
            return  # the rule rebuilds d_t from its own state: no extra buffer
        stored = state.get("previous_direction")
        if stored is None:
            state["previous_direction"] = direction.detach().clone(memory_format=torch.preserve_format)
        else:
            stored.copy_(direction)

    def telemetry(self) -> dict[str, float]:
        """Per group ``i``: ``lr/g{i}`` and the controller's scalars, as plain floats."""
        values: dict[str, float] = {}
        for index, group in enumerate(self.param_groups):
            values[f"lr/g{index}"] = float(group["lr"])
            for key, value in self.controller.telemetry(group).items():
                values[f"{key}/g{index}"] = value
        return values


def _effective_grad(param: Tensor, weight_decay: float) -> Tensor:
    grad = param.grad
    if grad.is_sparse:
        raise RuntimeError("gradretention optimizers do not support sparse gradients; use torch.optim.SparseAdam "
                           "or a dense embedding (nn.Embedding(sparse=False))")
    return grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad


def _loss_float(loss: Any) -> float:
    return float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
