"""The Ray executor: every run a Ray task, on this machine or across a cluster.

Same protocol as :class:`~gradretention.bench.executors.LocalExecutor`: configs go in,
each :class:`~gradretention.bench.results.RunResult` streams back to the driver as it
finishes (a ``ray.wait`` loop), and the driver alone writes the results store, so
resuming and skipping finished runs work as with the local executor. A run depends on
its config alone and trains with the same intra-op thread count (``threads``), so a
sweep's numbers are identical under both executors.

Failures:
    * a worker process that dies (killed, out of memory, node lost) is retried once by
      Ray (``max_retries=1``, system failures only); dying again records the run as
      ``error`` with Ray's reason (and, for a local instance, where the worker logs
      are: that folder is then kept), and the sweep goes on;
    * a setup problem in a run (bad spec, missing data) raises the original
      ``ValueError`` / ``FileNotFoundError`` in the driver, as locally;
    * Ctrl-C cancels every run not yet yielded and ``KeyboardInterrupt`` reaches the
      consumer. Unlike the local executor, runs in flight are dropped rather than
      yielded as ``interrupted``: Ray discards a cancelled task's return value. They
      were not finished either way, so a resumed sweep reruns them.

A local instance does not outlive its driver: when the driver is killed outright, Ray's
own fate-sharing stops the raylet and the workers at once, but its node agents wait up
to a minute for a dead GCS. So a small *reaper* process started beside the instance
notes the instance's processes and, when its pipe from the driver closes, kills those
still running (POSIX only: it waits on the pipe with ``select``).

Tasks registered at run time in the driver (``register_task``, plug-ins) travel with
their runs and are registered in the workers too. On a cluster every node needs the
same Python environment (``gradretention`` installed) and, for tasks that read files,
the data under the same ``data_dir``.

Ray is an optional extra (``pip install "gradretention[ray]"``), imported only here.

Example:
    >>> with RayExecutor(address=None, workers=2) as executor:  # doctest: +SKIP
    ...     for result in executor.submit_all(configs, data_dir=None):
    ...         store.record(result)
"""

from __future__ import annotations

import math
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import torch

from gradretention.bench.executors import LocalExecutor, available_cores, check_counts
from gradretention.bench.provenance import collect_provenance
from gradretention.bench.results import RunConfig, RunResult
from gradretention.bench.runner import train
from gradretention.tasks.base import Task
from gradretention.tasks.registry import TASKS, get_task, register_task

RAY_INSTALL = 'pip install "gradretention[ray]"'
EXECUTORS: tuple[str, ...] = ("local", "ray")
MAX_RETRIES = 1  # a dead worker's run is tried once more, then recorded as an error
_RAY_DEFAULTS: dict[str, Any] = {"ray_address": None, "cpus_per_run": 1, "gpus_per_run": 0}
REAPER_ENV = "GRADRETENTION_RAY_INSTANCE"  # marks the processes ray.init starts for this executor
# Run by a fresh interpreter, a child of the driver. Every second it notes the processes
# of the instance: the driver's children carrying the marker (Ray renames its agents and
# workers, which hides their environment, so they are found as those children's
# descendants). When its stdin closes (the driver closed the executor, or died), it kills
# what it noted that still runs; psutil checks each start time, so no reused pid is hit.
_REAPER = """
import os, select, sys, psutil
marker, driver, noted = sys.argv[1], psutil.Process(os.getppid()), {}
while not select.select([sys.stdin], [], [], 1.0)[0] or os.read(sys.stdin.fileno(), 64):
    try:
        for top in driver.children():
            if top.environ().get("%s") == marker:
                noted.update((p.pid, p) for p in [top, *top.children(recursive=True)])
    except psutil.Error:
        pass
for proc in noted.values():
    try:
        proc.kill()
    except psutil.Error:
        pass
""" % REAPER_ENV


def import_ray() -> ModuleType:
    """The ``ray`` module.

    Raises:
        ImportError: Ray is not installed; the message gives the install command.
    """
    try:
        import ray
    except ImportError as error:
        raise ImportError(f"the ray executor needs Ray, which is not installed: {RAY_INSTALL}") from error
    return ray


