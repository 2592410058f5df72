"""Base update rules: each turns gradients into a *direction* ``d_t`` with no learning rate in it.

One module per rule, each holding its reference loop beside its fused and compiled twins, as
torch keeps ``adam.py``. Each rule equals its ``torch.optim`` twin step for step (float64 oracle
tests) and keeps its state under torch's key names. Adding a rule: one module here implementing
:class:`~gradretention.optim.base.Rule`, one entry in :data:`RULES` and one row in the registry.
"""

from __future__ import annotations

from typing import Callable

from gradretention.optim.base import Rule
from gradretention.optim.rules.adagrad import AdagradRule
from gradretention.optim.rules.adam import AdamRule
from gradretention.optim.rules.rmsprop import RMSpropRule
from gradretention.optim.rules.sgd import SGDRule

RULES: dict[str, Callable[[], Rule]] = {
    "sgd": SGDRule,
    "sgdn": lambda: SGDRule(nesterov_default=True),
    "adam": AdamRule,
    "adagrad": AdagradRule,
    "rmsprop": RMSpropRule,
}
RULE_NAMES: tuple[str, ...] = tuple(RULES)


def make_rule(name: str) -> Rule:
    """The base rule called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in RULES:
        raise ValueError(f"Unknown base rule {name!r}; valid rules: {', '.join(sorted(RULES))}")
    return RULES[name]()


__all__ = ["RULES", "RULE_NAMES", "AdagradRule", "AdamRule", "RMSpropRule", "SGDRule", "make_rule"]
