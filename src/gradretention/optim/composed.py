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

import warnings

import torch
from torch import Tensor

from gradretention.optim import kernels
from gradretention.optim.base import EffectiveGrads, Group, LRController, Rule, StepSignals
from gradretention.optim.contract import (
    SCHEDULE_WARNING,
    TORCH_KEYWORDS,
    ContractMixin,
    check_params,
    check_torch_keywords,
    erasing_schedulers,
    wants_reference_loop,
)
from gradretention.optim.controllers import make_controller
from gradretention.optim.controllers.hypergradient import hypergradient_terms
from gradretention.optim.hyperparams import check_hyperparameters
from gradretention.optim.rules import make_rule

Closure = Callable[[], Any]


class ComposedOptimizer(ContractMixin, torch.optim.Optimizer):
    """A base update rule driven by a learning-rate controller.

    Args:
        params: iterable of tensors or param-group dicts.
        rule: ``sgd``, ``sgdn``, ``adam``, ``adagrad``, ``rmsprop`` or a :class:`~gradretention.optim.base.Rule`.
        controller: ``constant``, ``hypergradient`` or ``variance``, or an :class:`LRController`.
        lr: the initial learning rate α_0.
        lr_optimizer: for ``controller="hypergradient"``: ``sgd``, ``sgdn`` or ``adam``.
        fused: None picks the rule's fused path (torch's fused kernels) where eligible, False forces
            the readable reference loop, True requires the fused path.
        compiled: whether Inductor-compiled kernels (:mod:`~gradretention.optim.kernels`) take
            the passes eager torch cannot fuse: Adam's hypergradient reduction, the Adagrad and
            RMSprop updates, SGD's update when d_t is kept. None = auto (groups of ≥ 4 M entries
            on the CPU, after 200 steps), True = from the first step, False = never.
        foreach, maximize, capturable, differentiable: torch's keywords (:mod:`.contract`):
            ``maximize=True`` ascends, ``foreach=False`` runs the reference loop, the last two
            must stay False.
        **hyperparameters: the rule's and the controller's (e.g. ``momentum``, ``betas``,
            ``hypergrad_lr``); an unknown name is a ``ValueError`` listing the valid ones.

    Schedulers: a torch LR scheduler writes ``group["lr"]``, which holds α. Chainable
    schedulers (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, ConstantLR,
    PolynomialLR, MultiplicativeLR, ReduceLROnPlateau) multiply the adapted α and compose with
    the controller: it continues from the scaled value. Schedulers that recompute lr from
    ``initial_lr`` every step (LambdaLR, OneCycleLR, CyclicLR, CosineAnnealingWarmRestarts)
    replace the adapted α each step, which undoes the adaptation (SequentialLR does so at its
    milestones); the first time the optimizer sees ``group["lr"]`` written from outside, it looks
    for such schedulers among those attached to it (:func:`~.contract.erasing_schedulers`) and
    warns once, naming them. Express such schedules with MultiplicativeLR (factor
    ``λ(t)/λ(t−1)``) to compose them.

    Example:
        >>> model = torch.nn.Linear(4, 1)
        >>> opt = ComposedOptimizer(model.parameters(), rule="adam", controller="hypergradient", lr=1e-3)
    """

    _PICKLED = ("rule", "controller", "_warned_schedule")

    def __init__(self, params: Any, rule: str | Rule = "sgd", controller: str | LRController = "constant",
                 lr: float = 1e-3, lr_optimizer: str = "sgd", **hyperparameters: Any) -> None:
        self.rule = make_rule(rule) if isinstance(rule, str) else rule
        if isinstance(controller, str):
            options = {"lr_optimizer": lr_optimizer} if controller == "hypergradient" else {}
            controller = make_controller(controller, **options)
        self.controller = controller
        self._warned_schedule = False
        self._rebuild_caches()
        defaults = {"lr": lr, "fused": None, "compiled": None, **TORCH_KEYWORDS, **self.rule.defaults,
                    **self.controller.defaults}
        unknown = sorted(set(hyperparameters) - set(defaults))
        if unknown:
            raise ValueError(
                f"Unknown hyperparameter(s) {', '.join(unknown)} for rule {self.rule.name!r} with controller "
                f"{self.controller.name!r}; valid: {', '.join(sorted(defaults))}")
        defaults.update(hyperparameters)
        check_hyperparameters(defaults)
        super().__init__(params, defaults)

    def _owner(self) -> str:
        return f"{type(self).__name__} (rule {self.rule.name!r}, controller {self.controller.name!r})"

    def add_param_group(self, param_group: dict[str, Any]) -> None:
        """Validate the group (values, torch keywords, real params, ``fused=True``) before adding it."""
        own = {key: value for key, value in param_group.items() if key != "params"}
        check_hyperparameters(own)
        merged = {**self.defaults, **own}
        check_torch_keywords(merged, self._owner())
        if merged["fused"] is True and (not self.rule.fused or wants_reference_loop({**merged, "fused": None})):
            raise ValueError(f"Invalid fused value: True for {self._owner()} (valid: None or False; a fused path "
                             "needs a rule that has one and neither maximize nor foreach=False)")
        params = param_group["params"]
        param_group["params"] = [params] if isinstance(params, Tensor) else list(params)
        check_params([param_group], self._owner())
        kernels.check_compiled(merged["compiled"], param_group["params"])
        super().add_param_group(param_group)
        if self.controller.device_lr:
            # α lives on the device from the start, so it has one type for the whole run.
            group = self.param_groups[-1]
            device = group["params"][0].device if group["params"] else torch.device("cpu")
            group["lr"] = device_scalar(group["lr"], device)

    @torch.no_grad()
    def step(self, closure: Closure | None = None, *, loss: Any = None) -> Any:
        """One update of every param with a gradient; returns the closure's loss (or ``loss``)."""
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        loss_value = _loss_float(loss) if loss is not None and self.controller.needs_loss else None
        for group in self.param_groups:
            self._step_group(group, loss_value)
        return loss

    def _step_group(self, group: Group, loss: float | None) -> None:
        params = [p for p in group["params"] if p.grad is not None]
        if not params:
            return
        if any(p.grad.is_sparse for p in params):  # before anything else reads the grads' layout
            raise RuntimeError(SPARSE_MESSAGE)
        weight_decay, maximize = group["weight_decay"], group.get("maximize", False)
        grads = EffectiveGrads(params, lambda p: effective_grad(p, weight_decay, maximize))
        states = [self.state[p] for p in params]
        group_step = group["step_count"] = group.get("step_count", 0) + 1
        tracing = kernels.tracing()  # then the reference loop runs: see kernels.tracing
        if self.controller.device_lr:
            if not tracing:
                self._check_schedule(group)
            group["lr"] = device_scalar(group["lr"], params[0].device)
        # One scan of the params serves both the fused path and the compiled kernels.
        dense = not tracing and not wants_reference_loop(group) and kernels.uniform_dense(params)
        fast = dense and self.rule.fused and kernels.kernels_exact(params[0])
        if group["fused"] and not fast and not tracing:
            raise RuntimeError(f"fused=True needs dense contiguous float32/float64 params of one device and a rule "
                               f"with a fused path; got rule {self.rule.name!r}")
        compiled = dense and kernels.wanted(group.get("compiled"), params, group_step)
        signals = StepSignals(params, grads, loss, compiled=compiled)
        if self.controller.needs_previous_direction:
            h, scale, d_norm = self._hypergradient(group, params, grads, states, group_step, fast or compiled, compiled)
            signals = StepSignals(params, grads, loss, h, scale, compiled, d_norm)
        alpha = group["lr"] = self.controller.next_lr(group, signals, self.rule)
        if isinstance(alpha, Tensor) and not tracing:
            group["lr_version"] = alpha._version  # a scheduler's fill_() bumps it: see _check_schedule
        keep = self.controller.needs_previous_direction and not self.rule.rebuilds_previous_direction(group)
        # One compiled pass where eager needs several: rules without a torch fused kernel, and SGD
        # when d_t must be kept (torch's fused SGD cannot write it).
        if compiled and (not fast or keep) and self.rule.compiled_update(params, states, group, alpha, keep):
            pass
        elif fast:
            self._fast_update(group, params, states, alpha)
        else:
            self._reference_update(group, params, grads, states, alpha)
        if self.controller.needs_previous_direction:
            for state in states:
                state["updated_at"] = group_step

    def _check_schedule(self, group: Group) -> None:
        """Warn once when an attached scheduler recomputes lr from ``initial_lr`` (it undoes the adaptation).

        α is written by this optimizer only as a fresh tensor, so a changed version counter (a
        scheduler's in-place ``fill_``) or a float (set by hand) marks an outside write. At the
        first one, the attached schedulers are classified by type (values cannot tell a
        LambdaLR from a chainable scheduler); nothing is read from the device.
        """
        lr = group["lr"]
        if self._schedules_checked or "lr_version" not in group or (
                isinstance(lr, Tensor) and lr._version == group["lr_version"]):
            return
        self._schedules_checked = True
        erasing = erasing_schedulers(self)
        if erasing and not self._warned_schedule:
            self._warned_schedule = True
            warnings.warn(SCHEDULE_WARNING.format(schedulers="; ".join(erasing), controller=self.controller.name),
                          UserWarning, stacklevel=6)

    def _rebuild_caches(self) -> None:
        # A copy is attached to no scheduler yet: it looks again at its first outside write.
        self._schedules_checked = False

    def _reference_update(self, group: Group, params: list[Tensor], grads: EffectiveGrads,
                          states: list[dict[str, Any]], alpha: float | Tensor) -> None:
        keep = self.controller.needs_previous_direction and not self.rule.rebuilds_previous_direction(group)
        step_size = -alpha
        for param, grad, state in zip(params, grads, states):
            direction = self.rule.direction(param, grad, state, group)
            descend_(param, direction, step_size)
            if keep:
                _store_direction(state, direction)

    def _fast_update(self, group: Group, params: list[Tensor], states: list[dict[str, Any]],
                     alpha: float | Tensor) -> None:
        raw_grads = [p.grad for p in params]  # the fused kernels apply weight decay themselves
        keep = self.controller.needs_previous_direction and not self.rule.rebuilds_previous_direction(group)
        self.rule.fused_update(params, raw_grads, states, group, alpha, keep)

    def _hypergradient(self, group: Group, params: list[Tensor], grads: EffectiveGrads, states: list[dict[str, Any]],
                       group_step: int, fast: bool,
                       compiled: bool) -> tuple[Tensor | None, Tensor | float, Tensor | None]:
        """(h_t, ‖g_t‖‖d_{t-1}‖ or 1, ‖d_{t-1}‖ where the fast path reduced it) as device tensors (no host sync)."""
        # A param skipped at step t-1 (no grad) did not move then: its d_{t-1} is zero.
        usable = [state.get("updated_at") == group_step - 1 for state in states]
        if not any(usable):
            return None, 1.0, None
        if not fast:
            pairs = [(g, self._previous_direction(s, group)) for g, s, use in zip(grads, states, usable) if use]
            h, scale = hypergradient_terms(pairs, self._normalised(group))
            return h, scale, _direction_norm([d for _, d in pairs]) if self._normalised(group) else None
        raw_grads = [p.grad for p in params]
        normalised = self._normalised(group)
        if normalised:  # h and both norms in one pass, where the rule has one
            terms = self.rule.fused_direction_terms(raw_grads, params, states, group, usable, compiled)
            if terms is not None:
                h, g_sq, d_sq = terms
                d_norm = torch.sqrt(d_sq.double())
                return h, torch.sqrt(g_sq.double()) * d_norm, d_norm
        dots = self.rule.fused_direction_dots(raw_grads, params, states, group, usable, compiled)
        if dots is None:  # every param with a d_{t-1} is empty: nothing to reduce
            return None, 1.0, None
        if not normalised:
            return dots, 1.0, None
        previous = [self._previous_direction(s, group) if use else None for s, use in zip(states, usable)]
        dtype = torch.promote_types(params[0].dtype, torch.float32)
        g_sq = torch.stack([_square_sum(g, dtype) for g, use in zip(grads, usable) if use]).sum()
        d_sq = torch.stack([_square_sum(d, dtype) for d in previous if d is not None]).sum()
        d_norm = torch.sqrt(d_sq.double())
        return dots.to(dtype), torch.sqrt(g_sq.double()) * d_norm, d_norm

    def _normalised(self, group: Group) -> bool:
        """Whether the controller reads ‖g_t‖‖d_{t-1}‖ (HDM, or a controller that declares it needs it)."""
        return group.get("multiplicative", False) or getattr(self.controller, "needs_direction_scale", False)

    def _previous_direction(self, state: dict[str, Any], group: Group) -> Tensor | None:
        stored = state.get("previous_direction")
        return stored if stored is not None else self.rule.previous_direction(state, group)

    def telemetry(self) -> dict[str, float]:
        """Per group ``i``: ``lr/g{i}`` and the controller's scalars, as plain floats."""
        values: dict[str, float] = {}
        for index, group in enumerate(self.param_groups):
            values[f"lr/g{index}"] = float(group["lr"])
            for key, value in self.controller.telemetry(group).items():
                values[f"{key}/g{index}"] = value
        return values


