"""Presets and suites from the seed material, as plain data the sweep and the CLI expand.

A :class:`Preset` is a set of run settings applied to whatever task and optimizer the
user picks (``--preset seed-plan``). A :class:`PresetSuite` is a fixed list of
:class:`PresetRun` rows (task, optimizer spec, epochs, batch size, seeds); :func:`suite_runs`
returns them. Optimizer specs are canonical parametrized names
(``adam_hd[hypergrad_lr=1e-07,lr=0.001,weight_decay=0.0001]``), so every hyperparameter
is visible in results and legends.

=================  =========================================================================
``seed-plan``      seed 002's experiment plan: batch 32, lr 1e-3, weight decay 1e-4,
                   dropout 0.5, 50 epochs
``hd-paper``       Baydin et al. (ICLR 2018): mnist-logreg 20 epochs, mnist-mlp 100,
                   cifar10-vgg16 200; SGD, SGD-HD, SGDN, SGDN-HD, Adam, Adam-HD; α0 = 1e-3;
                   β = 1e-3 for SGD-HD / SGDN-HD, 1e-7 for Adam-HD on MNIST and 1e-8 on
                   CIFAR-10 VGG; momentum 0.9; batch 128; L2 1e-4; one seed
``variance-plan``  seed 002 on its four tasks (mnist-cnn, cifar10-resnet18, imdb-lstm,
                   squad-bert): SGD, Adagrad, RMSprop, Adam against ``adam_var``
                   (smoothing 0.9, scaling 0.1), with the seed-plan settings; 5 seeds
=================  =========================================================================

Example:
    >>> runs = suite_runs("hd-paper")
    >>> len(runs), runs[0].task, runs[0].optimizer
    (18, 'mnist-logreg', 'sgd[lr=0.001,weight_decay=0.0001]')
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TypeVar

from gradretention.optim import canonical_spec

T = TypeVar("T")


@dataclass(frozen=True)
class Preset:
    """Run settings applied to any task and optimizer.

    ``dropout`` is what the plan asks of "applicable models"; it is recorded, not applied:
    the zoo's dropout layers already use 0.5 (mnist-cnn's and cifar10-cnn's classifiers,
    VGG-16's classifier), and the other models have none (BERT heads keep 0.1).
    """

    name: str
    description: str
    batch_size: int
    lr: float
    weight_decay: float
    dropout: float
    epochs: int

    def optimizer_spec(self, spec: str) -> str:
        """``spec`` with this preset's lr and weight decay (values already in ``spec`` win)."""
        return with_defaults(spec, lr=self.lr, weight_decay=self.weight_decay)


@dataclass(frozen=True)
class PresetRun:
    """One row of a suite: ``task`` trained with ``optimizer`` on each seed."""

    task: str
    optimizer: str
    epochs: int
    batch_size: int
    seeds: tuple[int, ...]


@dataclass(frozen=True)
class PresetSuite:
    """A named, fixed experiment."""

    name: str
    description: str
    runs: tuple[PresetRun, ...]


def with_defaults(spec: str, **values: float) -> str:
    """The canonical form of ``spec`` with ``values`` added where ``spec`` does not set them.

    Example:
        >>> with_defaults("adam[lr=0.01]", lr=0.001, weight_decay=0.0001)
        'adam[lr=0.01,weight_decay=0.0001]'
    """
    from gradretention.optim.spec import format_spec, parse_spec

    name, given = parse_spec(spec)
    return canonical_spec(format_spec(name, {**values, **given}))


SEED_PLAN = Preset(
    name="seed-plan",
    description="seed 002's plan: batch 32, lr 1e-3, weight decay 1e-4, dropout 0.5, 50 epochs",
    batch_size=32,
    lr=1e-3,
    weight_decay=1e-4,
    dropout=0.5,
    epochs=50,
)

PRESETS: dict[str, Preset] = {SEED_PLAN.name: SEED_PLAN}


def _hd_paper_runs() -> tuple[PresetRun, ...]:
    # (task, epochs, Adam-HD β): the paper's three experiments with the β it used for Adam-HD.
    experiments = (("mnist-logreg", 20, 1e-7), ("mnist-mlp", 100, 1e-7), ("cifar10-vgg16", 200, 1e-8))
    common = {"lr": 1e-3, "weight_decay": 1e-4}
    runs = []
    for task, epochs, adam_beta in experiments:
        specs = (
            with_defaults("sgd", **common),
            with_defaults("sgd_hd", hypergrad_lr=1e-3, **common),
            with_defaults("nesterov", momentum=0.9, **common),
            with_defaults("sgdn_hd", hypergrad_lr=1e-3, momentum=0.9, **common),
            with_defaults("adam", **common),
            with_defaults("adam_hd", hypergrad_lr=adam_beta, **common),
        )
        runs += [PresetRun(task, spec, epochs, 128, (0,)) for spec in specs]
    return tuple(runs)


def _variance_plan_runs() -> tuple[PresetRun, ...]:
    tasks = ("mnist-cnn", "cifar10-resnet18", "imdb-lstm", "squad-bert")
    bases = ("sgd", "adagrad", "rmsprop", "adam")
    variance = with_defaults("adam_var", variance_smoothing=0.9, lr_scaling=0.1)
    specs = [SEED_PLAN.optimizer_spec(name) for name in (*bases, variance)]
    seeds = tuple(range(5))
    plan = SEED_PLAN
    return tuple(PresetRun(task, spec, plan.epochs, plan.batch_size, seeds) for task in tasks for spec in specs)


SUITES: dict[str, PresetSuite] = {
    suite.name: suite
    for suite in (
        PresetSuite(
            "hd-paper",
            "Baydin et al. 2018: logreg/MLP on MNIST, VGG-16 on CIFAR-10; SGD/SGDN/Adam with and without HD",
            _hd_paper_runs(),
        ),
        PresetSuite(
            "variance-plan",
            "seed 002: SGD, Adagrad, RMSprop, Adam vs adam_var on MNIST, CIFAR-10, IMDB, SQuAD; 5 seeds",
            _variance_plan_runs(),
        ),
    )
}


def _lookup(table: dict[str, T], kind: str, name: str) -> T:
    if name in table:
        return table[name]
    close = difflib.get_close_matches(name, list(table), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(sorted(table))}")


def get_preset(name: str) -> Preset:
    """The preset called ``name``; ValueError with a did-you-mean and the valid names otherwise."""
    return _lookup(PRESETS, "preset", name)


def suite_runs(name: str) -> list[PresetRun]:
    """The rows of suite ``name`` in order; ValueError listing the valid suites otherwise."""
    return list(_lookup(SUITES, "suite", name).runs)
