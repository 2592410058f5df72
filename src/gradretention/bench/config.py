"""The sweep configuration: one frozen dataclass that CLI flags and TOML files map onto.

Every field of :class:`SweepConfig` is a CLI flag (``--max-steps`` for ``max_steps``, added by
:func:`gradretention.bench.config_flags.add_config_flags`) and a TOML key of the same name;
nothing else is accepted, so a typo is an error rather than a silently ignored setting.

Example ``sweep.toml``::

    tasks = ["spiral", "digits-mlp"]
    optimizers = ["adam", "adam_hd[hypergrad_lr=1e-07]"]
    seeds = 5              # final-phase seeds 100..104
    tune_seeds = 3         # tuning seeds 0..2
    lr_low = 1e-4          # the grid protocol's first grid: 1e-4 .. 1e-1, half-decades,
    lr_high = 0.1          # extended at an edge by up to `extend` points per side
    epochs = 5
    out = "bench-out"
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib  # type: ignore[no-redef]

from gradretention.tasks.presets import get_preset

DEVICES = ("cpu", "cuda", "mps")


EXECUTORS: tuple[str, ...] = ("local", "ray")
PROTOCOLS: tuple[str, ...] = ("grid", "budget")
FINAL_SEED_START = 100  # final seeds are FINAL_SEED_START + 0 .. seeds-1: never a tuning seed


# Each integer setting's valid range. The upper bounds guard against typos (``--epochs 1e23``
# trains forever, ``workers = 2**63`` overflows a C long), far above any real sweep's needs.
INT_RANGES: dict[str, tuple[int, int]] = {
    "seeds": (1, 1000), "tune_seeds": (1, FINAL_SEED_START), "log_every": (1, 10**9), "epochs": (1, 1_000_000),
    "max_steps": (1, 10**10), "batch_size": (0, 10**8), "extend": (0, 20), "trials": (1, 100_000),
    "data_seed": (0, 2**32 - 1), "workers": (1, 1024), "threads": (0, 1024), "checkpoint_every": (1, 1_000_000),
    "max_len": (2, 1_000_000),
}  # fmt: skip


EVAL_EVERY_AUTO = "auto"
"""The default evaluation schedule: an interval in epochs derived from the task's split sizes."""


def eval_every_value(value: object) -> int | str:
    """``value`` if it is an evaluation schedule: ``"auto"`` or an int >= 1 (epochs).

    Raises:
        ValueError: anything else, naming the value and the valid choices.
    """
    if value == EVAL_EVERY_AUTO or (isinstance(value, int) and not isinstance(value, bool) and value >= 1):
        return value  # type: ignore[return-value]
    raise ValueError(f"eval_every must be {EVAL_EVERY_AUTO!r} or an int >= 1 (epochs between evaluations), "
                     f"got {value!r}")


