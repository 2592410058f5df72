"""One GUI training run: the bench runner's loop, opened up for live views and controls.

Same data handling as :func:`gradretention.bench.runner.train` (the split held as
tensors, batches by ``torch.randperm`` with the run's own generator, train / val / test
evaluated after every epoch), plus, at each log step, a
:class:`~gradretention.gui.messages.LayerSnapshot` of the watched layer, and between
steps the window's commands, pause, stop and skip.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

from gradretention.bench.events import EvalLogged, RunFinished, RunStarted, StepLogged
from gradretention.bench.results import RunConfig, RunResult
from gradretention.gui.messages import LayerSnapshot
from gradretention.optim import create_optimizer
from gradretention.tasks.base import Task, TaskData

if TYPE_CHECKING:  # the worker imports this module; only its type is needed here
    from gradretention.gui.worker import TrainingWorker

SPLITS = ("train", "val", "test")


@dataclass
class StopSignals:
    """Thread-safe flags the window sets and the training loop polls between steps."""

    resume: threading.Event = field(default_factory=threading.Event)
    stop: threading.Event = field(default_factory=threading.Event)
    skip: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self.resume.set()  # not paused


class _RunEnded(Exception):
    """Ends a run early; ``status`` and ``reason`` go into its result."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


@dataclass(frozen=True)
class RunPlan:
    """Budget shared by every run of a session (same task, so same steps per epoch)."""

    epochs: int
    batch_size: int
    steps_per_epoch: int
    max_bars: int

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @classmethod
    def for_task(cls, task: Task, data: TaskData, epochs: int | None, batch_size: int | None,
                 max_bars: int) -> RunPlan:  # fmt: skip
        """Fill the task's defaults in; ``batch_size=0`` means the whole train split."""
        n = len(data.train)
        size = task.default_batch_size if batch_size is None else batch_size
        size = n if size == 0 else min(size, n)
        return cls(task.default_epochs if epochs is None else epochs, size, math.ceil(n / size), max_bars)


def watchable_layers(task: Task, data: TaskData) -> tuple[tuple[str, ...], str]:
    """The model's parameter names and the default one to watch (the first weight matrix)."""
    with torch.random.fork_rng():
        model = task.build_model(data.num_classes)
    named = list(model.named_parameters())
    first_weight = next((name for name, p in named if p.dim() >= 2), named[0][0])
    return tuple(name for name, _ in named), first_weight


