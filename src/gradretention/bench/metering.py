"""What the runner measures: losses, evaluations, gradients, lrs, time, memory.

:class:`Metering` turns the training loop's raw quantities into curve points, events and
finally the :class:`~gradretention.bench.results.RunResult`. It keeps the loop free of
bookkeeping and does its host syncs only where the loop asks (log steps, epoch ends).
Its bookkeeping round-trips through :meth:`Metering.state` / :meth:`Metering.restore` as
plain data, so a run resumed from a checkpoint reports the same curves and summaries.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable
from fractions import Fraction
from typing import Any

import torch

from gradretention.bench.config import EVAL_EVERY_AUTO, eval_every_value
from gradretention.bench.events import Event, EvalLogged, Listener, StepLogged
from gradretention.bench.memory import optimizer_state_bytes, peak_ram_mb, peak_vram_mb, reset_peak_vram
from gradretention.optim.peers import telemetry_of
from gradretention.bench.results import CurvePoint, RunConfig, RunResult, RunStatus
from gradretention.bench.run.trackers import AlphaTracker, LossTarget
from gradretention.tasks.base import Split, Task, TaskData

SPLITS = ("train", "val", "test")
MEASURED_FINALS = frozenset({"samples_per_second", "epoch_seconds", "peak_ram_mb", "peak_vram_mb",
                             "train_seconds_to_target", "cpu_seconds"})  # fmt: skip
"""``final`` keys read off clocks and memory: they differ between two runs of one config."""


DIVERGENCE_FACTOR = 100.0  # a training loss this many times the first step's loss has blown up

AUTO_EVAL_SHARE = Fraction(1, 10)  # the evaluation time the "auto" schedule allows, per training time
FORWARD_COST = Fraction(1, 3)  # a forward pass per example, in training steps per example (fwd + bwd + update)


def evaluation_interval(eval_every: int | str, task: Task, data: TaskData) -> int:
    """Epochs between evaluations: ``eval_every`` itself, or the ``"auto"`` schedule's k.

    ``"auto"`` estimates one evaluation's cost from the split sizes alone, in epochs of
    training: ``examples evaluated / (3 * train examples)`` (a forward pass costs about a
    third of a training step), and spreads evaluations so that the estimate stays within
    :data:`AUTO_EVAL_SHARE` of the training time::

        k = ceil(cost / 0.10),  k >= 1

    It depends on nothing measured, so two runs of one config evaluate at the same steps.
    Train is counted only for tasks that evaluate it (``Task.evaluate_train``). Examples:
    spiral (180 / 60 / 60) and the digits tasks (1,079 / 359 / 359): k = 6; MNIST-1D
    (3,500 / 500 / 1,000): k = 5.

    Raises:
        ValueError: ``eval_every`` is neither ``"auto"`` nor an int >= 1.
    """
    if eval_every_value(eval_every) != EVAL_EVERY_AUTO:
        return int(eval_every)
    evaluated = len(data.val) + len(data.test) + (len(data.train) if task.evaluate_train else 0)
    cost = Fraction(evaluated) * FORWARD_COST / max(len(data.train), 1)  # exact: no rounding moves k
    return max(1, math.ceil(cost / AUTO_EVAL_SHARE))


class Diverged(Exception):
    """A non-finite or exploded training loss: the run ends as ``diverged``."""

    def __init__(self, step: int, value: float, limit: float) -> None:
        what = "is not finite" if not math.isfinite(value) else f"exceeds {DIVERGENCE_FACTOR:g}x the first step's loss ({limit:.4g})"
        super().__init__(f"training loss {value:.6g} at step {step} {what}")
        self.step, self.value = step, value


class NonFiniteEvaluation(Diverged):
    """A NaN or infinite evaluation metric: the run ends as ``diverged``, with the split and metric named.

    A finite training loss beside it points at the model's evaluation path (batch-norm
    statistics that blew up) or at the split's own inputs; either way its numbers are not a result.
    """

    def __init__(self, step: int, split: str, metric: str, value: float) -> None:
        Exception.__init__(self, f"{split} {metric} is {value} at step {step}: a non-finite evaluation (the model "
                                 f"in eval mode, or the {split} split's inputs, hold a NaN or infinity)")  # fmt: skip
        self.step, self.value = step, value


class StepMeter:
    """Training losses since the last log step, kept on the device until read.

    A loss that is non-finite, or above ``limit``, counts as divergence. ``limit`` is
    :data:`DIVERGENCE_FACTOR` times the first loss ever added (measured before any
    update) when not given: after a huge step a ReLU network often has every unit dead
    and a loss that is finite but stuck far above where it started.
    """

    def __init__(self, steps_before: int, limit: torch.Tensor | None = None) -> None:
        self.steps_before = steps_before
        self.limit = limit
        self.losses: list[torch.Tensor] = []

    def add(self, loss: torch.Tensor) -> None:
        if self.limit is None:
            # The first loss is measured before any update: the run's reference scale.
            scale = loss.detach().double()
            self.limit = torch.where(scale > 0, scale * DIVERGENCE_FACTOR, torch.full_like(scale, math.inf))
        self.losses.append(loss)

    def mean(self) -> float:
        """Mean loss over the window (one host sync).

        Raises:
            Diverged: naming the first bad loss's step and value.
        """
        if not self.losses:
            return math.nan
        stacked = torch.stack(self.losses).double()
        # The mean is finite iff every loss is, and the peak says whether one passed the
        # limit: two reductions and one read, the search for the culprit only when needed.
        limit = self.limit if self.limit is not None else stacked.new_full((), math.inf)
        mean, peak, limit_value = torch.stack([stacked.mean(), stacked.max(), limit]).tolist()
        if math.isfinite(mean) and peak <= limit_value:
            return mean
        bad = ~torch.isfinite(stacked) | (stacked > limit)
        first = int(bad.nonzero()[0, 0])
        raise Diverged(self.steps_before + first + 1, float(stacked[first]), limit_value / DIVERGENCE_FACTOR)


def gradient_moments(model: torch.nn.Module) -> tuple[float, float] | None:
    """Mean and unbiased variance over every gradient entry of ``model`` (one host sync).

    Two passes in float64 (the mean, then the centred sum of squares): as stable as
    ``torch.var_mean`` and up to 5x faster on the CPU, where var_mean runs a Welford loop.
    """
    grads = [p.grad.reshape(-1) for p in model.parameters() if p.grad is not None]
    if not grads:
        return None
    flat = torch.cat(grads).double()
    mean = flat.mean()
    centred = flat - mean
    mean_value, squares = torch.stack([mean, centred.dot(centred)]).tolist()
    return mean_value, squares / (flat.numel() - 1) if flat.numel() > 1 else math.nan


class Metering:
    """Collects one run's curves and summaries; emits the step and eval events.

    Besides the curves, every run's ``final`` holds: ``alpha_movement``, ``alpha_min_ratio``,
    ``alpha_negative`` (:class:`~gradretention.bench.run.trackers.AlphaTracker`, α read after
    every step); ``train_steps_to_target`` / ``train_seconds_to_target`` where the smoothed
    per-step training loss reached ``train_loss_target``
    (:class:`~gradretention.bench.run.trackers.LossTarget`); ``val_target`` (the validation
    target of ``steps_to_target``); and ``chance``, the target metric's chance level that a
    failed run scores (:meth:`~gradretention.tasks.base.Task.chance_level`); ``n_test``, the
    number of test examples (the verdicts' test-set sampling error).
    """

    def __init__(self, config: RunConfig, task: Task, optimizer: torch.optim.Optimizer,
                 device: torch.device, listeners: Iterable[Listener], num_classes: int = 2,
                 n_test: int | None = None) -> None:  # fmt: skip
        self.config, self.task, self.optimizer, self.device = config, task, optimizer, device
        self.alpha = AlphaTracker(optimizer)
        self.train_target = LossTarget(task.train_target(num_classes))
        self.targets = {"val_target": float(task.target_value), "chance": task.chance_level(num_classes)}
        if n_test is not None:  # the test-set size behind a test accuracy's sampling error
            self.targets["n_test"] = float(n_test)
        self.epoch_started = time.perf_counter()
        self.listeners = tuple(listeners)
        self.curves: list[CurvePoint] = []
        self.last_eval: dict[str, dict[str, float]] = {}
        self.best_val: dict[str, float] = {}
        self.test_timing: dict[str, float] = {}
        self.grad_all: list[tuple[float, float]] = []
        self.grad_epoch: list[tuple[float, float]] = []
        self.train_seconds, self.samples = 0.0, 0
        self.steps_to_target: int | None = None
        self.seconds_to_target: float | None = None
        reset_peak_vram(device)

    def emit(self, event: Event) -> None:
        for listener in self.listeners:
            listener(event)

    def _point(self, step: int, epoch: float, split: str, name: str, value: float, group: int | None = None) -> None:
        self.curves.append(CurvePoint(step, epoch, split, name, float(value), group))

    def start_epoch(self, started: float) -> None:
        """The training clock of the epoch that begins (for the train-loss target's seconds)."""
        self.epoch_started = started

    def feed_losses(self, losses: StepMeter, in_epoch: bool = True) -> None:
        """Hand a window's batch losses to the train-loss target (one host read)."""
        if not losses.losses:
            return
        values = torch.stack(losses.losses).double().tolist()
        seconds = self.train_seconds + (time.perf_counter() - self.epoch_started if in_epoch else 0.0)
        self.train_target.feed(losses.steps_before, values, seconds)

    def log_step(self, step: int, epoch: float, losses: StepMeter, model: torch.nn.Module) -> None:
        """Train loss, lr per group, telemetry and gradient moments at a log step."""
        loss = losses.mean()
        self.feed_losses(losses)
        lrs = tuple(float(group["lr"]) for group in self.optimizer.param_groups)
        telemetry = telemetry_of(self.optimizer)  # ours, or a peer's estimated step size d / η
        moments = gradient_moments(model)
        self._point(step, epoch, "train", "loss", loss)
        for group, lr in enumerate(lrs):
            self._point(step, epoch, "opt", "lr", lr, group)
        for name, value in telemetry.items():
            self._point(step, epoch, "opt", name, value)
        if moments is not None:
            self.grad_all.append(moments)
            self.grad_epoch.append(moments)
            self._point(step, epoch, "grad", "mean", moments[0])
            self._point(step, epoch, "grad", "var", moments[1])
        grad_mean, grad_var = moments if moments is not None else (None, None)
        self.emit(StepLogged(self.config, step, epoch, loss, lrs, telemetry, grad_mean, grad_var))

    def end_epoch(self, step: int, epoch: float, started: float, samples: int) -> None:
        """Close an epoch's timing (waiting for queued CUDA work) and its gradient summary."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        seconds = time.perf_counter() - started
        self.train_seconds += seconds
        self.samples += samples
        self._point(step, epoch, "train", "epoch_seconds", seconds)
        self._point(step, epoch, "train", "samples_per_second", samples / max(seconds, 1e-12))
        if self.grad_epoch:
            self._point(step, epoch, "grad", "epoch_mean", sum(m for m, _ in self.grad_epoch) / len(self.grad_epoch))
            self._point(step, epoch, "grad", "epoch_var", sum(v for _, v in self.grad_epoch) / len(self.grad_epoch))
            self.grad_epoch = []

    def evaluate(self, step: int, epoch: float, model: torch.nn.Module, data: TaskData,
                 running_train_loss: float | None = None, splits: tuple[str, ...] = SPLITS) -> None:  # fmt: skip
        """Evaluate ``splits`` (train, val and test); track the best validation values and the target.

        For a task with ``evaluate_train=False`` the train split is not evaluated: its
        ``loss`` is ``running_train_loss``, the mean training loss since the last evaluation.
        ``best_val_*`` and the steps / seconds to target see only the evaluations made: the
        runner evaluates val every epoch, so their resolution is an epoch.
        """
        for name, split in zip(SPLITS, (data.train, data.val, data.test)):
            if name not in splits:
                continue
            if name == "train" and not self.task.evaluate_train:
                if running_train_loss is None:
                    raise ValueError(f"task {self.task.name!r} skips the train split: pass running_train_loss")
                metrics = {"loss": float(running_train_loss)}
            else:
                metrics = self._timed_evaluate(name, model, split, epoch)
            self.last_eval[name] = metrics
            for metric, value in metrics.items():
                self._point(step, epoch, name, metric, value)
            self.emit(EvalLogged(self.config, step, epoch, name, metrics))
            bad = next(((metric, value) for metric, value in metrics.items() if not math.isfinite(value)), None)
            if bad is not None:  # after the point is logged: the curve shows where it broke
                raise NonFiniteEvaluation(step, name, *bad)
        for metric, value in self.last_eval["val"].items():
            better = min if metric == "loss" else max
            self.best_val[metric] = better(self.best_val.get(metric, value), value)
        self._check_target(step)

    def _timed_evaluate(self, name: str, model: torch.nn.Module, split: Split, epoch: float) -> dict[str, float]:
        started = time.perf_counter()
        batch_size = self.task.eval_batch_size
        metrics = self.task.evaluate(model, split, batch_size=batch_size)
        if name == "test":
            runtime = max(time.perf_counter() - started, 1e-12)
            self.test_timing = {
                "eval_runtime": runtime,
                "eval_samples_per_second": len(split) / runtime,
                "eval_steps_per_second": math.ceil(len(split) / batch_size) / runtime,
                "epoch": epoch,
            }
        return metrics

    def _check_target(self, step: int) -> None:
        metric, target = self.task.target_metric, self.task.target_value
        value = self.last_eval["val"].get(metric)
        if self.steps_to_target is not None or value is None:
            return
        reached = value <= target if metric == "loss" else value >= target
        if reached:
            self.steps_to_target, self.seconds_to_target = step, self.train_seconds

    def state(self) -> dict[str, Any]:
        """The bookkeeping so far as plain data (numbers, strings, lists, dicts) for a checkpoint."""
        return {
            "curves": [[p.step, p.epoch, p.split, p.name, p.value, p.group] for p in self.curves],
            "last_eval": self.last_eval, "best_val": self.best_val, "test_timing": self.test_timing,
            "grad_all": [list(m) for m in self.grad_all], "grad_epoch": [list(m) for m in self.grad_epoch],
            "train_seconds": self.train_seconds, "samples": self.samples,
            "steps_to_target": self.steps_to_target, "seconds_to_target": self.seconds_to_target,
            "alpha": self.alpha.state(), "train_target": self.train_target.state(),
        }  # fmt: skip

    def restore(self, state: dict[str, Any]) -> None:
        """Continue from :meth:`state`'s output: later points and summaries extend it."""
        self.curves = [CurvePoint(*point) for point in state["curves"]]
        self.last_eval = {split: dict(metrics) for split, metrics in state["last_eval"].items()}
        self.best_val, self.test_timing = dict(state["best_val"]), dict(state["test_timing"])
        self.grad_all = [(m, v) for m, v in state["grad_all"]]
        self.grad_epoch = [(m, v) for m, v in state["grad_epoch"]]
        self.train_seconds, self.samples = float(state["train_seconds"]), int(state["samples"])
        self.steps_to_target, self.seconds_to_target = state["steps_to_target"], state["seconds_to_target"]
        if "alpha" in state:  # checkpoints written before these summaries existed start them afresh
            self.alpha.restore(state["alpha"])
            self.train_target.restore(state["train_target"])

    def result(self, status: RunStatus, reason: str, steps: int, epochs: float, wall_seconds: float,
               provenance: dict[str, str], cpu_seconds: float | None = None) -> RunResult:  # fmt: skip
        """The run's record. Split metrics only for ``done`` runs: a diverged model's are noise.

        ``cpu_seconds`` (the training process's CPU time for the run; of its last part only
        when resumed) goes into ``final``: unlike the wall time it barely depends on what else
        the machine runs, so a loaded machine can still estimate a sweep's cost.
        """
        final = {**self._performance(epochs), **self.targets, **self.alpha.summary(), **self.train_target.summary()}
        if cpu_seconds is not None:
            final["cpu_seconds"] = cpu_seconds
        evaluation: dict[str, float] = {}
        if status == "done" and self.last_eval:
            for split, metrics in self.last_eval.items():
                final.update({f"{split}_{name}": value for name, value in metrics.items()})
            final.update({f"best_val_{name}": value for name, value in self.best_val.items()})
            evaluation = {f"eval_{name}": value for name, value in self.last_eval["test"].items()}
            evaluation.update(self.test_timing)
        return RunResult(
            config=self.config, status=status, reason=reason, final=final, eval=evaluation,
            curves=tuple(self.curves), steps=steps, epochs_completed=epochs,
            wall_seconds=wall_seconds, steps_to_target=self.steps_to_target,
            seconds_to_target=self.seconds_to_target, provenance=provenance,
        )  # fmt: skip

    def _performance(self, epochs: float) -> dict[str, float]:
        final = {
            "peak_ram_mb": peak_ram_mb(),
            "peak_vram_mb": peak_vram_mb(self.device),
            "optimizer_state_bytes": float(optimizer_state_bytes(self.optimizer)),
        }
        if self.train_seconds > 0:
            final["samples_per_second"] = self.samples / self.train_seconds
            final["epoch_seconds"] = self.train_seconds / max(epochs, 1e-12)
        if self.grad_all:
            final["grad_mean"] = sum(m for m, _ in self.grad_all) / len(self.grad_all)
            final["grad_var"] = sum(v for _, v in self.grad_all) / len(self.grad_all)
        return final
