"""The sweep configuration: one frozen dataclass that CLI flags and TOML files map onto.

Every field of :class:`SweepConfig` is a CLI flag (``--max-steps`` for ``max_steps``) and a
TOML key of the same name; nothing else is accepted, so a typo is an error rather than a
silently ignored setting.

Example ``sweep.toml``::

    tasks = ["spiral", "digits-mlp"]
    optimizers = ["adam", "adam_hd[hypergrad_lr=1e-07]"]
    seeds = 3              # final-phase seeds 0..2
    lrs = [0.0003, 0.001, 0.003]
    epochs = 5
    out = "bench-out"
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

DEVICES = ("cpu", "cuda", "mps")


EXECUTORS: tuple[str, ...] = ("local", "ray")


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: tasks × optimizers × lr grid, tuned on validation, then rerun on seeds.

    Attributes:
        tasks: Task names; empty means every embedded task (``"all"`` is accepted too).
        optimizers: Optimizer specs (``"adam_hd[hypergrad_lr=1e-07]"``); empty means the
            default families; ``"all"`` is accepted.
        seeds: Final-phase seeds, numbered ``0 .. seeds-1``.
        lrs: The absolute learning-rate grid shared by every optimizer. Empty: use
            ``lr_factors``; both empty: each optimizer's own default lr, no tuning.
        lr_factors: A grid relative to each optimizer's default lr, the same relative grid
            for every optimizer, used when ``lrs`` is empty. The default ``(0.1, 1, 10)``
            spans two decades around each default (the registry's defaults differ by
            optimizer family: sgd 1e-2, adam 1e-3, ...).
        tune_seeds: Seeds ``0 .. tune_seeds-1`` that score each grid point on validation.
        epochs: Epochs per run; ``None``: the task's default. Exclusive with ``max_steps``.
        max_steps: Optimizer steps per run, instead of epochs.
        batch_size: ``None``: the task's default; ``0``: full batch.
        log_every: Steps between train-loss / lr / gradient logs.
        data_dir: Folder for tasks that read files.
        data_seed: Which fixed train / val / test split.
        out: Output folder holding ``runs.db`` and the report.
        workers: Parallel runs; ``None``: the machine's cores.
        threads: Intra-op CPU threads per run. 1 keeps every number bitwise independent
            of ``workers``; 0: ``cores // workers`` (faster for big models with few
            workers, but equal only up to the last digits).
        device: ``cpu``, ``cuda`` (or ``cuda:1``), ``mps``.
        executor: ``local`` (a process pool) or ``ray`` (each run a Ray task).
        ray_address: ``auto`` or ``HOST:PORT`` of a Ray cluster; None starts a local Ray.
        cpus_per_run / gpus_per_run: resources Ray reserves per run.
        tensorboard: write event files under ``<out>/tensorboard``.
    """

    tasks: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()
    seeds: int = 3
    lrs: tuple[float, ...] = ()
    lr_factors: tuple[float, ...] = (0.1, 1.0, 10.0)
    tune_seeds: int = 1
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    log_every: int = 10
    data_dir: str | None = None
    data_seed: int = 0
    out: str = "bench-out"
    workers: int | None = None
    threads: int = 1
    device: str = "cpu"
    executor: str = "local"
    ray_address: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    tensorboard: bool = False

    def __post_init__(self) -> None:
        for name in ("seeds", "tune_seeds", "log_every"):
            _check_at_least(name, getattr(self, name), 1)
        for name in ("epochs", "max_steps", "workers"):
            if getattr(self, name) is not None:
                _check_at_least(name, getattr(self, name), 1)
        if self.batch_size is not None:
            _check_at_least("batch_size", self.batch_size, 0)
        _check_at_least("threads", self.threads, 0)
        _check_at_least("data_seed", self.data_seed, 0)
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError(f"set epochs or max_steps, not both (got epochs={self.epochs}, max_steps={self.max_steps})")
        for name in ("lrs", "lr_factors"):
            bad = [v for v in getattr(self, name) if not (math.isfinite(v) and v > 0)]
            if bad:
                raise ValueError(f"{name} must be positive finite numbers, got {bad[0]!r}")
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if not (self.cpus_per_run > 0 and self.gpus_per_run >= 0):
            raise ValueError(f"cpus_per_run must be > 0 and gpus_per_run >= 0, got {self.cpus_per_run}, "
                             f"{self.gpus_per_run}")
        if self.device.split(":", 1)[0] not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)} (optionally cuda:N), got {self.device!r}")

    def lr_grid_size(self) -> int:
        """Points per optimizer in the tuning grid (0: no grid, each optimizer's default)."""
        return len(self.lrs) or len(self.lr_factors)


def _check_at_least(name: str, value: int, low: int) -> None:
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value}")


def config_fields() -> tuple[str, ...]:
    """Every valid key, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(SweepConfig))


def sweep_config_from_mapping(values: dict[str, Any], source: str = "config") -> SweepConfig:
    """Build a :class:`SweepConfig` from plain values (TOML, flags), checking names and types.

    Raises:
        ValueError: An unknown key (the message lists the valid keys), a value of the wrong
            type (naming the key, the expected type and the value) or out of range.
    """
    return SweepConfig(**checked_values(values, source))


def checked_values(values: dict[str, Any], source: str = "config") -> dict[str, Any]:
    """``values`` with every key a field and every value of its field's type (lists as tuples).

    Raises:
        ValueError: An unknown key (listing the valid keys) or a value of the wrong type.
    """
    valid = config_fields()
    unknown = sorted(set(values) - set(valid))
    if unknown:
        raise ValueError(f"{source}: unknown key(s) {', '.join(map(repr, unknown))}; valid keys: {', '.join(valid)}")
    hints = typing.get_type_hints(SweepConfig)
    return {key: _coerce(key, value, hints[key], source) for key, value in values.items()}


def load_sweep_config(path: Path | str) -> SweepConfig:
    """Read a TOML file whose top-level keys are :class:`SweepConfig` fields.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Invalid TOML, an unknown key (valid keys listed) or a bad value.
    """
    return sweep_config_from_mapping(read_config_values(path), source=str(path))


def read_config_values(path: Path | str) -> dict[str, Any]:
    """The keys a TOML file sets, checked and typed, without filling defaults (for layering
    under command-line flags).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: Invalid TOML, an unknown key (valid keys listed) or a bad value.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"sweep config file not found: {path}")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: invalid TOML: {exc}") from exc
    return checked_values(values, source=str(path))


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` as the field's type; lists become tuples, ints are accepted as floats."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None: TOML has no null, so X it is
        hint = next(a for a in args if a is not type(None))
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{source}: {key!r} must be a list of {args[0].__name__}, got {value!r}")
        return tuple(_scalar(key, item, args[0], source) for item in value)
    return _scalar(key, value, hint, source)


def _scalar(key: str, value: Any, kind: type, source: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int subclass: accept it only where a bool is asked for.
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ValueError(f"{source}: {key!r} must be {kind.__name__}, got {value!r} ({type(value).__name__})")
    return value
