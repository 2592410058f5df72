"""Events in, what to draw out: the GUI's state without a single widget.

:class:`Presenter` folds the worker's events (the bench events plus the GUI's own) into
series per optimizer and seed, and answers the views' questions: a mean ± std band over
seeds, the watched layer's latest bars, the progress, the status line, the final results.
It imports neither Tk nor matplotlib, so tests drive it with synthetic events.

Bands align seeds by the index of their points (the i-th evaluation of every seed), not
by value: every seed of one optimizer runs the same schedule, so index i is the same
epoch; a seed that stopped early simply drops out of the later points (``count`` says
how many seeds each point has). The spread is the sample standard deviation (ddof 1),
0 where only one seed has the point.

Example:
    >>> presenter = Presenter()
    >>> presenter.progress()
    0.0
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from gradretention.bench.events import EvalLogged, RunFinished, RunStarted, StepLogged
from gradretention.bench.results import RunResult
from gradretention.gui.messages import (
    GuiEvent, LayerSnapshot, Notice, OptimizerTraits, SessionFinished, SessionStarted,
)

CURVE_SERIES = ("train_loss", "val_loss", "train_accuracy", "val_accuracy")
BAR_KINDS = ("update", "grad", "effective_lr")
# Telemetry keys drawn as lr curves (not as controller scalars) or not at all (categorical).
LR_KEYS = ("lr", "lr_min", "lr_mean", "lr_max")
SKIPPED_TELEMETRY = ("reward",)
# The session's life: idle → starting → running → done | stopped | error → starting ...; pausing is
# a flag beside the phase, since a session may be paused before its first event arrives.
ACTIVE_PHASES = ("starting", "running")
MAX_LABEL_SPEC = 28  # characters of a spec shown on the lr slider's label


@dataclass(frozen=True)
class Band:
    """Mean ± std over seeds at each aligned point; empty when nothing was logged."""

    x: tuple[float, ...] = ()
    mean: tuple[float, ...] = ()
    std: tuple[float, ...] = ()
    count: tuple[int, ...] = ()


@dataclass(frozen=True)
class ControlState:
    """Which controls are live and what the lr slider says it acts on.

    ``target``: the spec the lr controls change (the running optimizer, ``None`` between
    sessions); ``retention``: the base-lr entry and "Retain minimum scaling" apply to it.
    """

    target: str | None
    lr_label: str
    lr_enabled: bool
    retention: bool
    start_enabled: bool
    session_buttons: bool  # Pause, Stop, Skip
    paused: bool


@dataclass(frozen=True)
class ResultRow:
    """One optimizer's finished runs: test loss and accuracy as (mean, std, n) over runs that finished."""

    optimizer: str
    runs: int
    statuses: dict[str, int]
    test_loss: tuple[float, float, int]
    test_accuracy: tuple[float, float, int]


def band_of(traces: list[list[tuple[float, float]]]) -> Band:
    """Align ``traces`` (one list of (x, y) per seed) by index and reduce each point to mean ± std."""
    length = max((len(trace) for trace in traces), default=0)
    xs, means, stds, counts = [], [], [], []
    for i in range(length):
        points = [trace[i] for trace in traces if i < len(trace)]
        ys = [y for _, y in points]
        xs.append(statistics.fmean(x for x, _ in points))
        means.append(statistics.fmean(ys))
        stds.append(statistics.stdev(ys) if len(ys) > 1 else 0.0)
        counts.append(len(ys))
    return Band(tuple(xs), tuple(means), tuple(stds), tuple(counts))


