"""The parts of the ``torch.optim.Optimizer`` contract that every optimizer of ours keeps.

torch's own optimizers can be deep-copied and pickled, accept the keywords ``foreach``,
``maximize``, ``capturable``, ``differentiable`` and ``fused``, and refuse what they cannot do
when they are built. Ours keep that contract here, in one place:

- :class:`ContractMixin` keeps our extra attributes through ``copy.deepcopy`` and ``pickle``
  (torch's ``__getstate__`` keeps only ``defaults``, ``state`` and ``param_groups``, so an
  optimizer with a rule, a controller or a noise generator lost them and ``step()`` raised);
- :func:`check_params` refuses complex parameters at construction: our controllers reduce
  ``g²`` and ``⟨g, d⟩``, which for complex tensors must be ``|g|²`` and ``Re⟨g, d⟩``;
- :data:`TORCH_KEYWORDS` are torch's implementation switches with the meaning they have here:
  ``maximize`` ascends (every rule sees ``−∇``); ``foreach=False`` runs the per-tensor
  reference loop (as ``fused=False``), ``None``/``True`` let the fast paths run;
  ``capturable`` and ``differentiable`` must stay False (α is adapted from the gradients, so
  it cannot be captured in a CUDA graph with a host-side schedule, nor differentiated through);
- :func:`erasing_schedulers` names the torch LR schedulers attached to an optimizer that replace
  an adapted α instead of scaling it (:data:`RECOMPUTING_SCHEDULERS`), for the optimizer's
  once-only warning.
"""

from __future__ import annotations

import gc
from typing import Any

import torch
from torch.optim import lr_scheduler

TORCH_KEYWORDS: dict[str, Any] = {"foreach": None, "maximize": False, "capturable": False, "differentiable": False}
"""torch.optim's implementation keywords that our optimizers accept, with their defaults."""

UNSUPPORTED = {
    "capturable": "CUDA-graph capture is not supported: the controllers keep host-side state",
    "differentiable": "differentiating through the step is not supported: the controllers read the step's "
                      "statistics as constants",
}


RECOMPUTING_SCHEDULERS: dict[type, str] = {
    lr_scheduler.LambdaLR: "sets lr = initial_lr·λ(t) every step",
    lr_scheduler.OneCycleLR: "sets lr from initial_lr, max_lr and min_lr every step",
    lr_scheduler.CyclicLR: "sets lr between base_lr and max_lr every step",
    lr_scheduler.CosineAnnealingWarmRestarts: "sets lr from initial_lr in closed form every step",
}
"""torch's schedulers that compute lr from ``initial_lr`` and never read the current ``group["lr"]``,
so each step replaces the α a controller adapted. Every other torch scheduler (StepLR, MultiStepLR,
ExponentialLR, CosineAnnealingLR, LinearLR, ConstantLR, PolynomialLR, MultiplicativeLR,
ReduceLROnPlateau) multiplies the current ``group["lr"]`` and so scales the adapted α: it composes."""

SCHEDULE_WARNING = (
    "{schedulers}: it replaces the α that the {controller} controller adapted, which undoes the adaptation. "
    "Schedulers that recompute lr from initial_lr (LambdaLR, OneCycleLR, CyclicLR, "
    "CosineAnnealingWarmRestarts; SequentialLR at its milestones) do not compose with an adapted α; chainable "
    "ones (StepLR, MultiStepLR, ExponentialLR, CosineAnnealingLR, LinearLR, ConstantLR, PolynomialLR, "
    "MultiplicativeLR, ReduceLROnPlateau) scale it and compose. Express the schedule as MultiplicativeLR with "
    "factor λ(t)/λ(t-1) to keep both.")


def erasing_schedulers(optimizer: torch.optim.Optimizer) -> list[str]:
    """The LR schedulers attached to ``optimizer`` that overwrite ``group["lr"]`` from ``initial_lr``.

    Each entry reads ``"LambdaLR sets lr = initial_lr·λ(t) every step"``. Which scheduler wrote
    an lr cannot be told from the values (a MultiplicativeLR whose factor reads the optimizer can
    write any sequence), so schedulers are classified by type: they hold ``.optimizer``, and
    ``gc.get_referrers`` finds them (one scan of the heap, run by the optimizer once, when it
    first sees an outside write). SequentialLR and ChainedScheduler are looked into:
    SequentialLR restarts the scheduler of each milestone in closed form from ``initial_lr``.
    """
    found: list[str] = []
    for referrer in gc.get_referrers(optimizer):
        if isinstance(referrer, lr_scheduler.LRScheduler) and referrer.optimizer is optimizer:
            found.extend(_recomputing(referrer))
    return sorted(set(found))


def _recomputing(scheduler: Any) -> list[str]:
    found = [f"{type(scheduler).__name__} {reason}" for kind, reason in RECOMPUTING_SCHEDULERS.items()
             if isinstance(scheduler, kind)]
    children = getattr(scheduler, "_schedulers", [])
    if isinstance(scheduler, lr_scheduler.SequentialLR) and any(
            hasattr(child, "_get_closed_form_lr") for child in children[1:]):
        found.append("SequentialLR restarts its next scheduler from initial_lr at each milestone")
    for child in children:
        found.extend(_recomputing(child))
    return found


def check_torch_keywords(values: dict[str, Any], owner: str) -> None:
    """``ValueError`` for a torch keyword that ``owner`` cannot honour (``capturable``/``differentiable`` True)."""
    for key, reason in UNSUPPORTED.items():
        if values.get(key):
            raise ValueError(f"Invalid {key} value: True for {owner} (valid: False; {reason})")


def check_params(param_groups: list[dict[str, Any]], owner: str) -> None:
    """``ValueError`` naming the first complex param: our reductions assume real tensors.

    Args:
        param_groups: the groups as torch's ``add_param_group`` sees them (``params`` lists).
        owner: the optimizer's name, for the message.
    """
    for group in param_groups:
        for index, param in enumerate(group["params"]):
            if isinstance(param, torch.Tensor) and param.is_complex():
                raise ValueError(
                    f"{owner} does not support complex parameters (param {index} has dtype {param.dtype} and shape "
                    f"{tuple(param.shape)}): its controllers reduce g² and <g, d> as real numbers. Optimize "
                    "torch.view_as_real(param) instead, or use a torch.optim baseline")


def wants_reference_loop(group: dict[str, Any]) -> bool:
    """Whether a group must take the readable reference loop (``fused=False``, ``foreach=False`` or ``maximize``)."""
    return group["fused"] is False or group.get("foreach") is False or bool(group.get("maximize", False))


class ContractMixin:
    """``copy.deepcopy`` and ``pickle`` keep the attributes named in ``_PICKLED``; scratch is rebuilt.

    torch's ``Optimizer.__getstate__`` returns only ``defaults``, ``state`` and ``param_groups``.
    A subclass lists the other attributes its ``step()`` needs in ``_PICKLED`` and rebuilds
    caches (scratch buffers, warned-once flags) in :meth:`_rebuild_caches`.
    """

    _PICKLED: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__()  # type: ignore[misc]
        state.update({key: self.__dict__[key] for key in self._PICKLED if key in self.__dict__})
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)  # type: ignore[misc]
        self._rebuild_caches()

    def _rebuild_caches(self) -> None:
        """Recreate the attributes that are not pickled (none by default)."""
