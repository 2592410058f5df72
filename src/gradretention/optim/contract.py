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
  it cannot be captured in a CUDA graph with a host-side schedule, nor differentiated through).
"""

from __future__ import annotations

from typing import Any

import torch

TORCH_KEYWORDS: dict[str, Any] = {"foreach": None, "maximize": False, "capturable": False, "differentiable": False}
"""torch.optim's implementation keywords that our optimizers accept, with their defaults."""

UNSUPPORTED = {
    "capturable": "CUDA-graph capture is not supported: the controllers keep host-side state",
    "differentiable": "differentiating through the step is not supported: the controllers read the step's "
                      "statistics as constants",
}


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
