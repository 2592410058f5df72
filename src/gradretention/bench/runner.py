"""The runner: train one (task, optimizer spec, seed) and measure everything on the way.

:func:`train` holds the task's data as tensors on the device and batches it by index
permutation (``torch.randperm`` with the run's own generator), so the same config gives
the same numbers. The training loss is accumulated on the device and read back only at
log steps; gradient statistics, learning rates and optimizer telemetry are taken at
log steps only; every group's lr (α) is read after every step for its movement summary.
The validation split is evaluated after every epoch; the train and test splits every k
epochs (and at the last step), k being ``eval_every``, by default ``"auto"``: from the split
sizes, so that evaluation stays near 10 % of the training time
(:func:`~gradretention.bench.metering.evaluation_interval`). Summaries that depend on
validation (``best_val_*``, ``steps_to_target``, ``seconds_to_target``) therefore have a
resolution of one epoch: a target reached within an epoch counts at its end. The training
loss's target (``train_steps_to_target``) is found per step (:mod:`~gradretention.bench.run.trackers`).
Listeners receive :mod:`~gradretention.bench.events`.

Statuses: ``done``; ``diverged`` (a training loss that is non-finite or above 100× the
first step's loss ends the run; the reason names the step and the value); ``error``
(an exception while training, recorded with the run's context); ``interrupted``
(``should_stop()`` became true, or Ctrl-C — then :class:`RunInterrupted` carries the
recorded result up so the caller can store it and stop). Problems found *before*
training — an unknown task, a bad optimizer spec or hyperparameter, missing data — raise
``ValueError`` / ``FileNotFoundError`` instead: they are the user's to fix.

``RunConfig.extra`` options: ``lr_decay`` (multiply every group's lr by
``1 / (1 + lr_decay * step)``, the classic decay) and ``eval_every`` (``"auto"``, the
default, or epochs between evaluations). ``batch_size=0`` means full batch.

Checkpoints (:class:`Checkpointing`, outside :class:`RunConfig` so they never change a
run's id): every ``every`` epochs and at the run's end the model, optimizer, scheduler,
data-order generator, global RNG, step and the metering so far are saved to
``checkpoint_path(out, run_id)``; with ``resume`` a run continues from that file and ends
with the same numbers, bit for bit, as a run never stopped (timings aside).

Example:
    >>> from gradretention.bench.results import RunConfig
    >>> result = train(RunConfig(task="spiral", optimizer="adam", epochs=2))  # doctest: +SKIP
    >>> result.status, sorted(result.final)[:3]  # doctest: +SKIP
    ('done', ['best_val_accuracy', 'best_val_f1', 'best_val_loss'])
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from gradretention.bench.checkpoint import checkpoint_path, load_checkpoint, save_checkpoint
from gradretention.bench.events import RunFinished, RunStarted
from gradretention.bench.events import Listener
from gradretention.bench.config import EVAL_EVERY_AUTO, eval_every_value
from gradretention.bench.metering import Diverged, Metering, StepMeter, evaluation_interval
from gradretention.bench.evaluation_mode import evaluated_weights, start_training_mode
from gradretention.bench.provenance import collect_provenance
from gradretention.bench.results import RunConfig, RunResult
from gradretention.optim import create_optimizer
from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.registry import get_task

EXTRA_OPTIONS: dict[str, str] = {
    "lr_decay": "float >= 0: lr_t = lr / (1 + lr_decay * t), t = optimizer steps taken",
    "eval_every": "'auto' (default: k epochs from the split sizes, evaluation ~10 % of training) or "
                  "int >= 1: epochs between evaluations (the last step is always evaluated)",
    # Recorded so that runs with another encoder or sequence length get another run id;
    # the values themselves reach the tasks through their settings (tasks.text_tasks).
    "model_path": "str: the Hugging Face model folder of the BERT tasks (identity only)",
    "max_len": "int: the token length of the text tasks (identity only)",
    # The budget protocol's trial index, so that a report can order a label's tuning runs.
    "trial": "int: the budget protocol's trial index (identity only)",
}


CHECKPOINT_ENV = ("GRADRETENTION_CHECKPOINT_DIR", "GRADRETENTION_CHECKPOINT_EVERY", "GRADRETENTION_RESUME")


@dataclass(frozen=True)
class Checkpointing:
    """Where a sweep's runs keep checkpoints, how often they write them, and whether they resume.

    The CLI hands these to sweep workers through :data:`CHECKPOINT_ENV` (set before the
    worker pool starts, like the data settings); :func:`train` takes them as an argument.

    Attributes:
        out: the sweep's output folder; run ``R`` keeps ``checkpoint_path(out, R)``.
        every: epochs between checkpoints, the last epoch always included; 0 writes none.
        resume: continue each run from its checkpoint where one exists (else start afresh).
    """

    out: Path
    every: int = 0
    resume: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.every, bool) or not isinstance(self.every, int) or self.every < 0:
            raise ValueError(f"checkpoint every must be an int >= 0 (epochs; 0: never), got {self.every!r}")

    def path(self, run_id: str) -> Path:
        return checkpoint_path(self.out, run_id)

    def environment(self) -> dict[str, str]:
        """These settings as the values of :data:`CHECKPOINT_ENV`."""
        return dict(zip(CHECKPOINT_ENV, (str(self.out), str(self.every), "1" if self.resume else "")))

    @classmethod
    def from_environment(cls, environ: Mapping[str, str] = os.environ) -> Checkpointing | None:
        """The settings :meth:`environment` wrote, or ``None`` when no folder is set."""
        folder, every, resume = (environ.get(name, "").strip() for name in CHECKPOINT_ENV)
        if not folder:
            return None
        if every and not every.isdigit():
            raise ValueError(f"${CHECKPOINT_ENV[1]} must be an int >= 0, got {every!r}")
        return cls(Path(folder), int(every or 0), resume.lower() in ("1", "true", "yes"))


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
    checkpointing: Checkpointing | None = None,
) -> RunResult:
    """Train ``config`` to its budget and return the measured :class:`RunResult`.

    Args:
        config: What to run; ``epochs`` or, when set, ``max_steps`` is the budget.
        listeners: Called with every event (run started, step and eval logged, finished).
        data_dir: Where tasks that read files find them.
        should_stop: Polled at log steps and epoch ends; true ends the run as ``interrupted``.
        checkpointing: Checkpoint and resume settings; ``None``: those in
            :data:`CHECKPOINT_ENV` if set, else no checkpoints.

    Raises:
        ValueError: Unknown task, bad optimizer spec or hyperparameter, bad ``extra``, or a
            checkpoint to resume from that is unreadable or belongs to another config.
        FileNotFoundError: The task's data files are missing.
        RunInterrupted: Ctrl-C during training (after the listeners saw the result).
    """
    task = get_task(config.task)
    options = run_options(config)
    if checkpointing is None:
        checkpointing = Checkpointing.from_environment()
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
        loop = _TrainingLoop(config, task, data, model, optimizer, options, checkpointing)
        return loop.run(tuple(listeners), should_stop or (lambda: False))


def run_options(config: RunConfig) -> dict[str, Any]:
    """``config.extra`` checked against :data:`EXTRA_OPTIONS`, with defaults filled in."""
    options: dict[str, Any] = {"lr_decay": 0.0, "eval_every": EVAL_EVERY_AUTO}
    for key, value in config.extra:
        if key not in EXTRA_OPTIONS:
            raise ValueError(f"unknown run option {key!r} in extra; valid options: {', '.join(EXTRA_OPTIONS)}")
        if key in ("model_path", "max_len", "trial"):
            continue  # identity only, see EXTRA_OPTIONS
        if key == "eval_every":
            options[key] = eval_every_value(value)
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ValueError(f"run option {key} must be a number, got {value!r}")
        options[key] = value
    if options["lr_decay"] < 0:
        raise ValueError(f"lr_decay must be >= 0, got {options['lr_decay']}")
    if config.batch_size is not None and config.batch_size < 0:
        raise ValueError(f"batch_size must be >= 0 (0: full batch), got {config.batch_size}")
    return options


class _TrainingLoop:
    """One run's mutable state; ``run`` is the only entry point."""

    def __init__(self, config: RunConfig, task: Task, data: TaskData, model: torch.nn.Module,
                 optimizer: torch.optim.Optimizer, options: dict[str, Any],
                 checkpointing: Checkpointing | None = None) -> None:  # fmt: skip
        self.config, self.task, self.data, self.model, self.optimizer = config, task, data, model, optimizer
        n = len(data.train)
        size = task.default_batch_size if config.batch_size is None else config.batch_size
        self.batch_size = n if size == 0 else min(size, n)
        self.steps_per_epoch = math.ceil(n / self.batch_size)
        epochs = task.default_epochs if config.epochs is None else config.epochs
        self.total_steps = config.max_steps if config.max_steps is not None else epochs * self.steps_per_epoch
        self.eval_every = evaluation_interval(options["eval_every"], task, data)
        self.scheduler = None
        if options["lr_decay"] > 0:
            decay = options["lr_decay"]
            # Multiplicative, not LambdaLR: LambdaLR rewrites lr from its base every step and would
            # erase what an adaptive controller (hypergradient, variance) did to α in between.
            self.scheduler = torch.optim.lr_scheduler.MultiplicativeLR(
                optimizer, lambda t: (1.0 + decay * (t - 1)) / (1.0 + decay * t))
        self.generator = torch.Generator().manual_seed(config.seed)
        self.device = next(model.parameters()).device
        self.step, self.epoch = 0, 0
        self.window = StepMeter(0, limit=None)  # losses since the last log step
        # Training losses since the last evaluation, summed on the device: the train "evaluation"
        # of tasks that skip the train split.
        self.running = (torch.zeros((), dtype=torch.float64, device=self.device), 0)
        self.checkpointing = checkpointing
        self.started, self.earlier_seconds = time.perf_counter(), 0.0

    def run(self, listeners: tuple[Listener, ...], should_stop: Callable[[], bool]) -> RunResult:
        meter = Metering(self.config, self.task, self.optimizer, self.device, listeners, self.data.num_classes,
                         n_test=len(self.data.test))
        self._resume(meter)  # before RunStarted: an unusable checkpoint is the user's to fix
        start_training_mode(self.optimizer)  # Schedule-Free refuses to step until train() is called
        self.started = started = time.perf_counter()
        cpu_started = time.process_time()
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
        if status == "done":  # the steps after the last log step, for the train-loss target
            meter.feed_losses(self.window, in_epoch=False)
        wall_seconds = self.earlier_seconds + time.perf_counter() - started
        provenance = collect_provenance(self.config.device, self.config.optimizer, self.config.lr)
        result = meter.result(status, reason, self.step, self.step / self.steps_per_epoch, wall_seconds, provenance)
        meter.emit(RunFinished(result))
        if interrupted:
            raise RunInterrupted(result)
        return result

    def _train(self, meter: Metering, should_stop: Callable[[], bool]) -> None:
        while self.step < self.total_steps:
            self.epoch += 1
            tick = time.perf_counter()
            meter.start_epoch(tick)
            samples = self._epoch(meter, should_stop)
            self.window.mean()  # a loss that blew up since the last log step ends the run here
            meter.end_epoch(self.step, self.step / self.steps_per_epoch, tick, samples)
            epoch = self.step / self.steps_per_epoch
            # Schedule-Free evaluates its averaged iterate (optimizer.eval()); others pass through.
            with evaluated_weights(self.optimizer, self.model, self._forward_train_batches):
                if self.epoch % self.eval_every == 0 or self.step >= self.total_steps:
                    meter.evaluate(self.step, epoch, self.model, self.data, self._running_loss())
                else:  # val alone every epoch: per-epoch steps to target for the price of a val pass
                    meter.evaluate(self.step, epoch, self.model, self.data, splits=("val",))
            self._checkpoint(meter)
            if should_stop():
                raise _StopRequested

    def _forward_train_batches(self, limit: int) -> Iterator[None]:
        """Forward the first ``limit`` train batches in a fixed order (batch-norm statistics at the
        evaluated weights); the run's generator is not touched, so training continues unchanged."""
        n = len(self.data.train)
        for start in range(0, min(n, limit * self.batch_size), self.batch_size):
            index = torch.arange(start, min(start + self.batch_size, n), device=self.device)
            self.task.batch_loss(self.model, *self.data.train.batch(index))
            yield

    def _epoch(self, meter: Metering, should_stop: Callable[[], bool]) -> int:
        """One pass over the train split in a fresh random order; returns the samples seen."""
        n, samples = len(self.data.train), 0
        order = torch.randperm(n, generator=self.generator).to(self.device)
        for start in range(0, n, self.batch_size):
            if self.step >= self.total_steps:
                break
            index = order[start : start + self.batch_size]
            loss = self._step(*self.data.train.batch(index))
            meter.alpha.observe()
            self.window.add(loss)
            if not self.task.evaluate_train:
                self.running = (self.running[0] + loss.double(), self.running[1] + 1)
            self.step += 1
            samples += int(index.numel())
            if self.step % self.config.log_every == 0:
                meter.log_step(self.step, self.step / self.steps_per_epoch, self.window, self.model)
                self.window = StepMeter(self.step, self.window.limit)
                if should_stop():
                    raise _StopRequested
        return samples

    def _running_loss(self) -> float | None:
        if self.task.evaluate_train:
            return None
        total, count = self.running
        self.running = (torch.zeros_like(total), 0)
        return float(total) / max(count, 1)

    def _checkpoint(self, meter: Metering) -> None:
        settings = self.checkpointing
        if settings is None or settings.every == 0:
            return
        if self.epoch % settings.every != 0 and self.step < self.total_steps:
            return
        window = self.window
        extra: dict[str, Any] = {
            "task": self.config.task, "data_seed": self.config.data_seed, "config": self.config.to_json(),
            "step": self.step, "generator": self.generator.get_state(),
            "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
            "metering": meter.state(), "running": list(self.running),
            "window": {"steps_before": window.steps_before, "limit": window.limit,
                       "losses": torch.stack(window.losses) if window.losses else None},
            "wall_seconds": self.earlier_seconds + time.perf_counter() - self.started,
        }  # fmt: skip
        save_checkpoint(settings.path(self.config.run_id), self.model, self.optimizer, self.epoch, extra)

    def _resume(self, meter: Metering) -> None:
        settings = self.checkpointing
        path = None if settings is None or not settings.resume else settings.path(self.config.run_id)
        if path is None or not path.is_file():
            return
        saved = load_checkpoint(path, self.model, self.optimizer)
        extra = saved.extra
        if extra.get("config") != self.config.to_json():
            raise ValueError(f"{path} is the checkpoint of another run config ({extra.get('config')}); "
                             "delete it, or run without --resume")  # fmt: skip
        self.epoch, self.step = saved.epoch, int(extra["step"])
        self.generator.set_state(extra["generator"])
        if self.scheduler is not None:
            self.scheduler.load_state_dict(extra["scheduler"])
        meter.restore(extra["metering"])
        self.running = (extra["running"][0].to(self.device), int(extra["running"][1]))
        window = extra["window"]
        limit = None if window["limit"] is None else window["limit"].to(self.device)
        self.window = StepMeter(int(window["steps_before"]), limit)
        if window["losses"] is not None:
            self.window.losses = list(window["losses"].to(self.device).unbind())
        self.earlier_seconds = float(extra["wall_seconds"])

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
