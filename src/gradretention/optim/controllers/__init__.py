"""Learning-rate controllers: each computes one α per param group before the update.

One module per controller, each a pure law behind :class:`~gradretention.optim.base.LRController`.
Adding a controller is one new module here that ends with ``CONTROLLERS = {"name": Class}``
(collected below), plus one row in the registry's ``CONTROLLER_ROWS``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from gradretention.optim.base import LRController, StepSignals
from gradretention.optim.controllers.constant import ConstantController
from gradretention.optim.controllers.hypergradient import LR_OPTIMIZERS, HypergradientController
from gradretention.optim.controllers.log_hypergradient import LogHypergradientController
from gradretention.optim.controllers.variance import VarianceController


def _collect() -> dict[str, Callable[..., LRController]]:
    found: dict[str, Callable[..., LRController]] = {}
    for module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
        found.update(getattr(importlib.import_module(f"{__name__}.{module}"), "CONTROLLERS", {}))
    return found


CONTROLLERS: dict[str, Callable[..., LRController]] = _collect()


def make_controller(name: str, **options: object) -> LRController:
    """The controller called ``name`` (``options`` go to its constructor, e.g. ``lr_optimizer``)."""
    if name not in CONTROLLERS:
        raise ValueError(f"Unknown controller {name!r}; valid controllers: {', '.join(sorted(CONTROLLERS))}")
    return CONTROLLERS[name](**options)


__all__ = ["CONTROLLERS", "LR_OPTIMIZERS", "ConstantController", "HypergradientController", "LRController",
           "LogHypergradientController", "StepSignals", "VarianceController", "make_controller"]
