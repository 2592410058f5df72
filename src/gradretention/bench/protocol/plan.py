"""Which tuner each (task, label) gets, from the sweep's settings and the spec itself."""

from __future__ import annotations

import torch

from gradretention.bench.config import SweepConfig
from gradretention.bench.protocol.grid import DEFAULT_HIGH, DEFAULT_LOW, GridSearch, initial_grid
from gradretention.bench.protocol.tuning import FixedTuner, GridTuner, Planner, Scoring, Tuner
from gradretention.optim import create_optimizer, optimizer_info, parse_spec
from gradretention.tasks.registry import get_task


def default_lr(spec: str, lr: float | None = None) -> float:
    """The initial lr ``spec`` trains with (its own, else the registry default).

    Raises:
        ValueError: the spec (or ``lr``) is invalid, naming the value and its range.
    """
    probe = torch.nn.Parameter(torch.zeros(1))
    optimizer = create_optimizer(spec, [probe], **({} if lr is None else {"lr": lr}))
    return float(optimizer.param_groups[0]["lr"])


def spec_fixes_lr(spec: str) -> bool:
    """Whether ``spec`` sets its lr (``sgd_hd_adam[lr=0.01]``): such an lr is never tuned."""
    return "lr" in parse_spec(spec)[1]


def is_lr_free(spec: str) -> bool:
    """Whether ``spec`` is a learning-rate-free method (Prodigy, D-Adaptation, DoG), run at lr = 1
    with no grid as its paper says (under the budget protocol its lr is searched around 1)."""
    return bool(optimizer_info(spec).get("lr_free", False))


LR_FREE_REASON = "learning-rate-free: lr = 1 as its authors run it, not tuned (0 tuning runs)"


def lr_grid(config: SweepConfig, spec: str) -> tuple[float, ...]:
    """The first grid ``spec`` is scored on: ``lrs``; else ``lr_factors`` × its default lr
    (``()``: the default alone); else the half-decade grid ``lr_low .. lr_high``.

    Raises:
        ValueError: a grid lr out of the optimizer's range, naming it.
    """
    if config.lrs:
        return tuple(sorted({default_lr(spec, lr) for lr in config.lrs}))
    if config.lr_factors is not None:
        base = default_lr(spec)
        # Rounded to 12 significant digits so that 0.3 * 0.001 reads 0.0003 in tables.
        return tuple(sorted({float(f"{base * factor:.12g}") for factor in config.lr_factors})) or (base,)
    grid = initial_grid(config.lr_low or DEFAULT_LOW, config.lr_high or DEFAULT_HIGH)
    for lr in grid:
        default_lr(spec, lr)  # every point within the optimizer's range, checked before training
    return grid


def scoring_for(config: SweepConfig, task: str, label: str) -> Scoring:
    """How ``label`` is scored on ``task``: ``val_<target metric>``, over the config's seeds."""
    target = get_task(task).target_metric
    return Scoring(task, label, f"val_{target}", target != "loss", config.tuning_seeds(), config.final_seeds())


def make_tuner(config: SweepConfig, task: str, label: str, plan: Planner) -> Tuner:
    """The tuner of ``label`` on ``task``: fixed when the spec sets its lr or the grid is one
    point, else the grid or budget protocol.

    Raises:
        ValueError: a bad spec or grid lr, before any training.
    """
    scoring = scoring_for(config, task, label)
    if spec_fixes_lr(label):
        return FixedTuner(scoring, default_lr(label), "lr fixed by spec")
    if is_lr_free(label) and config.protocol != "budget":
        return FixedTuner(scoring, default_lr(label), LR_FREE_REASON)
    if config.protocol == "budget":
        from gradretention.bench.protocol.budget import BudgetTuner

        return BudgetTuner(scoring, label, config.trials or 0, plan, config.lr_low or DEFAULT_LOW,
                           config.lr_high or DEFAULT_HIGH)  # fmt: skip
    grid = lr_grid(config, label)
    if len(grid) == 1:
        reason = "one grid point: nothing to tune" if config.lrs else "no tuning (lr_factors=()): the default lr"
        return FixedTuner(scoring, grid[0], reason)  # not tuned: 'fixed', whatever fixed it
    listed = bool(config.lrs) or config.lr_factors is not None
    search = GridSearch(grid, bound=config.extend, extend=not listed, higher_is_better=scoring.higher_is_better)
    return GridTuner(scoring, search, plan)