class GuiRun:
    """Train one ``config``, emitting bench events and layer snapshots to ``worker``."""

    def __init__(self, worker: TrainingWorker, config: RunConfig, task: Task, data: TaskData,
                 plan: RunPlan) -> None:  # fmt: skip
        self.worker, self.config, self.task, self.data, self.plan = worker, config, task, data, plan
        self.step = 0

    def run(self) -> RunResult:
        """Train to the plan's budget (or until stopped, skipped or diverged) and report."""
        started = time.perf_counter()
        final: dict[str, float] = {}
        with torch.random.fork_rng():
            torch.manual_seed(self.config.seed)
            model = self.task.build_model(self.data.num_classes)
            optimizer = create_optimizer(self.config.optimizer, model.parameters())
            self.worker.restore_overrides(optimizer, self.config.optimizer)
            self.worker.emit(RunStarted(self.config, self.plan.total_steps))
            try:
                self._train(model, optimizer, final)
                status, reason = "done", ""
            except _RunEnded as ended:
                status, reason = ended.status, ended.reason
        result = RunResult(self.config, status, reason, final=dict(final), steps=self.step,
                           epochs_completed=self.step / self.plan.steps_per_epoch,
                           wall_seconds=time.perf_counter() - started)  # fmt: skip
        self.worker.emit(RunFinished(result))
        return result

    def _train(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, final: dict[str, float]) -> None:
        generator = torch.Generator().manual_seed(self.config.seed)
        params = dict(model.named_parameters())
        layers = tuple(params)
        n, size = len(self.data.train), self.plan.batch_size
        window: list[float] = []
        for _ in range(self.plan.epochs):
            order = torch.randperm(n, generator=generator)
            for start in range(0, n, size):
                self._between_steps(optimizer, layers)
                watch = (self.step + 1) % self.config.log_every == 0
                window.append(self._step(model, optimizer, params, order[start : start + size], watch))
                self.step += 1
                if watch:
                    self._log(optimizer, window)
                    window = []
            self._evaluate(model, final)

    def _between_steps(self, optimizer: torch.optim.Optimizer, layers: tuple[str, ...]) -> None:
        signals = self.worker.signals
        while True:
            # Commands are applied while paused too, so a change can be set up before resuming.
            self.worker.apply_commands(optimizer, self.config.optimizer, layers)
            if signals.stop.is_set():
                raise _RunEnded("interrupted", f"stopped by the user at step {self.step}")
            if signals.skip.is_set():
                raise _RunEnded("interrupted", f"skipped by the user at step {self.step}")
            if signals.resume.is_set():
                return
            # Waking up goes round the loop again: a skip or stop that resumed us is seen first.
            signals.resume.wait(0.1)

    def _step(self, model: torch.nn.Module, optimizer: torch.optim.Optimizer, params: dict[str, torch.Tensor],
              index: torch.Tensor, watch: bool) -> float:  # fmt: skip
        inputs, targets = self.data.train.batch(index)
        layer = self.worker.layer if self.worker.layer in params else next(iter(params))
        watched = params[layer]
        before = watched.detach().reshape(-1)[: self.plan.max_bars].clone() if watch else None

        losses: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            # Through step(closure) so optimizers that read the loss (EnhancedSGD) get it.
            optimizer.zero_grad(set_to_none=True)
            loss = self.task.batch_loss(model, inputs, targets)
            loss.backward()
            losses.append(loss.detach())
            return loss

        optimizer.step(closure)
        loss = float(losses[0])  # the loss before the update, as the runner logs it
        if not math.isfinite(loss):
            raise _RunEnded("diverged", f"training loss {loss} at step {self.step + 1} is not finite")
        if before is not None:
            self._snapshot(optimizer, layer, watched, before)
        return loss

    def _snapshot(self, optimizer: torch.optim.Optimizer, layer: str, watched: torch.Tensor,
                  before: torch.Tensor) -> None:  # fmt: skip
        k = self.plan.max_bars
        update = (watched.detach().reshape(-1)[:k] - before).tolist()
        grad = watched.grad.reshape(-1)[:k].tolist() if watched.grad is not None else [0.0] * len(update)
        effective_lr_fn = getattr(optimizer, "effective_lr", None)
        lrs = effective_lr_fn(watched).reshape(-1)[:k].tolist() if callable(effective_lr_fn) else None
        self.worker.emit(LayerSnapshot(self.config, self.step + 1, layer, tuple(update), tuple(grad),
                                       None if lrs is None else tuple(lrs)))

    def _log(self, optimizer: torch.optim.Optimizer, window: list[float]) -> None:
        lrs = tuple(float(group["lr"]) for group in optimizer.param_groups)
        telemetry_fn = getattr(optimizer, "telemetry", None)
        telemetry = {key: float(value) for key, value in telemetry_fn().items()} if callable(telemetry_fn) else {}
        epoch = self.step / self.plan.steps_per_epoch
        self.worker.emit(StepLogged(self.config, self.step, epoch, sum(window) / len(window), lrs, telemetry))

    def _evaluate(self, model: torch.nn.Module, final: dict[str, float]) -> None:
        epoch = self.step / self.plan.steps_per_epoch
        for split_name, split in zip(SPLITS, (self.data.train, self.data.val, self.data.test)):
            metrics = self.task.evaluate(model, split)
            final.update({f"{split_name}_{key}": value for key, value in metrics.items()})
            self.worker.emit(EvalLogged(self.config, self.step, epoch, split_name, metrics))
