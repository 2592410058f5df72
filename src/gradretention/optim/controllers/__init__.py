"""Learning-rate controllers: each computes one α per param group before the update.

One module per controller, each a pure law behind :class:`~gradretention.optim.base.LRController`.
Adding a controller: one module here, one entry in :data:`CONTROLLERS` and one registry row.
"""

from __future__ import annotations

from typing import Callable

from gradretention.optim.base import LRController, StepSignals
from gradretention.optim.controllers.constant import ConstantController
from gradretention.optim.controllers.hypergradient import LR_OPTIMIZERS, HypergradientController
from gradretention.optim.controllers.log_hypergradient import LogHypergradientController
from gradretention.optim.controllers.variance import VarianceController

CONTROLLERS: dict[str, Callable[..., LRController]] = {
    "constant": ConstantController,
    "hypergradient": HypergradientController,
    "log_hypergradient": LogHypergradientController,
    "variance": VarianceController,
}


def make_controller(name: str, **options: object) -> LRController:
    """The controller called ``name`` (``options`` go to its constructor, e.g. ``lr_optimizer``)."""
    if name not in CONTROLLERS:
        raise ValueError(f"Unknown controller {name!r}; valid controllers: {', '.join(sorted(CONTROLLERS))}")
    return CONTROLLERS[name](**options)


__all__ = ["CONTROLLERS", "LR_OPTIMIZERS", "ConstantController", "HypergradientController", "LRController",
           "LogHypergradientController", "StepSignals", "VarianceController", "make_controller"]
