"""Named suites: fixed sets of runs that reproduce a published experiment.

One registry behind :func:`get_suite` / :func:`all_suites`: the harness's own suites
(:data:`SUITES`, below) and the seed material's real-data suites ``hd-paper``,
``hd-paper-fmnist``, ``retention-claim`` and ``variance-plan``
(:data:`gradretention.tasks.presets.SUITES`: rows of task, optimizer spec, epochs, batch size
and seeds, a quick form, and fair-protocol parts). :func:`suite_configs` plans either kind's
fixed runs as run configs, :func:`suite_sweeps` the fair-protocol parts as sweep configs.

``adagrad-lecture`` is the lecture in the seed material (``seeds/004_…``) that codes
Adagrad from scratch on nnfs.io's spiral (the ``spiral-nnfs`` task: 2.5 turns, 300 points,
accuracy reported on those same 300 points), 2 → 64 → ReLU → 3 with weights 0.01·N(0, 1)
and zero biases, full batch, 10 000 epochs, and compares:

=====================  ==================================================  ===================
run                    optimizer                                           lecture reports
=====================  ==================================================  ===================
SGD with lr decay      ``sgd[lr=1]``, lr_t = 1 / (1 + 1e-3·t)              — (decay alone: less)
Adagrad                ``adagrad[lr=1,lr_decay=0.0001,eps=1e-07]``         ≈ 89.3 % (also 83 %)
SGD + momentum 0.9     ``momentum[lr=1,momentum=0.9]``, same decay as SGD  ≈ 95.3 %
=====================  ==================================================  ===================

The lecture's decay ``lr_t = lr / (1 + decay·t)``, t the updates already made, is the
runner's ``lr_decay`` option (``RunConfig.extra``) for SGD and momentum, and Adagrad's own
``lr_decay`` hyperparameter (torch's ``lr / (1 + (step − 1)·lr_decay)``, the same t).
One difference is left: the lecture's momentum keeps the lr inside the velocity
(``v ← μv − lr_t·g; θ ← θ + v``), torch's outside (``b ← μb + g; θ ← θ − lr_t·b``); under a
decaying lr that makes torch's momentum μ·lr_t/lr_{t−1}, at most 0.1 % below μ here.
``adagrad-lecture-cs231n`` is the earlier form of this suite on the CS231n ``spiral``
(one turn less, 60/20/20 split, torch's default init), kept for comparison.

Example:
    >>> [c.optimizer for c in suite_configs("adagrad-lecture", seeds=1, epochs=5)]
    ['sgd[lr=1]', 'adagrad[eps=1e-07,lr=1,lr_decay=0.0001]', 'momentum[lr=1,momentum=0.9]']
    >>> len(suite_configs("variance-plan"))  # 4 tasks x 5 optimizers x 5 seeds
    100
"""

from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gradretention.bench.config import SweepConfig
from gradretention.bench.results import RunConfig
from gradretention.bench.sweep import default_lr
from gradretention.optim import canonical_spec
from gradretention.tasks import presets
from gradretention.tasks.presets import PresetSuite


@dataclass(frozen=True)
class SuiteRun:
    """One optimizer of a suite and its run options (``RunConfig.extra``)."""

    optimizer: str
    extra: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Suite:
    """A fixed experiment: one task, a list of optimizers, one budget."""

    name: str
    description: str
    task: str
    runs: tuple[SuiteRun, ...]
    epochs: int
    batch_size: int  # 0: full batch
    log_every: int
    eval_every: int  # epochs between evaluations


LECTURE_RUNS: tuple[SuiteRun, ...] = (
    SuiteRun("sgd[lr=1]", (("lr_decay", 1e-3),)),
    SuiteRun("adagrad[lr=1,lr_decay=0.0001,eps=1e-07]"),
    SuiteRun("momentum[lr=1,momentum=0.9]", (("lr_decay", 1e-3),)),
)

SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            name="adagrad-lecture",
            description="the Adagrad lecture on its nnfs.io spiral (spiral-nnfs): SGD+decay, Adagrad, momentum; "
                        "full batch, 10 000 epochs",
            task="spiral-nnfs",
            runs=LECTURE_RUNS,
            epochs=10_000,
            batch_size=0,
            log_every=100,
            eval_every=100,
        ),
        Suite(
            name="adagrad-lecture-cs231n",
            description="the lecture's optimizers on the CS231n spiral (held-out test split), as before spiral-nnfs",
            task="spiral",
            runs=LECTURE_RUNS,
            epochs=10_000,
            batch_size=0,
            log_every=100,
            eval_every=100,
        ),
    )
}


