"""TensorBoard logging: one event-file folder per run, written from its recorded result.

:class:`TensorBoardListener` reacts to :class:`~gradretention.bench.events.RunFinished`
only and writes everything from the result's curves. That event reaches the sweep
driver whatever the executor (worker processes and Ray nodes ship results, not
listeners), so the same listener serves local, pooled and Ray sweeps; the cost is that
a run appears when it ends, not live.

Layout: ``<out>/tensorboard/<task>/<optimizer>/lr=<lr>,seed=<seed>,<phase>,<id>`` (see
:func:`run_name`), so ``tensorboard --logdir <out>/tensorboard`` shows a sweep at a
glance. Scalar tags, by section:

====================  ===========================================================
``loss/minibatch``    mean training mini-batch loss since the previous log step
``<metric>/<split>``  evaluations: ``loss/val``, ``accuracy/test``, ``f1/train`` ...
``lr/group_<g>``      the learning rate of each parameter group
``grad/<stat>``       gradient mean and variance (``var``, ``epoch_var`` ...)
``optimizer/<name>``  the optimizer's own telemetry (hypergradient, scales ...)
``time/<name>``       ``epoch_seconds``, ``samples_per_second``
``final/<metric>``    the run's final metrics, at its last step (the hparams metrics)
====================  ===========================================================

The hparams view gets each run's configuration (task, optimizer, its spec's
hyperparameters, lr, seeds, phase, status) as a session of the hparams plugin; a run
that did not finish as ``done`` is marked failed.

Example:
    >>> run_sweep(config, listeners=[TensorBoardListener(config.out)])  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from gradretention.bench.events import Event, RunFinished
from gradretention.bench.results import CurvePoint, RunConfig, RunResult
from gradretention.bench.sweep import default_lr
from gradretention.optim.spec import parse_spec

TENSORBOARD_INSTALL = 'pip install "gradretention[tensorboard]"'
TIMING = frozenset({"epoch_seconds", "samples_per_second"})
EVAL_SPLITS = ("train", "val", "test")
_UNSAFE = re.compile(r"[^A-Za-z0-9._=,+()-]")
MAX_NAME = 120  # characters per path component; the run id keeps names unique anyway


def run_name(config: RunConfig) -> str:
    """The run's folder under ``tensorboard/``: readable, filesystem-safe and unique.

    Example:
        >>> run_name(RunConfig(task="spiral", optimizer="adam_hd[hypergrad_lr=1e-08]", lr=0.001))[:58]
        'spiral/adam_hd(hypergrad_lr=1e-08)/lr=0.001,seed=0,single,'
    """
    lr = "default" if config.lr is None else f"{config.lr:g}"
    leaf = f"lr={lr},seed={config.seed},{config.phase},{config.run_id[:8]}"
    return "/".join(_safe(part) for part in (config.task, config.optimizer, leaf))


def _safe(part: str) -> str:
    # Brackets become parentheses (legal everywhere, and no shell glob); the rest "_".
    cleaned = _UNSAFE.sub("_", part.replace("[", "(").replace("]", ")"))[:MAX_NAME]
    return "_" if cleaned in ("", ".", "..") else cleaned


def scalar_tag(point: CurvePoint, evaluated: bool) -> str:
    """The TensorBoard tag of one curve point (``evaluated``: a train point from an evaluation)."""
    split, name = point.split, point.name
    if split == "train" and name in TIMING:
        return f"time/{name}"
    if split == "train" and not evaluated:
        return f"{name}/minibatch"
    if split in EVAL_SPLITS:
        return f"{name}/{split}"
    if split == "opt" and name == "lr":
        return f"lr/group_{point.group or 0}"
    suffix = "" if point.group is None else f"/group_{point.group}"
    section = "optimizer" if split == "opt" else split
    return f"{section}/{name}{suffix}"


def scalars(curves: Sequence[CurvePoint]) -> Iterator[tuple[str, int, float]]:
    """``(tag, step, value)`` for every curve point.

    The curves store a log step's training loss and an evaluation's training loss both
    as ``train/loss``. An evaluation writes train, val and test points at one step, after
    any log point of that step, so a train point is an evaluation's when its step has
    validation points and no later train point of its name shares that step.
    """
    eval_steps = {p.step for p in curves if p.split == "val"}
    last_train = {(p.step, p.name): i for i, p in enumerate(curves) if p.split == "train"}
    for i, point in enumerate(curves):
        evaluated = point.step in eval_steps and last_train.get((point.step, point.name)) == i
        yield scalar_tag(point, evaluated), point.step, point.value


def run_hparams(config: RunConfig, status: str) -> dict[str, Any]:
    """The hparams-view columns of one run: its config and its spec's hyperparameters."""
    name, spec_values = parse_spec(config.optimizer)
    values: dict[str, Any] = {
        "task": config.task, "optimizer": config.optimizer, "optimizer_name": name,
        "lr": config.lr, "seed": config.seed, "data_seed": config.data_seed, "phase": config.phase,
        "epochs": config.epochs, "max_steps": config.max_steps, "batch_size": config.batch_size,
        "status": status,
    }  # fmt: skip
    with contextlib.suppress(ValueError):  # an unbuildable spec keeps lr unset
        values["lr"] = default_lr(config.optimizer, config.lr)  # the spec's own or the registry's
    for key, value in spec_values.items():
        # Plain names line up across optimizers (every family's "momentum" in one column).
        values.setdefault(key, value)
    # The plugin takes bool, number or text; None (unset) is left out.
    return {k: (v if isinstance(v, (bool, int, float, str)) else str(v)) for k, v in values.items() if v is not None}