class RayExecutor:
    """Train each run as a Ray task; results come back to this (driver) process.

    Args:
        address: A running cluster (``"auto"``, ``"HOST:PORT"``, ``"ray://HOST:10001"``);
            ``None`` starts a private local Ray instance, stopped again by :meth:`close`.
            If this process is already connected to Ray, that connection is used as is.
        cpus_per_run: CPUs Ray reserves for each run (fractions allowed).
        gpus_per_run: GPUs Ray reserves for each run; needed for ``cuda`` runs, since Ray
            hides the GPUs from tasks that reserve none.
        workers: For a local instance, parallel runs: it gets ``workers × cpus_per_run``
            CPUs (``None``: this machine's cores). Ignored with an ``address``.
        threads: Intra-op CPU threads per run; ``None`` or 0 means
            ``max(1, int(cpus_per_run))``. Keep it equal to the local executor's (1 by
            default) for bitwise-equal numbers.

    Raises:
        ImportError: Ray is not installed (with the install command).
        ValueError: a resource count out of range; later, from :meth:`submit_all`, an
            ``address`` with no Ray cluster behind it.
    """

    def __init__(self, address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0,
                 *, workers: int | None = None, threads: int | None = None) -> None:  # fmt: skip
        if not (math.isfinite(cpus_per_run) and cpus_per_run > 0):
            raise ValueError(f"cpus_per_run must be > 0, got {cpus_per_run}")
        if not (math.isfinite(gpus_per_run) and gpus_per_run >= 0):
            raise ValueError(f"gpus_per_run must be >= 0, got {gpus_per_run}")
        check_counts(workers, threads, "0: int(cpus_per_run)")
        self.ray = import_ray()
        self.address, self.cpus_per_run, self.gpus_per_run = address, cpus_per_run, gpus_per_run
        self.workers = workers
        self.threads = threads or max(1, int(cpus_per_run))
        self._owns_ray = False
        # The private Ray folder of a local instance (sockets, logs); kept after close()
        # only when a worker died, since the error reasons point at its logs.
        self.temp_dir: Path | None = None
        self._keep_logs = False
        self._reaper: subprocess.Popen | None = None

    def __enter__(self) -> RayExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Disconnect from Ray if this executor connected; a local instance it started is
        shut down and its files removed (kept when a worker died: the error reasons point
        at its logs). A cluster given by ``address`` keeps running."""
        if self._owns_ray:
            self.ray.shutdown()
            self._owns_ray = False
        if self._reaper is not None:
            self._reaper.stdin.close()  # type: ignore[union-attr]  # it kills any straggler, then exits
            self._reaper.wait()
            self._reaper = None
        if self.temp_dir is not None and not self._keep_logs:
            shutil.rmtree(self.temp_dir, ignore_errors=True)
            self.temp_dir = None

    def submit_all(self, configs: Sequence[RunConfig], data_dir: Path | None) -> Iterator[RunResult]:
        """Yield each config's result as soon as its Ray task finishes.

        Raises:
            ValueError / FileNotFoundError: from a run's setup (bad spec, missing data),
                or a ``cuda`` run with ``gpus_per_run=0``; the remaining runs are cancelled.
            KeyboardInterrupt: after cancelling the runs not yet yielded.
        """
        if not configs:
            return
        self._check_devices(configs)
        self._connect()
        remote = self.ray.remote(_train_in_worker).options(
            num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=MAX_RETRIES, retry_exceptions=False
        )
        # Each task object once in the object store, not once per run.
        tasks = {name: self.ray.put(get_task(name)) for name in dict.fromkeys(c.task for c in configs)}
        pending = {remote.remote(c, data_dir, tasks[c.task], self.threads): c for c in configs}
        try:
            while pending:
                ready, _ = self.ray.wait(list(pending), num_returns=1)
                config = pending.pop(ready[0])
                yield self._result(ready[0], config)
        except BaseException:
            # Dropped, not recorded: they are not finished, so a resumed sweep reruns them.
            for ref in pending:
                self.ray.cancel(ref)
            raise

    def _check_devices(self, configs: Sequence[RunConfig]) -> None:
        on_gpu = [c for c in configs if c.device.startswith("cuda")]
        if on_gpu and self.gpus_per_run == 0:
            raise ValueError(f"run on device {on_gpu[0].device!r} needs gpus_per_run > 0 (--gpus-per-run): "
                             "Ray hides the GPUs from tasks that reserve none")  # fmt: skip

    def _connect(self) -> None:
        if self.ray.is_initialized():
            return
        if self.address is not None:
            try:
                self.ray.init(address=self.address, log_to_driver=False)
                self._owns_ray = True  # our connection: close() disconnects, the cluster stays
            except ConnectionError as error:
                # Ray's own message is generic; the reason (e.g. a missing auth token) is its cause.
                detail = f"{error}: {error.__cause__}" if error.__cause__ is not None else str(error)
                raise ValueError(f"cannot reach a Ray cluster at ray_address={self.address!r}: {detail} "
                                 "(start one with `ray start --head`, or leave the address out for a "
                                 "local instance)") from error  # fmt: skip
            return
        # A private temp dir: /tmp/ray may belong to another user's or session's cluster.
        self.temp_dir = Path(tempfile.mkdtemp(prefix="gradretention-ray-"))
        cpus = math.ceil((self.workers or available_cores()) * self.cpus_per_run)
        marker = uuid.uuid4().hex
        self._reaper = start_reaper(marker) if os.name == "posix" else None
        os.environ[REAPER_ENV] = marker  # inherited by every process ray.init starts, then dropped
        try:
            self.ray.init(num_cpus=cpus, include_dashboard=False, log_to_driver=False, _temp_dir=str(self.temp_dir))
        finally:
            os.environ.pop(REAPER_ENV, None)
        self._owns_ray = True

    def _result(self, ref: Any, config: RunConfig) -> RunResult:
        exceptions = self.ray.exceptions
        try:
            return self.ray.get(ref)
        except exceptions.RayTaskError as error:
            # The run's own exception (a setup problem): raise it as the local executor would.
            cause = error.cause if isinstance(error.cause, BaseException) else error
            raise cause from error
        except exceptions.RayError as error:  # the worker died (or its node), on every attempt
            what = f"no result after {MAX_RETRIES + 1} attempts, the Ray worker was lost each time"
            if self.temp_dir is not None:
                self._keep_logs = True
                what += f" (worker logs: {self.temp_dir / 'session_latest' / 'logs'})"
            return failed_result(config, what, error)


def start_reaper(marker: str) -> subprocess.Popen:
    """The reaper of the local instance whose processes carry ``$GRADRETENTION_RAY_INSTANCE == marker``.

    It kills them (and their descendants) once the returned handle's ``stdin`` closes:
    explicitly, or because this process died.
    """
    env = {key: value for key, value in os.environ.items() if key != REAPER_ENV}
    return subprocess.Popen([sys.executable, "-c", _REAPER, marker], stdin=subprocess.PIPE, env=env)


def failed_result(config: RunConfig, what: str, error: BaseException) -> RunResult:
    """An ``error`` record for a run whose worker never reported back."""
    detail = str(error).strip().splitlines()
    reason = (f"while running '{config.optimizer}' on task '{config.task}' (seed {config.seed}): "
              f"{what}: {type(error).__name__}: {detail[0] if detail else ''}")  # fmt: skip
    return RunResult(config=config, status="error", reason=reason, provenance=collect_provenance(config.device))


def _train_in_worker(config: RunConfig, data_dir: Path | None, task: Task, threads: int) -> RunResult:
    """One run inside a Ray worker (a reused process: settings are made per run)."""
    if task.name not in TASKS:
        register_task(task)  # registered at run time in the driver, unknown here
    torch.set_num_threads(threads)
    return train(config, data_dir=data_dir)


def make_executor(
    kind: str = "local", workers: int | None = None, ray_address: str | None = None,
    cpus_per_run: float = 1, gpus_per_run: float = 0, threads: int = 1,
) -> LocalExecutor | RayExecutor:  # fmt: skip
    """The executor the command line asked for (``--executor local|ray``).

    Ray is imported only when ``kind`` is ``"ray"``. Close the result when done (both
    executors are context managers).

    Raises:
        ValueError: an unknown ``kind`` (valid ones listed), or Ray options given to
            the local executor.
        ImportError: ``kind="ray"`` without Ray installed (with the install command).
    """
    if kind not in EXECUTORS:
        raise ValueError(f"unknown executor {kind!r}; valid executors: {', '.join(EXECUTORS)}")
    if kind == "local":
        ray_options = {"ray_address": ray_address, "cpus_per_run": cpus_per_run, "gpus_per_run": gpus_per_run}
        given = {k: v for k, v in ray_options.items() if v != _RAY_DEFAULTS[k]}
        if given:
            settings = ", ".join(f"{k}={v!r}" for k, v in given.items())
            raise ValueError(f"{settings} only apply to the ray executor; choose executor 'ray' or drop them")
        return LocalExecutor(workers, threads)
    return RayExecutor(ray_address, cpus_per_run, gpus_per_run, workers=workers, threads=threads)
