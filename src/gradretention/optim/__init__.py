"""Drop-in ``torch.optim.Optimizer`` classes: base update rules × learning-rate controllers.

This package imports torch only — never the harness.
"""

from gradretention.optim.composed import ComposedOptimizer
from gradretention.optim.controllers.variance import VarianceController
from gradretention.optim.algorithms.enhanced import EnhancedSGD
from gradretention.optim.named import SGDHD, SGDNHD, Adagrad, AdamHD
from gradretention.optim.registry import (
    OptimizerEntry,
    available_peers,
    available_optimizers,
    canonical_spec,
    create_optimizer,
    optimizer_info,
    register_optimizer,
    resolved_hyperparameters,
)
from gradretention.optim.algorithms.retention import RescaledSGD
from gradretention.optim.spec import format_spec, parse_spec

__all__ = [
    "SGDHD", "SGDNHD", "Adagrad", "AdamHD", "ComposedOptimizer", "OptimizerEntry", "available_optimizers", "available_peers",
    "canonical_spec", "create_optimizer", "format_spec", "optimizer_info", "parse_spec", "register_optimizer",
    "resolved_hyperparameters", "EnhancedSGD", "RescaledSGD", "VarianceController",
]