def all_suites() -> dict[str, Suite | PresetSuite]:
    """Every suite by name: the harness's and the real-data ones of :mod:`~gradretention.tasks.presets`."""
    clash = set(SUITES) & set(presets.SUITES)
    if clash:  # one name, two experiments: refuse rather than let one hide the other
        raise ValueError(f"suite names registered twice: {', '.join(sorted(clash))}")
    return {**SUITES, **presets.SUITES}


def get_suite(name: str) -> Suite | PresetSuite:
    """The suite called ``name``; ``ValueError`` with a did-you-mean and the valid names otherwise."""
    suites = all_suites()
    if name in suites:
        return suites[name]
    close = difflib.get_close_matches(name, list(suites), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown suite {name!r}.{hint} Valid suites: {', '.join(sorted(suites))}")


def suite_configs(name: str, seeds: int | None = None, epochs: int | None = None, device: str = "cpu",
                  data_seed: int = 0, quick: bool = False) -> list[RunConfig]:  # fmt: skip
    """The suite's fixed runs (``phase="final"``), in the suite's order, each seed after the other.

    Args:
        seeds: Run seeds ``0 .. seeds-1``; ``None``: the suite's own (1 for ``adagrad-lecture``).
        epochs: Shorten (or lengthen) every run; ``adagrad-lecture`` keeps about 100
            evaluations per run.
        device / data_seed: as in :class:`RunConfig`.
        quick: the suite's quick form (same shape, fewer epochs or seeds) where it has one.

    Raises:
        ValueError: an unknown suite (valid names listed), or ``seeds`` / ``epochs`` < 1.
    """
    suite = get_suite(name)
    for label, value in (("epochs", epochs), ("seeds", seeds)):
        if value is not None and value < 1:
            raise ValueError(f"{label} must be >= 1, got {value}")
    if isinstance(suite, PresetSuite):
        rows = presets.suite_runs(name, quick=quick)
        return _preset_suite_configs(rows, seeds, epochs, device, data_seed)
    epochs = suite.epochs if epochs is None else epochs
    eval_every = max(1, min(suite.eval_every, epochs // 100))
    return [
        RunConfig(task=suite.task, optimizer=canonical_spec(run.optimizer), seed=seed,
                  lr=default_lr(run.optimizer), data_seed=data_seed, epochs=epochs,
                  batch_size=suite.batch_size, log_every=max(1, min(suite.log_every, epochs // 100)),
                  phase="final", device=device, extra=(*run.extra, ("eval_every", eval_every)))  # fmt: skip
        for run in suite.runs
        for seed in range(1 if seeds is None else seeds)
    ]


def _preset_suite_configs(rows: list[presets.PresetRun], seeds: int | None, epochs: int | None, device: str,
                          data_seed: int) -> list[RunConfig]:  # fmt: skip
    return [
        RunConfig(task=row.task, optimizer=canonical_spec(row.optimizer), seed=seed, lr=default_lr(row.optimizer),
                  data_seed=data_seed, epochs=row.epochs if epochs is None else epochs,
                  batch_size=row.batch_size, phase="final", device=device)  # fmt: skip
        for row in rows
        for seed in (row.seeds if seeds is None else range(seeds))
    ]


def suite_sweeps(name: str, base: SweepConfig, quick: bool = False, seeds: int | None = None,
                 epochs: int | None = None) -> list[SweepConfig]:  # fmt: skip
    """The suite's fair-protocol parts as sweep configs, each into ``<base.out>/<part name>``.

    They take the grid protocol that :func:`gradretention.bench.sweep.run_sweep` implements (the
    shared half-decade lr grid, extended at an edge, tuned on validation, final seeds disjoint
    from the tuning seeds); tasks, optimizers, grid,
    epochs, batch and seed counts come from the suite (``seeds`` / ``epochs``, when given,
    replace the final seed count and the epochs), every other setting (device, workers, data
    directory...) from ``base``. A suite without such parts gives ``[]``.

    Raises:
        ValueError: an unknown suite (valid names listed).
    """
    suite = get_suite(name)
    if not isinstance(suite, PresetSuite):
        return []
    parts = suite.quick_sweeps if quick and suite.quick_sweeps else suite.sweeps
    return [
        dataclasses.replace(base, tasks=part.tasks, optimizers=part.optimizers, lrs=(), lr_factors=None,
                            protocol="grid", lr_low=part.lr_low, lr_high=part.lr_high, extend=part.extend,
                            epochs=epochs or part.epochs, max_steps=None, batch_size=part.batch_size,
                            seeds=seeds or part.seeds,
                            tune_seeds=part.tune_seeds, out=str(Path(base.out) / part.name))  # fmt: skip
        for part in parts
    ]
