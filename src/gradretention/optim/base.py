"""The two protocols of the composition: a base rule (the direction) × an lr controller (α).

``θ_t = θ_{t-1} − α_t · d_t``: a :class:`Rule` turns gradients into the direction ``d_t`` (no
learning rate in it) and an :class:`LRController` computes α_t for a param group before the
update. :class:`~gradretention.optim.composed.ComposedOptimizer` runs any pair; it never asks
a rule or a controller for its name: what it may do is what they declare here.

A rule declares its fast paths through hooks: ``fused`` (whether :meth:`Rule.fused_update`
and :meth:`Rule.fused_direction_dots` exist, with torch's fused kernels), and
:meth:`Rule.compiled_update` (one Inductor pass; False where the rule has none). A controller
declares what it needs: ``needs_previous_direction`` (the hypergradient ``Σ⟨g_t, d_{t-1}⟩``),
``needs_loss`` (the step's loss, from ``step(closure)`` or ``step(loss=...)``) and
``device_lr`` (α is a device scalar, never read back by the step).
"""

from __future__ import annotations

from dataclasses import dataclass
from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol

from torch import Tensor

State = dict[str, Any]
Group = dict[str, Any]


class Rule(Protocol):
    """A base update rule: the direction ``d_t`` and its state, with torch's state key names."""

    name: str
    defaults: dict[str, Any]
    #: whether :meth:`fused_update` and :meth:`fused_direction_dots` run torch's fused kernels.
    fused: bool

    def direction(self, param: Tensor, grad: Tensor, state: State, group: Group) -> Tensor:
        """Update the rule's state with ``grad`` and return ``d_t`` (the reference loop)."""
        ...

    def previous_direction(self, state: State, group: Group) -> Tensor | None:
        """``d_{t-1}`` rebuilt from the state *before* this step's update, or None if not rebuildable."""
        ...

    def rebuilds_previous_direction(self, group: Group) -> bool:
        """Whether :meth:`previous_direction` works for this group (else a copy of d_t is kept)."""
        ...

    def fused_update(self, params: list[Tensor], grads: list[Tensor], states: list[State], group: Group,
                     alpha: float | Tensor, keep: bool) -> None:
        """θ ← θ − α·d_t for the group with torch's fused kernels (raw grads; d_t kept with ``keep``)."""
        ...

    def fused_direction_dots(self, grads: list[Tensor], params: list[Tensor], states: list[State], group: Group,
                             usable: list[bool], use_compiled: bool) -> Tensor | None:
        """``Σ⟨g_t + wd·θ, d_{t-1}⟩`` over the usable params as a device scalar, from raw grads (None:
        nothing to sum). Runs on the fused and compiled paths; the reference path reduces
        :meth:`previous_direction` pairs itself."""
        ...

    def fused_direction_terms(self, grads: list[Tensor], params: list[Tensor], states: list[State], group: Group,
                              usable: list[bool], use_compiled: bool) -> tuple[Tensor, Tensor, Tensor] | None:
        """``(h, Σ‖g_t + wd·θ‖², Σ‖d_{t-1}‖²)`` over the usable params in one pass, as device scalars,
        for a controller that needs ``‖g_t‖‖d_{t-1}‖``; None where the rule has no such pass (the
        optimizer then takes :meth:`fused_direction_dots` and reduces the norms itself)."""
        ...

    def compiled_update(self, params: list[Tensor], states: list[State], group: Group, alpha: float | Tensor,
                        keep: bool) -> bool:
        """The update as one compiled pass; False (nothing written) where the rule has none or it cannot run."""
        ...


class EffectiveGrads(Sequence[Tensor]):
    """The effective gradients ``g_t = ±grad + wd·θ`` of a group's params, formed on first read.

    The fused and compiled paths apply the decay inside their kernels, so with weight decay an
    eager list would cost a pass over memory (read g, θ; write g_t) that nothing reads when the
    controller does not look at the gradients (the hypergradient's fast path).
    """

    def __init__(self, params: list[Tensor], make: Callable[[Tensor], Tensor]) -> None:
        self._params, self._make, self._values = params, make, None

    def _all(self) -> list[Tensor]:
        if self._values is None:
            self._values = [self._make(param) for param in self._params]
        return self._values

    def __len__(self) -> int:
        return len(self._params)

    def __getitem__(self, index):  # noqa: ANN001, ANN204 - Sequence's int/slice overloads
        return self._all()[index]

    def __iter__(self) -> Iterator[Tensor]:
        return iter(self._all())


@dataclass(frozen=True)
class StepSignals:
    """What a controller may look at for one group at step t.

    ``grads`` are the effective gradients ``g_t`` (after coupled weight decay); ``loss`` the
    loss of this step when the caller passed one. For controllers that set
    ``needs_previous_direction``, the optimizer also reduces ``hypergradient``
    ``h_t = Σ⟨g_t, d_{t-1}⟩`` (None when no param has a d_{t-1}) and, for the multiplicative
    form (``multiplicative=True``, or a controller with ``needs_direction_scale = True``),
    ``direction_scale = ‖g_t‖·‖d_{t-1}‖`` (else 1), both as device scalars, and with them
    ``direction_norm = ‖d_{t-1}‖`` (float64; None for the additive form), which the fused paths
    reduce in the same pass, so a controller that needs it alone reads no gradient again. ``compiled`` says
    whether the group's compiled kernels run at this step (:mod:`.kernels`): a controller may
    then take its reductions through them.
    """

    params: list[Tensor]
    grads: Sequence[Tensor]
    loss: float | None
    hypergradient: Tensor | None = None
    direction_scale: Tensor | float = 1.0
    compiled: bool = False
    direction_norm: Tensor | None = None


class LRController(Protocol):
    """A learning-rate law: α_t for one group, computed before the parameters move.

    It writes α to ``group["lr"]`` (so torch LR schedulers, which scale ``group["lr"]``,
    compose with it) and keeps its own state as scalars in the group dict, so it
    round-trips through ``Optimizer.state_dict()`` exactly.
    """

    name: str
    defaults: dict[str, Any]
    #: whether the hypergradient ``Σ⟨g_t, d_{t-1}⟩`` must be reduced (costs a pass over memory).
    needs_previous_direction: bool
    #: whether the step's loss must be passed (``step(closure)`` or ``step(loss=...)``).
    needs_loss: bool
    #: whether α is adapted on the device: ``group["lr"]`` is then a float64 0-dim tensor on the
    #: params' device, read by the host only when asked (``telemetry()``, ``float(group["lr"])``).
    device_lr: bool

    def next_lr(self, group: Group, signals: StepSignals, rule: Rule) -> Any:
        """α_t (a float, or a 0-dim tensor with ``device_lr``); updates the controller scalars in ``group``."""
        ...

    def telemetry(self, group: Group) -> dict[str, float]:
        """The controller's scalars as plain floats, for logs and the GUI."""
        ...
