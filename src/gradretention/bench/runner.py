"""The runner: train one (task, optimizer spec, seed) and measure everything on the way.

:func:`train` holds the task's data as tensors on the device and batches it by index
permutation (``torch.randperm`` with the run's own generator), so the same config gives
the same numbers. The training loss is accumulated on the device and read back only at
log steps; gradient statistics, learning rates and optimizer telemetry are taken at
log steps only. Every ``eval_every`` epochs (and at the last step) the train,
validation and test splits are evaluated. Listeners receive :mod:`~gradretention.bench.events`.

Statuses: ``done``; ``diverged`` (a training loss that is non-finite or above 100× the
first step's loss ends the run; the reason names the step and the value); ``error``
(an exception while training, recorded with the run's context); ``interrupted``
(``should_stop()`` became true, or Ctrl-C — then :class:`RunInterrupted` carries the
recorded result up so the caller can store it and stop). Problems found *before*
training — an unknown task, a bad optimizer spec or hyperparameter, missing data — raise
``ValueError`` / ``FileNotFoundError`` instead: they are the user's to fix.

``RunConfig.extra`` options: ``lr_decay`` (multiply every group's lr by
``1 / (1 + lr_decay * step)``, the classic decay) and ``eval_every`` (epochs between
evaluations, default 1). ``batch_size=0`` means full batch.

Example:
    >>> from gradretention.bench.results import RunConfig
    >>> result = train(RunConfig(task="spiral", optimizer="adam", epochs=2))  # doctest: +SKIP
    >>> result.status, sorted(result.final)[:3]  # doctest: +SKIP
    ('done', ['best_val_accuracy', 'best_val_f1', 'best_val_loss'])
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import torch

from gradretention.bench.events import RunFinished, RunStarted
from gradretention.bench.events import Listener
from gradretention.bench.metering import Diverged, Metering, StepMeter
from gradretention.bench.provenance import collect_provenance
from gradretention.bench.results import RunConfig, RunResult
from gradretention.optim import create_optimizer
from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.registry import get_task

EXTRA_OPTIONS: dict[str, str] = {
    "lr_decay": "float >= 0: lr_t = lr / (1 + lr_decay * t), t = optimizer steps taken",
    "eval_every": "int >= 1: epochs between evaluations (the last step is always evaluated)",
}


class RunInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived during a run; ``result`` is that run, recorded as ``interrupted``."""

    def __init__(self, result: RunResult) -> None:
        super().__init__(result)
        self.result = result


class _StopRequested(Exception):
    pass


