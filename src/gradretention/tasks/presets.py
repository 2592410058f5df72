"""Presets and suites from the seed material, as plain data the sweep and the CLI expand.

A :class:`Preset` is a set of run settings applied to whatever task and optimizer the
user picks (``--preset seed-plan``). A :class:`PresetSuite` is a fixed list of
:class:`PresetRun` rows (task, optimizer spec, epochs, batch size, seeds); :func:`suite_runs`
returns them. Optimizer specs are canonical parametrized names
(``adam_hd[hypergrad_lr=1e-07,lr=0.001,weight_decay=0.0001]``), so every hyperparameter
is visible in results and legends.

=====================  =========================================================================
``seed-plan``          seed 002's experiment plan: batch 32, lr 1e-3, weight decay 1e-4,
                       dropout 0.5, 50 epochs
``hd-paper``           Baydin et al. (ICLR 2018): mnist-logreg 20 epochs, mnist-mlp 100,
                       cifar10-vgg16 200; SGD, SGD-HD, SGDN, SGDN-HD, Adam, Adam-HD; α0 = 1e-3;
                       β = 1e-3 for SGD-HD / SGDN-HD, 1e-7 for Adam-HD on MNIST and 1e-8 on
                       CIFAR-10 VGG; momentum 0.9; batch 128; L2 1e-4; one seed
``hd-paper-fmnist``    the same protocol on Fashion-MNIST (logreg 10 epochs as the paper's
                       ``run.sh``, MLP 100) for those six and the seed 003 variants
                       ``{sgd,sgdn,adam}_hd_{sgdn,adam}`` (β of their baseline); 3 seeds; plus
                       logreg at every half-decade α₀ in 1e-4 … 1e-1 (the paper's α₀ claim)
``retention-claim``    seed 000's RescaledSGD vs SGD on fmnist-mlp: its own setting (SGD lr 1e-4,
                       RescaledSGD lr 1e-3 / base 1e-5 / decay 0.9, batch 64, 10 epochs) and a
                       fair-protocol sweep (:class:`SuiteSweep`) over one shared lr grid
``variance-plan``      seed 002 on its four tasks (mnist-cnn, cifar10-resnet18, imdb-lstm,
                       squad-bert): SGD, Adagrad, RMSprop, Adam against ``adam_var``
                       (smoothing 0.9, scaling 0.1), with the seed-plan settings; 5 seeds
=====================  =========================================================================

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
class SuiteSweep:
    """A part of a suite run under the sweep's fair protocol (one shared half-decade lr grid
    ``lr_low .. lr_high``, extended by up to ``extend`` half-decades at an edge, tuned on
    validation, final seeds reported), written to ``<out>/<name>``; the bench side makes it a
    ``SweepConfig``."""

    name: str
    tasks: tuple[str, ...]
    optimizers: tuple[str, ...]
    lr_low: float
    lr_high: float
    extend: int
    epochs: int | None  # None: each task's own
    batch_size: int | None  # None: each task's own
    seeds: int
    tune_seeds: int


@dataclass(frozen=True)
class PresetSuite:
    """A named, fixed experiment; ``quick`` / ``quick_sweeps`` keep its shape at a smaller cost
    (``bench --suite NAME --quick``), ``sweeps`` are its fair-protocol parts."""

    name: str
    description: str
    runs: tuple[PresetRun, ...]
    quick: tuple[PresetRun, ...] = ()
    sweeps: tuple[SuiteSweep, ...] = ()
    quick_sweeps: tuple[SuiteSweep, ...] = ()


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


HALF_DECADES = (1e-4, 3.16e-4, 1e-3, 3.16e-3, 1e-2, 3.16e-2, 1e-1)  # the evidence spec's grid steps


def hd_paper_specs(lr: float = 1e-3) -> tuple[str, ...]:
    """Baydin et al.'s six optimizers and the seed's ``{op}_hd_sgdn`` / ``{op}_hd_adam`` variants.

    α₀ = ``lr``, L2 weight decay 1e-4 and momentum 0.9 as in the paper's ``train.py``; β = 1e-3
    for the SGD / SGDN bases and 1e-7 for the Adam base, for the paper's HD and, as seed 003
    did, for its variants (same α₀ and β as their baseline).
    """
    common = {"lr": lr, "weight_decay": 1e-4}
    specs = [with_defaults("sgd", **common), with_defaults("nesterov", momentum=0.9, **common),
             with_defaults("adam", **common)]  # fmt: skip
    for op, beta, extra in (("sgd", 1e-3, {}), ("sgdn", 1e-3, {"momentum": 0.9}), ("adam", 1e-7, {})):
        for lop in ("", "_sgdn", "_adam"):
            specs.append(with_defaults(f"{op}_hd{lop}", hypergrad_lr=beta, **extra, **common))
    return tuple(specs)


def _hd_paper_fmnist_runs(mlp_epochs: int, mlp_seeds: tuple[int, ...], sensitivity_epochs: int,
                          sensitivity_seeds: tuple[int, ...]) -> tuple[PresetRun, ...]:  # fmt: skip
    # The paper's two MNIST experiments on Fashion-MNIST (logreg 10 epochs as its run.sh, 3 seeds;
    # the MLP 100), then its α₀-sensitivity claim: logreg over the half-decade α₀ grid.
    # The MLP last: it costs ~20x the rest, and a suite run cut short should keep the cheap answers.
    runs = [PresetRun("fmnist-logreg", spec, 10, 128, (0, 1, 2)) for spec in hd_paper_specs()]
    # Every grid point, 1e-3 included: the full form's 1e-3 rows are the main rows (same run ids,
    # trained once); the quick form's are its own shorter runs, so its grid is one setup.
    runs += [PresetRun("fmnist-logreg", spec, sensitivity_epochs, 128, sensitivity_seeds)
             for lr in HALF_DECADES for spec in hd_paper_specs(lr)]  # fmt: skip
    runs += [PresetRun("fmnist-mlp", spec, mlp_epochs, 128, mlp_seeds) for spec in hd_paper_specs()]
    return tuple(runs)


# Seed 000's own setting, as the algorithms spec reads its code: SGD at lr 1e-4 against
# RescaledSGD at lr (peak) 1e-3, base_lr 1e-5, decay 0.9, batch 64, 10 epochs.
RETENTION_SEED_SPECS = ("sgd[lr=0.0001]", "rescaled_sgd[base_lr=1e-05,decay=0.9,lr=0.001]")


def _retention_claim(epochs: int, seeds: int, extend: int, fair_epochs: int, tune_seeds: int,
                     final_seeds: int) -> tuple[tuple[PresetRun, ...], tuple[SuiteSweep, ...]]:  # fmt: skip
    seed_rows = tuple(PresetRun("fmnist-mlp", spec, epochs, 64, tuple(range(seeds))) for spec in RETENTION_SEED_SPECS)
    fair = SuiteSweep("fair", ("fmnist-mlp",), ("sgd", "rescaled_sgd"), 1e-4, 1e-1, extend, fair_epochs, 64,
                      final_seeds, tune_seeds)  # fmt: skip
    return seed_rows, (fair,)


_RETENTION_FULL = _retention_claim(10, 5, 3, 10, 3, 5)
_RETENTION_QUICK = _retention_claim(3, 3, 1, 1, 1, 3)


def _variance_plan_runs() -> tuple[PresetRun, ...]:
    tasks = ("mnist-cnn", "cifar10-resnet18", "imdb-lstm", "squad-bert")
    bases = ("sgd", "adagrad", "rmsprop", "adam")
    variance = with_defaults("adam_var", variance_smoothing=0.9, lr_scaling=0.1)
    specs = [SEED_PLAN.optimizer_spec(name) for name in (*bases, variance)]
    seeds = tuple(range(5))
    plan = SEED_PLAN
    return tuple(PresetRun(task, spec, plan.epochs, plan.batch_size, seeds) for task in tasks for spec in specs)


# Issue 17: hypergradient descent beside the learning-rate-free methods, under one protocol. The
# lr-free ones (Prodigy, D-Adaptation, DoG) run at lr = 1 with no grid, as their papers say;
# Schedule-Free and Lion have an lr and are tuned on the shared grid like every other optimizer.
LR_FREE_OPTIMIZERS = (
    "adam", "adamw", "momentum", "adam_hd", "sgdn_hd", "adam_var",
    "prodigy", "dadapt_adam", "dog", "schedulefree_adamw", "schedulefree_sgd", "lion",
)  # fmt: skip
_EMBEDDED = ("spiral", "digits-logreg", "digits-mlp", "digits-cnn", "mnist1d-mlp", "mnist1d-cnn")
_LR_FREE = SuiteSweep("lr-free", _EMBEDDED, LR_FREE_OPTIMIZERS, 1e-5, 1.0, 3, None, None, 5, 3)
_LR_FREE_QUICK = SuiteSweep("lr-free", ("digits-mlp", "mnist1d-mlp"), LR_FREE_OPTIMIZERS, 1e-5, 1.0, 1, None, None, 3, 2)

# Issue 19: the α₀-robust controllers (log-α hypergradient, Rprop on log α and its dead-zone form,
# the RMS-normalised and stacked log-α laws, HDM) beside the HD family,
# the torch baselines and the lr-free peers; the lr-sensitivity width is the number it is run for.
LR_ROBUSTNESS_OPTIMIZERS = (
    "adam", "nesterov", "sgdn_hd", "adam_hd", "sgdn_loghd", "adam_loghd", "sgdn_hdm", "adam_hdm",
    "sgdn_lrprop", "adam_lrprop", "adam_zprop", "adam_rmshd", "adam_stackhd", "prodigy", "schedulefree_adamw",
)  # fmt: skip
_LR_ROBUSTNESS = SuiteSweep("embedded", _EMBEDDED, LR_ROBUSTNESS_OPTIMIZERS, 1e-5, 1.0, 3, None, None, 5, 3)
_LR_ROBUSTNESS_QUICK = SuiteSweep("embedded", ("digits-mlp", "mnist1d-mlp"), LR_ROBUSTNESS_OPTIMIZERS, 1e-5, 1.0, 1,
                                  None, None, 3, 2)  # fmt: skip

SUITES: dict[str, PresetSuite] = {
    suite.name: suite
    for suite in (
        PresetSuite(
            "hd-paper",
            "Baydin et al. 2018: logreg/MLP on MNIST, VGG-16 on CIFAR-10; SGD/SGDN/Adam with and without HD",
            _hd_paper_runs(),
        ),
        PresetSuite(
            "hd-paper-fmnist",
            "Baydin et al. 2018's logreg (10 epochs) and MLP (100) protocol on Fashion-MNIST, 12 optimizers "
            "(HD and the seed's HD variants), 3 seeds, plus logreg's α₀ sensitivity; --quick: logreg as is, MLP and sensitivity 3 epochs x 1 seed",
            _hd_paper_fmnist_runs(100, (0, 1, 2), 10, (0, 1, 2)),
            quick=_hd_paper_fmnist_runs(3, (0,), 3, (0,)),
        ),
        PresetSuite(
            "retention-claim",
            "seed 000's RescaledSGD vs SGD on fmnist-mlp: its own setting (SGD at lr 1e-4, 10 epochs, 5 seeds) "
            "and the fair protocol (shared lr grid, tuned on validation); --quick: 3 epochs x 3 seeds / 1 epoch",
            _RETENTION_FULL[0],
            quick=_RETENTION_QUICK[0],
            sweeps=_RETENTION_FULL[1],
            quick_sweeps=_RETENTION_QUICK[1],
        ),
        PresetSuite(
            "lr-free",
            "hypergradient and variance controllers beside the learning-rate-free peers (Prodigy, D-Adaptation, "
            "DoG at lr = 1; Schedule-Free AdamW/SGD and Lion tuned) and the torch baselines, on the embedded tasks "
            "under the grid protocol (3 tuning seeds, 5 final seeds); --quick: digits-mlp and mnist1d-mlp, "
            "2 tuning seeds, 3 final seeds",
            (),
            sweeps=(_LR_FREE,),
            quick_sweeps=(_LR_FREE_QUICK,),
        ),
        PresetSuite(
            "lr-robustness",
            "issue 19: lr-sensitivity width (decades of α0 within 1 point of the best) of the log-α controllers "
            "(sgdn/adam_loghd, sgdn/adam_lrprop, adam_zprop, adam_rmshd, adam_stackhd), HDM, the HD family, Adam, Nesterov and the lr-free peers on the "
            "embedded tasks, grid 1e-5..1 extended by up to 3 half-decades, 3 tuning seeds, 5 final seeds; "
            "--quick: digits-mlp and mnist1d-mlp, 2 tuning seeds, 3 final seeds",
            (),
            sweeps=(_LR_ROBUSTNESS,),
            quick_sweeps=(_LR_ROBUSTNESS_QUICK,),
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


def suite_runs(name: str, quick: bool = False) -> list[PresetRun]:
    """The rows of suite ``name`` (its ``quick`` form if asked and it has one); ValueError listing the valid suites otherwise."""
    suite = _lookup(SUITES, "suite", name)
    return list(suite.quick if quick and suite.quick else suite.runs)
