"""Learning-rate controllers: each computes one α per param group before the update."""

from gradretention.optim.controllers.base import ConstantController, LRController, StepSignals
from gradretention.optim.controllers.hypergradient import LR_OPTIMIZERS, HypergradientController

__all__ = ["ConstantController", "HypergradientController", "LRController", "LR_OPTIMIZERS", "StepSignals"]