def final_metrics(result: RunResult) -> dict[str, float]:
    """The finite final numbers of a run, tagged ``final/<name>``."""
    metrics = {**result.final, "steps": float(result.steps), "epochs_completed": result.epochs_completed}
    if result.steps_to_target is not None:
        metrics["steps_to_target"] = float(result.steps_to_target)
    return {f"final/{k}": float(v) for k, v in metrics.items() if math.isfinite(float(v))}


def session_summaries(hparams: dict[str, Any], succeeded: bool) -> tuple[Any, Any]:
    """The hparams plugin's session start (hparam values) and end (status) summaries.

    Built from TensorBoard's protos directly: its own ``hparams.summary`` helpers need
    TensorFlow, and torch's ``add_hparams`` always reports success and writes a second
    run folder.
    """
    from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    start = plugin_data_pb2.SessionStartInfo()
    for key, value in hparams.items():
        if isinstance(value, bool):  # before int: a bool is an int too
            start.hparams[key].bool_value = value
        elif isinstance(value, (int, float)):
            start.hparams[key].number_value = value
        else:
            start.hparams[key].string_value = str(value)
    status = api_pb2.STATUS_SUCCESS if succeeded else api_pb2.STATUS_FAILURE
    end = plugin_data_pb2.SessionEndInfo(status=status)

    def summary(tag: str, **info: Any) -> Any:
        data = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **info)
        plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=data.SerializeToString())
        return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])

    return (summary(metadata.SESSION_START_INFO_TAG, session_start_info=start),
            summary(metadata.SESSION_END_INFO_TAG, session_end_info=end))  # fmt: skip


class TensorBoardListener:
    """Write each finished run's scalars and hparams under ``<out_dir>/tensorboard``.

    A run recorded again (a rerun after an error or interruption) replaces its folder.

    Args:
        out_dir: The sweep's output folder.

    Raises:
        ImportError: TensorBoard is not installed (with the install command).
    """

    def __init__(self, out_dir: Path | str) -> None:
        self.root = Path(out_dir) / "tensorboard"
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as error:
            raise ImportError(f"TensorBoard logging needs tensorboard, which is not installed: "
                              f"{TENSORBOARD_INSTALL}") from error  # fmt: skip
        self._writer_class = SummaryWriter

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunFinished):
            self.log_result(event.result)

    def log_result(self, result: RunResult) -> Path:
        """Write one run's event file; returns its folder."""
        folder = self.root / run_name(result.config)
        shutil.rmtree(folder, ignore_errors=True)
        writer = self._writer_class(log_dir=str(folder))
        try:
            for tag, step, value in scalars(result.curves):
                writer.add_scalar(tag, value, step)
            for tag, value in final_metrics(result).items():
                writer.add_scalar(tag, value, result.steps)
            start, end = session_summaries(run_hparams(result.config, result.status), result.status == "done")
            writer.file_writer.add_summary(start)
            writer.file_writer.add_summary(end)
        finally:
            writer.close()
        return folder