def device_scalar(value: float | Tensor, device: torch.device) -> Tensor:
    """``value`` as a float64 0-dim tensor on ``device`` (α in a float64 tensor steps as a float α does)."""
    if isinstance(value, Tensor) and value.device == device and value.dtype == torch.float64 and value.ndim == 0:
        return value
    return torch.as_tensor(value, dtype=torch.float64).reshape(()).to(device)


def descend_(param: Tensor, direction: Tensor, step_size: float | Tensor) -> None:
    """``θ ← θ + step_size·d`` (step_size = −α); a 0-dim tensor step equals the float one bit for bit."""
    if isinstance(step_size, Tensor):
        # addcmul_ with a 0-dim factor rounds as add_(alpha=) does (both fuse the multiply-add).
        param.addcmul_(direction, step_size if step_size.device == param.device else step_size.to(param.device))
    else:
        param.add_(direction, alpha=step_size)


def _store_direction(state: dict[str, Any], direction: Tensor) -> None:
    stored = state.get("previous_direction")
    if stored is None:
        state["previous_direction"] = direction.detach().clone(memory_format=torch.preserve_format)
    else:
        stored.copy_(direction)


SPARSE_MESSAGE = ("gradretention optimizers do not support sparse gradients; use torch.optim.SparseAdam "
                  "or a dense embedding (nn.Embedding(sparse=False))")


