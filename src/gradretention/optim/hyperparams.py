"""Validation of hyperparameters: one table, one message shape.

Every optimizer of ours (and the registry, for the torch baselines) checks its
hyperparameters here before ``super().__init__``, so a bad value always reads
``Invalid momentum value: -0.1 (valid: >= 0)``.
"""

from __future__ import annotations

import math
from typing import Any, Callable

_Check = tuple[Callable[[Any], bool], str]


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _at_least(low: float) -> _Check:
    return (lambda v: _number(v) and v >= low), f">= {low:g}"


def _half_open(low: float, high: float) -> _Check:
    return (lambda v: _number(v) and low <= v < high), f"in [{low:g}, {high:g})"


def _closed(low: float, high: float) -> _Check:
    return (lambda v: _number(v) and low <= v <= high), f"in [{low:g}, {high:g}]"


def _positive() -> _Check:
    return (lambda v: _number(v) and v > 0), "> 0"


def _pair(check: _Check) -> _Check:
    test, text = check
    return (lambda v: isinstance(v, (tuple, list)) and len(v) == 2 and all(test(x) for x in v)), f"a pair of numbers each {text}"


def _bounds(value: Any) -> bool:
    if value is None:
        return True
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(_number(x) for x in value) and value[0] <= value[1]


def _bool(value: Any) -> bool:
    return isinstance(value, bool)


def _optional_positive(value: Any) -> bool:
    return value is None or (_number(value) and value > 0)


def _etas(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_number, value)) and 0 < value[0] < 1 < value[1]


def _step_sizes(value: Any) -> bool:
    return isinstance(value, (tuple, list)) and len(value) == 2 and all(map(_number, value)) and 0 < value[0] <= value[1]


def _seed(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


REWARDS = ("advantage", "spec")
"""EnhancedSGD's controllers: the advantage learner (default) and the spec's original."""

# name -> (check, text of the valid range). Names follow torch.optim and the reference code.
HYPERPARAMETER_RANGES: dict[str, _Check] = {
    "lr": _at_least(0.0),
    "momentum": _at_least(0.0),
    "dampening": _closed(0.0, 1.0),
    "weight_decay": _at_least(0.0),
    "nesterov": (_bool, "True or False"),
    "betas": _pair(_half_open(0.0, 1.0)),
    "eps": _at_least(0.0),
    "lr_decay": _at_least(0.0),
    "initial_accumulator_value": _at_least(0.0),
    "alpha": _at_least(0.0),
    "centered": (_bool, "True or False"),
    "amsgrad": (_bool, "True or False"),  # torch's Adam/AdamW only: the composed Adam rule has no such key
    "hypergrad_lr": _at_least(0.0),
    "hypergrad_momentum": _half_open(0.0, 1.0),
    "hypergrad_betas": _pair(_half_open(0.0, 1.0)),
    "hypergrad_eps": _positive(),
    "lr_bounds": (_bounds, "None or (low, high) with low <= high"),
    "multiplicative": (_bool, "True or False"),
    # Log-hypergradient controller: c = cosine_offset, s = loss_spike (0: no safeguard), ρ = loss_smoothing.
    "cosine_offset": _closed(0.0, 1.0),
    "loss_spike": _at_least(0.0),
    "loss_smoothing": _half_open(0.0, 1.0),
    # Safeguard shared by the log-α laws: α ≤ τ‖θ‖/‖d‖ (None: off).
    "trust_ratio": (_optional_positive, "None (no cap) or > 0"),
    # Rprop on log α (torch.optim.Rprop's names): factors (η⁻, η⁺) and bounds (η_min, η_max) of the log step.
    "etas": (_etas, "(etaminus, etaplus) with 0 < etaminus < 1 < etaplus"),
    "step_sizes": (_step_sizes, "(low, high) with 0 < low <= high"),
    # Log-α laws' signal statistics (controllers/signal_statistics.py): EMA weight, z-test's k (0: off),
    # consecutive loss spikes before a halving, and the stacked law's hyper-hypergradient step γ.
    "signal_smoothing": _half_open(0.0, 1.0),
    "significance": _at_least(0.0),
    "spike_patience": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "hyper_hypergrad_lr": _at_least(0.0),
    "fused": (lambda v: v is None or isinstance(v, bool), "None, True or False"),
    "compiled": (lambda v: v is None or isinstance(v, bool), "None, True or False"),
    # torch.optim's implementation keywords (contract.py says what each means here).
    "foreach": (lambda v: v is None or isinstance(v, bool), "None, True or False"),
    "maximize": (_bool, "True or False"),
    "capturable": (_bool, "True or False"),
    "differentiable": (_bool, "True or False"),
    # Variance controller (specs/algorithms.md §2.2); κ <= 1 keeps the factor 1 − κ·r_t >= 0.
    "variance_smoothing": _half_open(0.0, 1.0),
    "lr_scaling": _closed(0.0, 1.0),
    "min_factor": _closed(0.0, 1.0),
    "max_factor": _at_least(1.0),
    # RescaledSGD (§3); base_lr <= lr is checked by the class, which sees both.
    "base_lr": _at_least(0.0),
    "decay": _closed(0.0, 1.0),
    "retain_min": (_bool, "True or False"),
    "update": (lambda v: v in ("sign", "magnitude"), "'sign' or 'magnitude'"),
    # EnhancedSGD (§4).
    "clip_factor": (_optional_positive, "None (no clipping) or > 0"),
    "noise_scale": _at_least(0.0),
    "centering": (_bool, "True or False"),
    "q_lr": _closed(0.0, 1.0),
    "discount": _half_open(0.0, 1.0),
    "epsilon": _closed(0.0, 1.0),
    "epsilon_decay": _closed(0.0, 1.0),
    "epsilon_min": _closed(0.0, 1.0),
    "nudge": _half_open(0.0, 1.0),
    "spike_factor": _at_least(1.0),
    "bayesian_init_std": _at_least(0.0),
    "seed": (_seed, "an integer >= 0"),
    "reward": (lambda v: v in REWARDS, " or ".join(repr(r) for r in ("advantage", "spec"))),
    "q_interval": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
}


def check_hyperparameter(name: str, value: Any) -> None:
    """Raise ``ValueError`` naming ``name``, its value and the valid range when out of range."""
    check = HYPERPARAMETER_RANGES.get(name)
    if check is None:
        return
    test, valid = check
    if not test(value):
        raise ValueError(f"Invalid {name} value: {value!r} (valid: {valid})")


def check_hyperparameters(values: dict[str, Any]) -> None:
    for name, value in values.items():
        check_hyperparameter(name, value)
