"""Named suites: fixed sets of runs that reproduce a published experiment.

``adagrad-lecture`` is the lecture in the seed material (``seeds/004_…``) that codes
Adagrad from scratch on the spiral data set, 2 → 64 → ReLU → 3, full batch, 10 000
epochs, and compares:

=====================  ==================================================  ================
run                    optimizer                                           lecture reports
=====================  ==================================================  ================
SGD with lr decay      ``sgd[lr=1]``, lr_t = 1 / (1 + 1e-3·t)              —
Adagrad                ``adagrad[lr=1,lr_decay=0.0001,eps=1e-07]``         ≈ 89 %
SGD + momentum 0.9     ``momentum[lr=1,momentum=0.9]``, same decay as SGD  ≈ 95 %
=====================  ==================================================  ================

The lecture's decay ``1/(1 + decay·t)`` for SGD is the runner's ``lr_decay`` option
(``RunConfig.extra``); Adagrad's is its own ``lr_decay`` hyperparameter. The lecture
reports training accuracy on its own spiral; ours holds out validation and test splits.

Example:
    >>> [c.optimizer for c in suite_configs("adagrad-lecture", seeds=1, epochs=5)]
    ['sgd[lr=1]', 'adagrad[eps=1e-07,lr=1,lr_decay=0.0001]', 'momentum[lr=1,momentum=0.9]']
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from gradretention.bench.results import RunConfig
from gradretention.bench.sweep import default_lr
from gradretention.optim import canonical_spec


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


SUITES: dict[str, Suite] = {
    suite.name: suite
    for suite in (
        Suite(
            name="adagrad-lecture",
            description="the Adagrad lecture on spiral: SGD+decay, Adagrad, momentum; full batch, 10 000 epochs",
            task="spiral",
            runs=(
                SuiteRun("sgd[lr=1]", (("lr_decay", 1e-3),)),
                SuiteRun("adagrad[lr=1,lr_decay=0.0001,eps=1e-07]"),
                SuiteRun("momentum[lr=1,momentum=0.9]", (("lr_decay", 1e-3),)),
            ),
            epochs=10_000,
            batch_size=0,
            log_every=100,
            eval_every=100,
        ),
    )
}


def get_suite(name: str) -> Suite:
    """The suite called ``name``; ``ValueError`` with a did-you-mean and the valid names otherwise."""
    if name in SUITES:
        return SUITES[name]
    close = difflib.get_close_matches(name, list(SUITES), n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"Unknown suite {name!r}.{hint} Valid suites: {', '.join(sorted(SUITES))}")


def suite_configs(name: str, seeds: int = 1, epochs: int | None = None, device: str = "cpu") -> list[RunConfig]:
    """The suite's runs on seeds ``0 .. seeds-1`` (``phase="final"``).

    Args:
        epochs: Shorten (or lengthen) the suite; evaluations stay about 100 per run.
    """
    suite = get_suite(name)
    epochs = suite.epochs if epochs is None else epochs
    if epochs < 1 or seeds < 1:
        raise ValueError(f"epochs and seeds must be >= 1, got epochs={epochs}, seeds={seeds}")
    eval_every = max(1, min(suite.eval_every, epochs // 100))
    return [
        RunConfig(task=suite.task, optimizer=canonical_spec(run.optimizer), seed=seed,
                  lr=default_lr(run.optimizer), epochs=epochs,
                  batch_size=suite.batch_size, log_every=max(1, min(suite.log_every, epochs // 100)),
                  phase="final", device=device, extra=(*run.extra, ("eval_every", eval_every)))  # fmt: skip
        for run in suite.runs
        for seed in range(seeds)
    ]
