"""Base update rules: each turns gradients into a *direction* ``d_t`` with no learning rate in it.

One module per rule, each holding its reference loop beside its fused and compiled twins, as
torch keeps ``adam.py``. Each rule equals its ``torch.optim`` twin step for step (float64 oracle
tests) and keeps its state under torch's key names. Adding a rule is one new module here that
implements :class:`~gradretention.optim.base.Rule` and ends with ``RULES = {"name": Class}``
(collected below), plus one row in the registry's ``RULE_ROWS``.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Callable

from gradretention.optim.base import Rule


def _collect() -> dict[str, Callable[[], Rule]]:
    found: dict[str, Callable[[], Rule]] = {}
    for module in sorted(info.name for info in pkgutil.iter_modules(__path__)):
        found.update(getattr(importlib.import_module(f"{__name__}.{module}"), "RULES", {}))
    return found


RULES: dict[str, Callable[[], Rule]] = _collect()
RULE_NAMES: tuple[str, ...] = tuple(RULES)


def make_rule(name: str) -> Rule:
    """The base rule called ``name``; ``ValueError`` listing the valid names otherwise."""
    if name not in RULES:
        raise ValueError(f"Unknown base rule {name!r}; valid rules: {', '.join(sorted(RULES))}")
    return RULES[name]()


__all__ = ["RULES", "RULE_NAMES", "make_rule"]