@dataclass(frozen=True)
class SweepConfig:
    """A sweep: tasks × optimizers, each tuned on validation, then rerun on fresh seeds.

    The tuning protocol (:mod:`gradretention.bench.protocol`) is one of:

    - ``grid`` (default): the absolute half-decade grid ``lr_low .. lr_high`` shared by every
      optimizer, extended at an edge by up to ``extend`` half-decades per side;
      ``lrs`` replaces it by a listed absolute grid, ``lr_factors`` by a grid relative to
      each optimizer's default lr (both scored as listed, never extended; they are two
      ways to give one grid, so giving both is an error); ``lr_factors=()`` tunes nothing
      (each optimizer's default lr), as does a single ``lrs`` value;
    - ``budget``: ``trials`` scrambled-Sobol points of each optimizer's declared search
      space (lr and its own hyperparameters), the same number for every optimizer.

    An optimizer whose spec sets ``lr`` (``sgd_hd_adam[lr=0.01]``) is not tuned by either
    protocol: its final runs train that lr (recorded as protocol ``fixed``).

    Attributes:
        tasks: Task names; empty means every embedded task (``"all"`` is accepted too).
        optimizers: Optimizer specs (``"adam_hd[hypergrad_lr=1e-07]"``); empty means the
            default families; ``"all"`` is accepted.
        seeds: Final-phase seeds, numbered ``100 .. 100+seeds-1`` (:data:`FINAL_SEED_START`),
            disjoint from the tuning seeds: no reported number comes from a run that chose.
        lrs: A listed absolute lr grid shared by every optimizer, instead of the half-decade
            grid; scored as listed, not extended.
        lr_factors: A grid relative to each optimizer's default lr (``0.1,1,10``), instead of
            the half-decade grid; ``()``: no tuning, each optimizer's default lr. ``None``:
            not given. Exclusive with ``lrs``.
        tune_seeds: Seeds ``0 .. tune_seeds-1`` that score each grid point (or trial) on
            validation, at most :data:`FINAL_SEED_START`.
        protocol: ``grid`` or ``budget`` (see above).
        trials: Sobol trials per optimizer; the budget protocol needs it, the grid refuses it.
        lr_low / lr_high: The grid protocol's first grid, snapped outward onto half-decades
            (default ``1e-5 .. 1``); also the budget protocol's lr range.
        extend: Half-decades the grid protocol may add per side while the best sits on an
            edge (default 3; 0: never extends).
        epochs: Epochs per run; ``None``: the task's default. Exclusive with ``max_steps``.
        max_steps: Optimizer steps per run, instead of epochs.
        batch_size: ``None``: the task's default; ``0``: full batch.
        log_every: Steps between train-loss / lr / gradient logs.
        eval_every: When the train / val / test splits are evaluated: ``"auto"`` (every k
            epochs, k from the task's split sizes so that evaluation stays near 10 % of a
            run, see :func:`gradretention.bench.metering.evaluation_interval`) or an int N
            (every N epochs; 1 gives per-epoch curves). The last step is always evaluated.
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
        download: let Hugging Face fetch missing datasets (for users with internet).
        model_path: Hugging Face model folder for the BERT tasks; ``None``: the shipped MiniLM.
        max_len: token budget of every text task; ``None``: each task's own.
        preset: a :data:`~gradretention.tasks.presets.PRESETS` name (``seed-plan``): its
            batch size and epochs where these are unset, its lr and weight decay in every
            optimizer spec that sets none (see :func:`with_preset`).
        checkpoint_every: save each run's state every N epochs (and at its end) to
            ``<out>/checkpoints/<run id>.pt``; ``None``: no checkpoints.
        resume: continue each run from its checkpoint where one exists.
    """

    tasks: tuple[str, ...] = ()
    optimizers: tuple[str, ...] = ()
    seeds: int = 5
    lrs: tuple[float, ...] = ()
    lr_factors: tuple[float, ...] | None = None
    tune_seeds: int = 3
    protocol: str = "grid"
    trials: int | None = None
    lr_low: float | None = None
    lr_high: float | None = None
    extend: int = 3
    epochs: int | None = None
    max_steps: int | None = None
    batch_size: int | None = None
    log_every: int = 10
    eval_every: int | str = EVAL_EVERY_AUTO
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
    download: bool = False
    model_path: str | None = None
    max_len: int | None = None
    preset: str | None = None
    checkpoint_every: int | None = None
    resume: bool = False

    def __post_init__(self) -> None:
        for name in INT_RANGES:
            if getattr(self, name) is not None:
                check_int_range(name, getattr(self, name))
        eval_every_value(self.eval_every)
        if not self.out.strip():  # "" would put runs.db and the report in whatever folder the command ran in
            raise ValueError(f"out must name a folder, got {self.out!r}")
        if self.epochs is not None and self.max_steps is not None:
            raise ValueError(f"set epochs or max_steps, not both (got epochs={self.epochs}, max_steps={self.max_steps})")
        for name in ("lrs", "lr_factors"):
            bad = [v for v in getattr(self, name) or () if not (math.isfinite(v) and v > 0)]
            if bad:
                raise ValueError(f"{name} must be positive finite numbers, got {bad[0]!r}")
        self._check_protocol()
        if self.executor not in EXECUTORS:
            raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {self.executor!r}")
        if not (self.cpus_per_run > 0 and self.gpus_per_run >= 0):
            raise ValueError(f"cpus_per_run must be > 0 and gpus_per_run >= 0, got {self.cpus_per_run}, "
                             f"{self.gpus_per_run}")
        if self.device.split(":", 1)[0] not in DEVICES:
            raise ValueError(f"device must be one of {', '.join(DEVICES)} (optionally cuda:N), got {self.device!r}")
        if self.preset is not None:
            get_preset(self.preset)  # an unknown name fails here, with a did-you-mean

    def _check_protocol(self) -> None:
        """Refuse settings that contradict each other instead of ignoring one of them."""
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {self.protocol!r}")
        # Each of these chooses the grid; () is a choice for lr_factors (no tuning), not for lrs.
        grids = [name for name in ("lrs", "lr_factors", "lr_low", "lr_high")
                 if (bool(self.lrs) if name == "lrs" else getattr(self, name) is not None)]  # fmt: skip
        listed = [name for name in grids if name in ("lrs", "lr_factors")]
        if len(listed) == 2 or (listed and len(grids) > len(listed)):
            raise ValueError(f"{' and '.join(_flag(n) for n in grids)} each set the lr grid; give one of them")
        for name in ("lr_low", "lr_high"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive finite number, got {value!r}")
        if self.lr_low is not None and self.lr_high is not None and self.lr_low > self.lr_high:
            raise ValueError(f"lr_low must be <= lr_high, got {self.lr_low!r} > {self.lr_high!r}")
        if self.protocol == "budget":
            if self.trials is None:
                raise ValueError("protocol 'budget' needs trials (--trials K, the Sobol trials per optimizer)")
            if listed:
                raise ValueError(f"protocol 'budget' samples lrs from its search space; drop {_flag(listed[0])}")
        elif self.trials is not None:
            raise ValueError(f"trials is the budget protocol's setting; got trials={self.trials} with protocol "
                             f"{self.protocol!r} (add --protocol budget, or drop --trials)")  # fmt: skip

    def tuning_seeds(self) -> tuple[int, ...]:
        """The seeds that score tuning points: ``0 .. tune_seeds-1``."""
        return tuple(range(self.tune_seeds))

    def final_seeds(self) -> tuple[int, ...]:
        """The seeds of the reported runs: ``100 .. 100+seeds-1``, disjoint from the tuning seeds."""
        return tuple(range(FINAL_SEED_START, FINAL_SEED_START + self.seeds))


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def check_int_range(name: str, value: int) -> None:
    """Raise ``ValueError`` naming ``name``, its valid range and ``value`` unless it lies in :data:`INT_RANGES`."""
    low, high = INT_RANGES[name]
    if value < low:
        raise ValueError(f"{name} must be >= {low}, got {value} (valid: {low} .. {high})")
    if value > high:
        raise ValueError(f"{name} must be <= {high}, got {value} (valid: {low} .. {high})")


def config_fields() -> tuple[str, ...]:
    """Every valid key, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(SweepConfig))


def sweep_config_from_mapping(values: dict[str, Any], source: str = "config") -> SweepConfig:
    """Build a :class:`SweepConfig` from plain values (TOML, flags), checking names and types.

    A ``preset`` is applied (:func:`with_preset`), so the result holds the settings that run.

    Raises:
        ValueError: An unknown key (the message lists the valid keys), a value of the wrong
            type (naming the key, the expected type and the value) or out of range.
    """
    return with_preset(SweepConfig(**checked_values(values, source)))


def with_preset(config: SweepConfig) -> SweepConfig:
    """``config`` with its preset's settings wherever ``config`` leaves them open.

    The preset's batch size where ``batch_size`` is unset, its epochs where neither
    ``epochs`` nor ``max_steps`` is set, and its lr and weight decay in every optimizer
    spec (empty or ``all``: the default families) that does not set them. Idempotent.

    Raises:
        ValueError: an unknown preset, or an invalid optimizer spec.
    """
    if config.preset is None:
        return config
    from gradretention.bench.sweep import resolve_optimizers  # sweep imports this module

    preset = get_preset(config.preset)
    budget_open = config.epochs is None and config.max_steps is None
    return dataclasses.replace(
        config,
        optimizers=tuple(dict.fromkeys(preset.optimizer_spec(s) for s in resolve_optimizers(config.optimizers))),
        batch_size=preset.batch_size if config.batch_size is None else config.batch_size,
        epochs=preset.epochs if budget_open else config.epochs,
    )


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
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else str(exc)
        raise ValueError(f"{path}: invalid TOML: {reason}") from exc
    return checked_values(values, source=str(path))


def _coerce(key: str, value: Any, hint: Any, source: str) -> Any:
    """``value`` as the field's type; lists become tuples, ints are accepted as floats."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None: TOML has no null, so X it is
        kinds = [a for a in args if a is not type(None)]
        if len(kinds) > 1:  # int | str (eval_every): either type; the field's own check does the rest
            return _one_of(key, value, kinds, source)
        hint = kinds[0]
        args = typing.get_args(hint)
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{source}: {key!r} must be a list of {args[0].__name__}, got {value!r}")
        return tuple(_scalar(key, item, args[0], source) for item in value)
    return _scalar(key, value, hint, source)


def _one_of(key: str, value: Any, kinds: list[type], source: str) -> Any:
    if isinstance(value, bool) or not isinstance(value, tuple(kinds)):
        names = " or ".join(kind.__name__ for kind in kinds)
        raise ValueError(f"{source}: {key!r} must be {names}, got {value!r} ({type(value).__name__})")
    return value


def _scalar(key: str, value: Any, kind: type, source: str) -> Any:
    if kind is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    # bool is an int subclass: accept it only where a bool is asked for.
    if (isinstance(value, bool) and kind is not bool) or not isinstance(value, kind):
        raise ValueError(f"{source}: {key!r} must be {kind.__name__}, got {value!r} ({type(value).__name__})")
    return value