def mean_std(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std, n) of the finite ``values``; NaNs when there are none."""
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return math.nan, math.nan, 0
    return statistics.fmean(finite), statistics.stdev(finite) if len(finite) > 1 else 0.0, len(finite)


class Presenter:
    """The GUI's state; :meth:`handle` every event, then ask what to draw."""

    def __init__(self) -> None:
        self._reset()
        self.phase, self.paused = "idle", False
        self.status = "ready: choose optimizers and press Start"
        # The last control message stays up while step updates rewrite ``status`` many times a second.
        self.notice = ""

    def _reset(self) -> None:
        self.optimizers: list[str] = []
        self.seeds: tuple[int, ...] = ()
        self.layers: tuple[str, ...] = ()
        self.total_steps = 0
        self.finished_steps = 0  # planned steps of runs that ended (a skipped run counts whole)
        self.current_steps = 0
        self.planned_run_steps = 0
        self.current: RunStarted | None = None
        self.current_lr: float | None = None
        self.target: str | None = None  # the spec the lr controls act on: the run going on, or the last one
        self.traits: dict[str, OptimizerTraits] = {}
        self.snapshots: dict[str, LayerSnapshot] = {}
        self.results: dict[str, list[RunResult]] = defaultdict(list)
        self.session_status: str | None = None
        self._series: dict[tuple[str, str], dict[int, list[tuple[float, float]]]] = defaultdict(dict)
        self.dirty = True

    def handle(self, event: GuiEvent) -> None:
        """Fold one event into the state and mark the views for redrawing."""
        handler = _HANDLERS.get(type(event))
        if handler is None:
            raise ValueError(f"the presenter cannot handle {type(event).__name__}; "
                             f"known events: {', '.join(t.__name__ for t in _HANDLERS)}")
        handler(self, event)
        self.dirty = True

    def starting(self, description: str) -> None:
        """The window asked for a session (``"sgd on spiral"``); events will follow."""
        self.phase, self.paused, self.notice = "starting", False, ""
        self.status = f"starting {description}…"
        self.dirty = True

    def set_paused(self, paused: bool) -> None:
        """The window paused or resumed the running session (ignored outside one)."""
        if self.phase in ACTIVE_PHASES:
            self.paused = paused
            self.notice = "paused" if paused else "resumed"

    def _on_session(self, event: SessionStarted) -> None:
        self._reset()
        self.phase = "running"
        self.traits = {traits.spec: traits for traits in event.traits}
        self.optimizers = list(event.optimizers)
        self.seeds, self.layers, self.total_steps = event.seeds, event.layers, event.total_steps
        self.status = f"training {', '.join(event.optimizers)} on {event.task} over {len(event.seeds)} seed(s)"

    def _on_run_started(self, event: RunStarted) -> None:
        self.current, self.current_steps, self.planned_run_steps = event, 0, event.total_steps
        self.current_lr, self.target = None, event.config.optimizer
        if event.config.optimizer not in self.optimizers:
            self.optimizers.append(event.config.optimizer)

    def _on_step(self, event: StepLogged) -> None:
        config = event.config
        self.current_steps = event.step
        group0 = {key[: -len("/g0")]: value for key, value in event.telemetry.items() if key.endswith("/g0")}
        lr = group0.get("lr", event.lrs[0] if event.lrs else math.nan)
        self.current_lr = event.lrs[0] if event.lrs else None
        self._add(config.optimizer, "loss", config.seed, event.step, event.loss)
        self._add(config.optimizer, "lr", config.seed, event.step, lr)
        for key, value in group0.items():
            if key in LR_KEYS[1:]:
                self._add(config.optimizer, key, config.seed, event.step, value)
            elif key not in LR_KEYS and key not in SKIPPED_TELEMETRY and not key.startswith("action_"):
                self._add(config.optimizer, f"telemetry/{key}", config.seed, event.step, value)
        self.status = (f"{config.optimizer} · seed {config.seed + 1}/{max(len(self.seeds), 1)} · "
                       f"epoch {event.epoch:.1f} · step {event.step}/{self.planned_run_steps} · "
                       f"loss {event.loss:.4f}")

    def _on_eval(self, event: EvalLogged) -> None:
        for metric in ("loss", "accuracy"):
            if metric in event.metrics:
                name = f"{event.split}_{metric}"
                self._add(event.config.optimizer, name, event.config.seed, event.epoch, event.metrics[metric])

    def _on_snapshot(self, event: LayerSnapshot) -> None:
        self.snapshots[event.config.optimizer] = event

    def _on_run_finished(self, event: RunFinished) -> None:
        result = event.result
        self.results[result.config.optimizer].append(result)
        self.finished_steps += self.planned_run_steps
        self.current, self.current_steps = None, 0
        if result.status != "done":
            self.status = f"{result.config.optimizer} seed {result.config.seed}: {result.status} ({result.reason})"

    def _on_notice(self, event: Notice) -> None:
        self.notice = ("refused: " if event.refused else "") + event.message

    def _on_session_finished(self, event: SessionFinished) -> None:
        self.session_status, self.phase, self.paused = event.status, event.status, False
        self.current, self.target = None, None
        self.notice = ""  # "starting…", "paused" and the like described a session that is over
        if event.status == "done":
            self.finished_steps = self.total_steps
        self.status = f"session {event.status}" + (f": {event.message}" if event.message else "")

    def _add(self, optimizer: str, name: str, seed: int, x: float, y: float) -> None:
        self._series[(optimizer, name)].setdefault(seed, []).append((float(x), float(y)))

    def band(self, optimizer: str, name: str) -> Band:
        """Mean ± std over seeds of series ``name`` (``train_loss``, ``lr``, ``telemetry/epsilon``...)."""
        return band_of(list(self._series.get((optimizer, name), {}).values()))

    def series_names(self, optimizer: str, prefix: str = "") -> list[str]:
        """Names of the series logged for ``optimizer`` that start with ``prefix``, sorted."""
        return sorted(name for opt, name in self._series if opt == optimizer and name.startswith(prefix))

    def bars(self, kind: str) -> dict[str, tuple[float, ...]]:
        """Latest watched-layer values per optimizer: ``update``, ``grad`` or ``effective_lr``."""
        if kind not in BAR_KINDS:
            raise ValueError(f"unknown bar kind {kind!r}; valid: {', '.join(BAR_KINDS)}")
        values = {opt: getattr(snap, kind) for opt, snap in self.snapshots.items()}
        return {opt: v for opt, v in values.items() if v is not None}

    def watched_layer(self) -> str | None:
        return next((snap.layer for snap in reversed(list(self.snapshots.values()))), None)

    def control_state(self) -> ControlState:
        """What the controls may do now: per phase, and per capability of the running optimizer."""
        active = self.phase in ACTIVE_PHASES
        target = self.target if active else None
        traits = self.traits.get(target) if target is not None else None
        if target is None:
            label = "lr (no run)"
        else:
            shown = target if len(target) <= MAX_LABEL_SPEC else target[: MAX_LABEL_SPEC - 1] + "…"
            label = f"{'peak lr' if traits is not None and traits.retention else 'lr'} of {shown}"
        return ControlState(target, label, target is not None, bool(traits and traits.retention),
                            not active, active, self.paused)

    def per_element_note(self) -> str | None:
        """Why the per-element lr panel is empty (``None``: it has bars), from the optimizers' traits."""
        if self.bars("effective_lr"):
            return None
        if not self.traits:
            return "per-element lr η appears while an optimizer that has one (RescaledSGD) runs"
        capable = [spec for spec in self.optimizers if spec in self.traits and self.traits[spec].per_element_lr]
        if capable:
            return f"waiting for the first step of {capable[0]}"
        verb = "keeps" if len(self.optimizers) == 1 else "keep"
        return f"no per-element lr: {', '.join(self.optimizers)} {verb} one lr per group\n(RescaledSGD has one η per weight)"

    def progress(self) -> float:
        """Fraction of the session's planned steps done, in [0, 1]."""
        if self.total_steps <= 0:
            return 0.0
        return min(1.0, (self.finished_steps + self.current_steps) / self.total_steps)

    def result_rows(self) -> list[ResultRow]:
        """Per optimizer: test loss and accuracy mean ± std over its finished runs."""
        rows = []
        for optimizer in self.optimizers:
            runs = self.results.get(optimizer, [])
            statuses: dict[str, int] = {}
            for run in runs:
                statuses[run.status] = statuses.get(run.status, 0) + 1
            done = [run for run in runs if run.status == "done"]
            rows.append(ResultRow(optimizer, len(runs), statuses,
                                  mean_std([run.final.get("test_loss", math.nan) for run in done]),
                                  mean_std([run.final.get("test_accuracy", math.nan) for run in done])))
        return rows

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dump of what the views show (``--dump-state``; NaN becomes null)."""
        series = {f"{opt}:{name}": asdict(self.band(opt, name)) for opt, name in sorted(self._series)}
        state = {"optimizers": self.optimizers, "status": self.status, "notice": self.notice,
                 "progress": self.progress(), "session_status": self.session_status, "layer": self.watched_layer(),
                 "bars": {kind: self.bars(kind) for kind in BAR_KINDS}, "series": series,
                 "results": [asdict(row) for row in self.result_rows()]}
        return _json_ready(state)


def _json_ready(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    return value


_HANDLERS = {
    SessionStarted: Presenter._on_session, RunStarted: Presenter._on_run_started, StepLogged: Presenter._on_step,
    EvalLogged: Presenter._on_eval, LayerSnapshot: Presenter._on_snapshot, RunFinished: Presenter._on_run_finished,
    Notice: Presenter._on_notice, SessionFinished: Presenter._on_session_finished,
}
