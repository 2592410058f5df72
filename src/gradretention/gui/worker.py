"""The GUI's training thread: optimizers one after another, each over its seeds, live.

The bench runner hides its model and optimizer, but the window needs them every step
(the watched layer's update and gradient, RescaledSGD's per-element η, and controls
that change the *running* optimizer), so the GUI trains with its own small loop
(:mod:`gradretention.gui.training`) built from the same pieces: ``get_task``,
``Task.load/build_model/batch_loss/evaluate`` and ``create_optimizer``. It emits the
bench events, so the presenter reads the same records the store does.

No Tk here: the window talks to the worker through two queues — events out
(``queue.Queue`` drained by Tk's ``after`` loop) and commands in (drained between
training steps, so a change lands on the next step).

Example:
    >>> import queue
    >>> events = queue.Queue()
    >>> worker = TrainingWorker(GuiSession(optimizers=("sgd",), seeds=1, epochs=1), events)
    >>> worker.start(); worker.join(60)  # doctest: +SKIP
    >>> type(events.queue[-1]).__name__  # doctest: +SKIP
    'SessionFinished'
"""

from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from gradretention.bench.results import RunConfig
from gradretention.gui.demo import DEMO_TASK, default_optimizers
from gradretention.gui.messages import (
    Command, GuiEvent, Notice, OptimizerTraits, SelectLayer, SessionFinished, SessionStarted, SetBaseLr, SetLr,
    SetRetainMin,
)
from gradretention.gui.training import GuiRun, RunPlan, StopSignals, watchable_layers
from gradretention.optim import create_optimizer
from gradretention.tasks.registry import get_task

MAX_OPTIMIZERS = 4  # four panels side by side are still readable


def optimizer_traits(spec: str) -> OptimizerTraits:
    """What the controls can change on ``spec``, read off an optimizer built on a probe tensor.

    Capabilities come from the optimizer itself (an ``effective_lr`` method, ``base_lr`` and
    ``retain_min`` in its groups), not from its name: ``rescaled_sgd[lr=0.03]`` and any future
    optimizer with per-element rates are recognised alike.

    Raises:
        ValueError: ``spec`` does not build an optimizer (unknown name, bad value).
    """
    optimizer = create_optimizer(spec, [torch.zeros(1, requires_grad=True)])
    group = optimizer.param_groups[0]
    lr = group.get("lr")
    # A composed optimizer keeps lr as a 0-d tensor (the controller updates it on the device).
    known = isinstance(lr, (int, float)) or (isinstance(lr, torch.Tensor) and lr.numel() == 1)
    return OptimizerTraits(spec, float(lr) if known else None,
                           callable(getattr(optimizer, "effective_lr", None)),
                           "base_lr" in group and "retain_min" in group)


def check_optimizer_specs(specs: tuple[str, ...]) -> tuple[str, ...]:
    """``specs`` if each builds an optimizer and there are 1 to 4 of them.

    Raises:
        ValueError: naming the bad spec (unknown name with a did-you-mean, bad value) or the count.
    """
    if not 1 <= len(specs) <= MAX_OPTIMIZERS:
        raise ValueError(f"choose 1 to {MAX_OPTIMIZERS} optimizers, got {len(specs)}: {', '.join(specs)}")
    if len(set(specs)) != len(specs):
        raise ValueError(f"each optimizer may appear once, got {', '.join(specs)}")
    for spec in specs:
        optimizer_traits(spec)  # raises ValueError naming the spec's problem
    return specs