def train(
    config: RunConfig,
    listeners: Iterable[Listener] = (),
    data_dir: Path | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> RunResult:
    """Train ``config`` to its budget and return the measured :class:`RunResult`.

    Args:
        config: What to run; ``epochs`` or, when set, ``max_steps`` is the budget.
        listeners: Called with every event (run started, step and eval logged, finished).
        data_dir: Where tasks that read files find them.
        should_stop: Polled at log steps and epoch ends; true ends the run as ``interrupted``.

    Raises:
        ValueError: Unknown task, bad optimizer spec or hyperparameter, bad ``extra``.
        FileNotFoundError: The task's data files are missing.
        RunInterrupted: Ctrl-C during training (after the listeners saw the result).
    """
    task = get_task(config.task)
    options = run_options(config)
    device = torch.device(config.device)
    cuda_devices = [device.index or 0] if device.type == "cuda" else []
    # fork_rng: the run seeds the global RNG (model init, dropout) without leaking that
    # into the caller's random streams.
    with torch.random.fork_rng(devices=cuda_devices):
        torch.manual_seed(config.seed)
        data = task.load(config.data_seed, data_dir).to(device)
        model = task.build_model(data.num_classes).to(device)
        overrides = {} if config.lr is None else {"lr": config.lr}
        optimizer = create_optimizer(config.optimizer, model.parameters(), **overrides)
        loop = _TrainingLoop(config, task, data, model, optimizer, options)
        return loop.run(tuple(listeners), should_stop or (lambda: False))


def run_options(config: RunConfig) -> dict[str, float]:
    """``config.extra`` checked against :data:`EXTRA_OPTIONS`, with defaults filled in."""
    options = {"lr_decay": 0.0, "eval_every": 1}
    for key, value in config.extra:
        if key not in EXTRA_OPTIONS:
            raise ValueError(f"unknown run option {key!r} in extra; valid options: {', '.join(EXTRA_OPTIONS)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"run option {key} must be a number, got {value!r}")
        options[key] = value
    if options["lr_decay"] < 0:
        raise ValueError(f"lr_decay must be >= 0, got {options['lr_decay']}")
    if int(options["eval_every"]) != options["eval_every"] or options["eval_every"] < 1:
        raise ValueError(f"eval_every must be an int >= 1, got {options['eval_every']}")
    if config.batch_size is not None and config.batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0: full batch), got {config.batch_size}")
    return options


class _TrainingLoop:
    """One run's mutable state; ``run`` is the only entry point."""

    def __init__(self, config: RunConfig, task: Task, data: TaskData, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, options: dict[str, float]) -> None:  # fmt: skip
        self.config, self.task, self.data, self.model, self.optimizer = config, task, data, model, optimizer
        n = len(data.train)
        size = task.default_batch_size if config.batch_size is None else config.batch_size
        self.batch_size = n if size == 0 else min(size, n)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        epochs = task.default_epochs if config.epochs is None else config.epochs
        self.total_steps = config.max_steps if config.max_steps is not None else epochs * self.steps_per_epoch
        self.eval_every = int(options["eval_every"])
        self.scheduler = None
        if options["lr_decay"] > 0:
            decay = options["lr_decay"]
            # Multiplicative, not LambdaLR: LambdaLR rewrites lr from its base every step and would
            # erase what an adaptive controller (hypergradient, variance) did to α in between.
            self.scheduler = torch.optim.lr_scheduler.MultiplicativeLR(
                optimizer, lambda t: (1.0 + decay * (t - 1)) / (1.0 + decay * t))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.device = next(model.parameters()).device
        self.step = 0

    def run(self, listeners: tuple[Listener, ...], should_stop: Callable[[], bool]) -> RunResult:
        meter = Metering(self.config, self.task, self.optimizer, self.device, listeners)
        started = time.perf_counter()
        meter.emit(RunStarted(self.config, self.total_steps))
        interrupted = False
        try:
            self._train(meter, should_stop)
            status, reason = "done", ""
        except Diverged as exc:
            status, reason = "diverged", str(exc)
        except _StopRequested:
            status, reason = "interrupted", f"stop requested at step {self.step}"
        except KeyboardInterrupt:
            status, reason, interrupted = "interrupted", f"interrupted (Ctrl-C) at step {self.step}", True
        except Exception as exc:  # noqa: BLE001 - a failing run is recorded, the sweep goes on
            config = self.config
            reason = (f"while running '{config.optimizer}' on task '{config.task}' "
                      f"(seed {config.seed}): {type(exc).__name__}: {exc}")  # fmt: skip
            status = "error"
        result = meter.result(status, reason, self.step, self.step / self.steps_per_epoch,
                              time.perf_counter() - started, collect_provenance(self.config.device))  # fmt: skip
        meter.emit(RunFinished(result))
        if interrupted:
            raise RunInterrupted(result)
        return result

    def _train(self, meter: Metering, should_stop: Callable[[], bool]) -> None:
        train_split, n = self.data.train, len(self.data.train)
        log_every = self.config.log_every
        losses = StepMeter(self.step, limit=None)
        epoch = 0
        while self.step < self.total_steps:
            epoch += 1
            order = torch.randperm(n, generator=self.generator).to(self.device)
            tick = time.perf_counter()
            samples = 0
            for start in range(0, n, self.batch_size):
                if self.step >= self.total_steps:
                    break
                index = order[start : start + self.batch_size]
                losses.add(self._step(*train_split.batch(index)))
                self.step += 1
                samples += int(index.numel())
                if self.step % log_every == 0:
                    meter.log_step(self.step, self.step / self.steps_per_epoch, losses, self.model)
                    losses = StepMeter(self.step, losses.limit)
                    if should_stop():
                        raise _StopRequested
            losses.mean()  # a loss that blew up since the last log step ends the run here
            meter.end_epoch(self.step, self.step / self.steps_per_epoch, tick, samples)
            if epoch % self.eval_every == 0 or self.step >= self.total_steps:
                meter.evaluate(self.step, self.step / self.steps_per_epoch, self.model, self.data)
            if should_stop():
                raise _StopRequested

    def _step(self, inputs: object, targets: object) -> torch.Tensor:
        if self.task.augment is not None:
            inputs = self.task.augment(inputs, self.generator)

        def closure() -> torch.Tensor:
            # Through step(closure) so optimizers that read the loss (EnhancedSGD) get it.
            self.optimizer.zero_grad(set_to_none=True)
            loss = self.task.batch_loss(self.model, inputs, targets)
            loss.backward()
            return loss

        loss = self.optimizer.step(closure)
        if self.scheduler is not None:
            self.scheduler.step()
        return loss.detach()
