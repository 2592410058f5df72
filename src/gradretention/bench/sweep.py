"""The sweep driver and its fair tuning protocol, the same for every optimizer.

1. **tune** — every task × optimizer × grid lr trains on the tune seeds
   (``0 .. tune_seeds-1``) and is scored on *validation* (``val_<target metric>``).
2. **pick** — per (task, optimizer) the best-scoring lr
   (:func:`gradretention.bench.stats.best_lr_per_optimizer`: a diverged seed makes an lr
   the worst; ties go to the smaller lr).
3. **final** — the picked lr reruns on seeds ``0 .. seeds-1`` (``phase="final"``, distinct
   runs from the tune phase); the test numbers reported come from these runs only.

With one lr (or none: each optimizer's default) there is nothing to tune and only the
final phase runs. The driver is the store's only writer: it records each result the
moment it arrives, and skips runs the store already holds as finished, so rerunning a
sweep does no training and an interrupted sweep resumes where it stopped (even after a
SIGKILL: each result is one SQLite transaction). A second sweep on the same folder is
refused while the first runs (:mod:`~gradretention.bench.lock`). Since each
run depends on its config alone, the numbers do not depend on the executor or workers.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch

from gradretention.bench import stats
from gradretention.bench.config import EVAL_EVERY_AUTO, SweepConfig
from gradretention.bench.events import Listener, RunFinished
from gradretention.bench.executors import Executor, LocalExecutor
from gradretention.bench.lock import SweepLock
from gradretention.bench.progress import SweepProgress
from gradretention.bench.results import Phase, RunConfig, RunResult
from gradretention.bench.store import ResultsStore
from gradretention.optim import available_optimizers, canonical_spec, create_optimizer
from gradretention.tasks.registry import available_tasks, get_task

# The main job's optimizer families; names not (yet) registered are left out.
DEFAULT_OPTIMIZERS: tuple[str, ...] = (
    "sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "sgd_hd", "sgdn_hd",
    "adam_hd", "sgd_hd_sgdn", "sgdn_hd_sgdn", "adam_hd_adam", "rescaled_sgd", "enhanced_sgd", "adam_var",
)  # fmt: skip
ALL = "all"


@dataclass(frozen=True)
class SweepOutcome:
    """What a sweep did: its run ids per phase, the lrs it picked, how many runs trained."""

    tune_ids: tuple[str, ...]
    final_ids: tuple[str, ...]
    best_lrs: dict[tuple[str, str], float] = field(default_factory=dict)
    trained: int = 0

    @property
    def run_ids(self) -> tuple[str, ...]:
        return self.tune_ids + self.final_ids


def resolve_tasks(names: Sequence[str]) -> tuple[str, ...]:
    """Task names with ``all`` (or nothing) expanded to the embedded tasks; checks each.

    Raises:
        ValueError: an unknown task, with a did-you-mean and the valid names.
    """
    if not names or ALL in names:
        return tuple(t for t in available_tasks() if not get_task(t).needs_download)
    return tuple(dict.fromkeys(get_task(name).name for name in names))


def resolve_optimizers(specs: Sequence[str]) -> tuple[str, ...]:
    """Canonical specs with ``all`` (or nothing) expanded to the registered default families.

    Raises:
        ValueError: an unknown name (did-you-mean, valid names) or a bad hyperparameter.
    """
    if not specs or ALL in specs:
        registered = set(available_optimizers())
        return tuple(name for name in DEFAULT_OPTIMIZERS if name in registered)
    resolved = []
    for spec in specs:
        default_lr(spec)  # builds it once: unknown names and bad values fail here, before training
        resolved.append(canonical_spec(spec))
    return tuple(dict.fromkeys(resolved))


def default_lr(spec: str, lr: float | None = None) -> float:
    """The initial lr ``spec`` trains with (its own, else the registry default).

    Raises:
        ValueError: the spec (or ``lr``) is invalid, naming the value and its range.
    """
    probe = torch.nn.Parameter(torch.zeros(1))
    optimizer = create_optimizer(spec, [probe], **({} if lr is None else {"lr": lr}))
    return float(optimizer.param_groups[0]["lr"])


def lr_grid(config: SweepConfig, spec: str) -> tuple[float, ...]:
    """The lrs ``spec`` is tuned over: ``lrs``, else ``lr_factors`` × its default, else its default."""
    if config.lrs:
        return tuple(default_lr(spec, lr) for lr in config.lrs)
    base = default_lr(spec)
    # Rounded to 12 significant digits so that 0.3 * 0.001 reads 0.0003 in tables.
    return tuple(float(f"{base * factor:.12g}") for factor in config.lr_factors) or (base,)


def plan_runs(config: SweepConfig, task: str, spec: str, lr: float, seeds: Iterable[int], phase: Phase) -> list[RunConfig]:
    """One :class:`RunConfig` per seed, the budget and settings taken from ``config``."""
    epochs = None if config.max_steps is not None else config.epochs
    # Settings that change a text task's numbers belong to the run's identity.
    extra = tuple((key, value) for key in ("model_path", "max_len")
                  if (value := getattr(config, key, None)) is not None)
    if config.eval_every != EVAL_EVERY_AUTO:  # the default stays out of the run id; 1 must reach the run
        extra += (("eval_every", config.eval_every),)
    return [
        RunConfig(task=task, optimizer=spec, seed=seed, lr=lr, data_seed=config.data_seed, epochs=epochs,
                  max_steps=config.max_steps, batch_size=config.batch_size, log_every=config.log_every,
                  phase=phase, device=config.device, extra=extra)  # fmt: skip
        for seed in seeds
    ]


def run_sweep(config: SweepConfig, executor: Executor | None = None, listeners: Iterable[Listener] = (),
              progress: SweepProgress | None = None) -> SweepOutcome:  # fmt: skip
    """Run the tuning protocol for ``config``, recording into ``<config.out>/runs.db``.

    Raises:
        ValueError: an unknown task or optimizer, or a bad hyperparameter (before training).
        SweepLockedError: another sweep holds ``<config.out>/.lock`` (the message names it).
        StoreError: the output folder or store cannot be used (nothing is overwritten).
        KeyboardInterrupt: after the interrupted runs were recorded.
    """
    tasks, specs = resolve_tasks(config.tasks), resolve_optimizers(config.optimizers)
    grids = {spec: lr_grid(config, spec) for spec in specs}
    data_dir = Path(config.data_dir) if config.data_dir else None
    with contextlib.ExitStack() as stack:
        stack.enter_context(SweepLock(config.out))  # held until the last result is recorded
        store = stack.enter_context(ResultsStore(Path(config.out)))
        if executor is None:
            executor = stack.enter_context(LocalExecutor(config.workers, config.threads))
        driver = _Driver(store, executor, data_dir, tuple(listeners), progress)
        tune = [run for task in tasks for spec in specs if len(grids[spec]) > 1 for lr in grids[spec]
                for run in plan_runs(config, task, spec, lr, range(config.tune_seeds), "tune")]  # fmt: skip
        planned_final = len(tasks) * len(specs) * config.seeds
        # The bar's total covers the final phase from the start, so its ETA is the sweep's.
        driver.execute(tune, extra_expected=planned_final)
        best = pick_lrs(store, tune)
        final = [run for task in tasks for spec in specs
                 for run in plan_runs(config, task, spec, best.get((task, spec), min(grids[spec])),
                                      range(config.seeds), "final")]  # fmt: skip
        driver.execute(final, extra_expected=-planned_final)
    return SweepOutcome(tuple(r.run_id for r in tune), tuple(r.run_id for r in final), best, driver.trained)


def run_configs(configs: Sequence[RunConfig], out: Path, executor: Executor, data_dir: Path | None = None,
                listeners: Iterable[Listener] = (), progress: SweepProgress | None = None) -> int:  # fmt: skip
    """Train the given configs that ``out``'s store does not hold yet; returns how many trained.

    Raises:
        SweepLockedError: another sweep holds ``<out>/.lock``.
    """
    with SweepLock(out), ResultsStore(out) as store:
        driver = _Driver(store, executor, data_dir, tuple(listeners), progress)
        driver.execute(configs)
    return driver.trained


def pick_lrs(store: ResultsStore, tune: Sequence[RunConfig]) -> dict[tuple[str, str], float]:
    """Best validation lr per (task, optimizer) among exactly these tune runs.

    Each task is scored on ``val_<its target metric>``. Optimizers whose tune runs all
    failed are absent; the caller falls back to the smallest grid lr.
    """
    if not tune:
        return {}
    runs = store.runs()
    runs = runs[runs["run_id"].isin({r.run_id for r in tune})]
    best: dict[tuple[str, str], float] = {}
    for task_name, rows in runs.groupby("task"):
        target = get_task(str(task_name)).target_metric
        metric = f"val_{target}"
        if metric in rows.columns:
            best.update(stats.best_lr_per_optimizer(rows, metric=metric, higher_is_better=target != "loss"))
    return best


@dataclass
class _Driver:
    """Submits runs, records each result as it arrives, notifies the listeners."""

    store: ResultsStore
    executor: Executor
    data_dir: Path | None
    listeners: tuple[Listener, ...]
    progress: SweepProgress | None
    trained: int = 0

    def pending(self, configs: Sequence[RunConfig]) -> list[RunConfig]:
        finished = self.store.finished_ids()
        return [c for c in dict.fromkeys(configs) if c.run_id not in finished]

    def execute(self, configs: Sequence[RunConfig], extra_expected: int = 0) -> None:
        todo = self.pending(configs)
        if self.progress is not None:
            self.progress.expect(len(todo) + extra_expected)
        for result in self.executor.submit_all(todo, self.data_dir):
            self._record(result)

    def _record(self, result: RunResult) -> None:
        self.store.record(result)
        self.trained += 1
        event = RunFinished(result)
        for listener in (*self.listeners, *((self.progress,) if self.progress else ())):
            listener(event)