@dataclass(frozen=True)
class GuiSession:
    """What the window trains: ``optimizers`` × seeds ``0 .. seeds-1`` on ``task``.

    ``epochs`` / ``batch_size`` ``None`` take the task's defaults (``batch_size=0``: full
    batch); ``log_every`` steps between step events; ``max_bars`` caps the watched layer's
    elements sent per snapshot (the bars stay readable and the queue light).
    """

    task: str = DEMO_TASK
    optimizers: tuple[str, ...] = field(default_factory=lambda: default_optimizers(DEMO_TASK))
    seeds: int = 3
    epochs: int | None = None
    batch_size: int | None = None
    log_every: int = 1
    data_seed: int = 0
    max_bars: int = 64
    data_dir: Path | None = None

    def __post_init__(self) -> None:
        for name in ("seeds", "log_every", "max_bars"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {self.epochs}")
        if self.batch_size is not None and self.batch_size < 0:
            raise ValueError(f"batch_size must be >= 0 (0: full batch), got {self.batch_size}")
        get_task(self.task)  # unknown task: ValueError listing the valid ones
        check_optimizer_specs(tuple(self.optimizers))


class TrainingWorker:
    """Runs a :class:`GuiSession` in a daemon thread; pause, stop, skip and commands are thread-safe."""

    def __init__(self, session: GuiSession, events: queue.Queue[GuiEvent]) -> None:
        self.session = session
        self.events = events
        self.commands: queue.Queue[Command] = queue.Queue()
        self.signals = StopSignals()
        self.layer: str | None = None
        # Control changes per optimizer spec, replayed on its later seeds so they stay comparable.
        self.overrides: dict[str, dict[str, Any]] = {}
        self._thread = threading.Thread(target=self._main, name="gradretention-gui-training", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        self._thread.join(timeout)

    def is_alive(self) -> bool:
        return self._thread.is_alive()

    def pause(self) -> None:
        self.signals.resume.clear()

    def resume(self) -> None:
        self.signals.resume.set()

    def stop(self) -> None:
        self.signals.stop.set()
        self.signals.resume.set()  # a paused worker must wake up to see the stop

    def skip(self) -> None:
        """End the current optimizer (its remaining seeds too) and go on with the next."""
        self.signals.skip.set()
        self.signals.resume.set()

    def send(self, command: Command) -> None:
        self.commands.put(command)

    def emit(self, event: GuiEvent) -> None:
        self.events.put(event)

    def _main(self) -> None:
        try:
            status = self._session()
            self.emit(SessionFinished(status))
        except (ValueError, FileNotFoundError) as exc:
            self.emit(SessionFinished("error", str(exc)))
        except Exception as exc:  # noqa: BLE001 - the thread reports every failure to the window
            self.emit(SessionFinished("error", f"{type(exc).__name__}: {exc}"))

    def _session(self) -> str:
        session = self.session
        task = get_task(session.task)
        data = task.load(session.data_seed, session.data_dir)
        plan = RunPlan.for_task(task, data, session.epochs, session.batch_size, session.max_bars)
        layers, first_weight = watchable_layers(task, data)
        self.layer = self.layer if self.layer in layers else first_weight
        self.emit(SessionStarted(session.task, tuple(session.optimizers), tuple(range(session.seeds)),
                                 plan.total_steps * len(session.optimizers) * session.seeds, layers,
                                 tuple(optimizer_traits(spec) for spec in session.optimizers)))
        for spec in session.optimizers:
            self.signals.skip.clear()
            for seed in range(session.seeds):
                if self.signals.stop.is_set() or self.signals.skip.is_set():
                    break
                # Every epoch: a live view wants its validation curve point by point, not the
                # benchmark's "auto" schedule, which spaces evaluations for throughput.
                config = RunConfig(task=session.task, optimizer=spec, seed=seed, data_seed=session.data_seed,
                                   epochs=plan.epochs, batch_size=session.batch_size, log_every=session.log_every,
                                   extra=(("eval_every", 1),))
                GuiRun(self, config, task, data, plan).run()
            if self.signals.stop.is_set():
                return "stopped"
        return "done"

    def apply_commands(self, optimizer: torch.optim.Optimizer, spec: str, layers: tuple[str, ...]) -> None:
        """Apply every queued command to the running ``optimizer``; refusals become notices."""
        while True:
            try:
                command = self.commands.get_nowait()
            except queue.Empty:
                return
            notice = self._apply(command, optimizer, layers)
            if not notice.refused and not isinstance(command, SelectLayer):
                self.overrides.setdefault(spec, {}).update(_override_of(command))
            self.emit(notice)

    def restore_overrides(self, optimizer: torch.optim.Optimizer, spec: str) -> None:
        """Replay this spec's earlier control changes on a fresh optimizer (a later seed)."""
        for key, value in self.overrides.get(spec, {}).items():
            for group in optimizer.param_groups:
                if key in group:
                    group[key] = value

    def _apply(self, command: Command, optimizer: torch.optim.Optimizer, layers: tuple[str, ...]) -> Notice:
        groups = optimizer.param_groups
        if isinstance(command, SelectLayer):
            if command.name not in layers:
                return Notice(f"no layer {command.name!r}; layers: {', '.join(layers)}", refused=True)
            self.layer = command.name
            return Notice(f"watching layer {command.name}")
        if isinstance(command, SetLr):
            return _set_lr(groups, command.value)
        key, value = ("base_lr", command.value) if isinstance(command, SetBaseLr) else ("retain_min", command.enabled)
        owners = [group for group in groups if key in group]
        if not owners:
            return Notice(f"the running optimizer has no {key} (only RescaledSGD does); nothing changed", refused=True)
        if key == "base_lr" and any(value > group["lr"] for group in owners):
            peak = min(group["lr"] for group in owners)
            return Notice(f"base lr {value:g} is above the peak lr {peak:g}; lower it or raise the lr first",
                          refused=True)
        for group in owners:
            group[key] = value
        return Notice(f"{key} set to {value}")


def _set_lr(groups: list[dict[str, Any]], value: float) -> Notice:
    if not (math.isfinite(value) and value > 0):
        return Notice(f"lr must be a positive number, got {value}", refused=True)
    floor = max((group["base_lr"] for group in groups if "base_lr" in group), default=0.0)
    if value < floor:
        return Notice(f"lr {value:g} is below base lr {floor:g}; lower the base lr first", refused=True)
    for group in groups:
        group["lr"] = value
    return Notice(f"lr set to {value:g}")


def _override_of(command: Command) -> dict[str, Any]:
    if isinstance(command, SetLr):
        return {"lr": command.value}
    if isinstance(command, SetBaseLr):
        return {"base_lr": command.value}
    if isinstance(command, SetRetainMin):
        return {"retain_min": command.enabled}
    return {}