def effective_grad(param: Tensor, weight_decay: float, maximize: bool = False) -> Tensor:
    """``±grad + weight_decay·θ`` out of place (``p.grad`` is never written); sparse grads are refused.

    With ``maximize`` the gradient is negated first, as torch.optim does (then the decay is added).
    """
    grad = param.grad
    if grad.is_sparse:
        raise RuntimeError(SPARSE_MESSAGE)
    if maximize:
        grad = -grad
    return grad.add(param, alpha=weight_decay) if weight_decay != 0 else grad


def _direction_norm(directions: list[Tensor]) -> Tensor:
    """‖d_{t-1}‖ over the params that have one, as a float64 scalar on the first one's device."""
    dtype, device = torch.promote_types(directions[0].dtype, torch.float32), directions[0].device
    return torch.sqrt(torch.stack([_square_sum(d, dtype).to(device, torch.float64) for d in directions]).sum())


def _square_sum(tensor: Tensor, dtype: torch.dtype) -> Tensor:
    """``Σ x²`` as one dot product (``square().sum()`` would write and read back a temporary)."""
    flat = tensor.reshape(-1).to(dtype)
    return torch.dot(flat, flat)


def _loss_float(loss: Any) -> float:
    return float(loss.detach()) if isinstance(loss, Tensor) else float(loss)
