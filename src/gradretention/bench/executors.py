"""Executors: where the runs of a sweep train. Results stream back to the one driver.

An :class:`Executor` takes run configs and yields their results as they finish; it never
touches the results store, so the sweep driver stays its only writer and a crash loses
at most the runs in flight. :class:`LocalExecutor` trains in this process
(``workers=1``) or in a local process pool; a cluster executor (Ray, issue 8)
implements the same protocol.

Ctrl-C: the in-flight runs end as ``interrupted`` and are still yielded, pending runs
are dropped, then ``KeyboardInterrupt`` is raised to the consumer.

A driver that is killed outright (SIGKILL, out of memory) takes its workers along:
each worker waits in a thread on a *lifeline* pipe whose only write end the driver
holds, and leaves at once when it reads end-of-file; on Linux the kernel also kills a
worker whose parent (the forkserver) dies (``PR_SET_PDEATHSIG``). Once the workers are
gone, the forkserver and multiprocessing's resource tracker see their own pipes close
and exit too: nothing outlives the driver by more than a moment.

Example:
    >>> with LocalExecutor(workers=2) as executor:  # doctest: +SKIP
    ...     for result in executor.submit_all(configs, data_dir=None):
    ...         store.record(result)
"""

from __future__ import annotations

import concurrent.futures as cf
import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import multiprocessing.context
import os
import signal
import sys
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

import torch

from gradretention.bench.results import RunConfig, RunResult
from gradretention.bench.runner import RunInterrupted, train

_STOP: Any = None  # the pool's shared stop flag, set in each worker by _init_worker
_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
# Upper bounds, far above any machine's use: each worker imports torch (~300 MB) and each
# intra-op thread keeps a stack, so beyond these a typo only exhausts memory (or overflows
# a C int in multiprocessing) instead of running faster.
MAX_WORKERS = 1024
MAX_THREADS = 1024
ORPHANED_EXIT = 75  # a worker's exit code when its driver is gone (EX_TEMPFAIL: rerun the sweep)


class Executor(Protocol):
    """Runs configs somewhere and yields each :class:`RunResult` once, in completion order."""

    def submit_all(self, configs: Sequence[RunConfig], data_dir: Path | None) -> Iterator[RunResult]: ...


def available_cores() -> int:
    """CPU cores this process may use (the affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


class LocalExecutor:
    """Train on this machine: in-process for one worker, else a process pool.

    The pool starts on first use and lives until :meth:`close`, so a sweep's tune and
    final phases share it. Workers fork from a forkserver that imported torch and the
    runner once (they are spawned fresh where there is no forkserver).

    Every run is seeded by its config alone. Its numbers are bitwise independent of
    ``workers`` only if the intra-op thread count is too: a matrix product split over
    two threads sums in another order than over one (digits-mlp's test loss moved in
    the 7th digit), hence ``threads``.

    Args:
        workers: Parallel runs, at most :data:`MAX_WORKERS`; ``None`` means :func:`available_cores`.
        threads: Intra-op CPU threads per run, in-process and in every worker; ``None``
            or 0 means ``max(1, cores // workers)`` (fastest, but numbers then depend on
            ``workers`` in the last digits).
    """

    def __init__(self, workers: int | None = None, threads: int | None = None) -> None:
        check_counts(workers, threads, "0: cores // workers")
        self.workers = workers or available_cores()
        self.threads = threads or max(1, available_cores() // self.workers)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._stop: Any = None
        self._lifeline: multiprocessing.connection.Connection | None = None  # its write end; see the module doc

    def __enter__(self) -> LocalExecutor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop the pool's workers (each after its current run)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._lifeline is not None:  # after the shutdown: closing it first would end the runs in flight
            self._lifeline.close()
            self._lifeline = None

    def submit_all(self, configs: Sequence[RunConfig], data_dir: Path | None) -> Iterator[RunResult]:
        """Yield each config's result as soon as it is known.

        Raises:
            ValueError / FileNotFoundError: from a run's setup (bad spec, missing data);
                the remaining runs are cancelled.
            KeyboardInterrupt: after the interrupted runs have been yielded.
        """
        if self.workers == 1 or (len(configs) <= 1 and self._pool is None):
            yield from _in_process(configs, data_dir, self.threads)
        elif configs:
            yield from self._in_pool(configs, data_dir)

    def _in_pool(self, configs: Sequence[RunConfig], data_dir: Path | None) -> Iterator[RunResult]:
        futures: list[cf.Future] = []
        yielded: set[cf.Future] = set()
        try:  # starting the pool can take seconds: Ctrl-C there must stop the runs too
            pool = self._started_pool()
            # Workers outlive one sweep (the pool is reused): each run carries the settings of
            # the sweep that submitted it, instead of the environment the forkserver started with.
            settings = _run_settings()
            futures = [pool.submit(_run_in_worker, config, data_dir, settings) for config in configs]
            for future in cf.as_completed(futures):
                result = future.result()
                yielded.add(future)
                yield result
        except KeyboardInterrupt:
            self._stop_runs(futures)
            yield from _remaining_results([f for f in futures if f not in yielded])
            self.close()
            raise
        except BaseException:
            self._stop_runs(futures)
            self.close()
            raise

    def _stop_runs(self, futures: list[cf.Future]) -> None:
        # Pending runs are dropped; running ones see the flag at their next log step.
        if self._stop is not None:
            self._stop.set()
        for future in futures:
            future.cancel()

    def _started_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            context = _pool_context()
            self._stop = context.Event()
            lifeline, self._lifeline = context.Pipe(duplex=False)
            self._pool = cf.ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_init_worker,
                initargs=(self.threads, self._stop, lifeline),
            )  # fmt: skip
        return self._pool


def check_counts(workers: int | None, threads: int | None, zero_threads: str) -> None:
    """ValueError naming the value and the valid range unless ``workers`` and ``threads`` are sane.

    ``workers`` must be ``None`` or ``1..MAX_WORKERS``; ``threads`` ``None`` or
    ``0..MAX_THREADS`` (``zero_threads`` says what 0 means).
    """
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if workers is not None and workers > MAX_WORKERS:
        raise ValueError(f"workers must be <= {MAX_WORKERS} (each one imports torch), got {workers}")
    if threads is not None and threads < 0:
        raise ValueError(f"threads must be >= 0 ({zero_threads}), got {threads}")
    if threads is not None and threads > MAX_THREADS:
        raise ValueError(f"threads must be <= {MAX_THREADS} (intra-op threads per run), got {threads}")


def _pool_context() -> multiprocessing.context.BaseContext:
    # A forkserver imports torch once and forks warm workers from it; it is a clean
    # single-threaded process, so forking it is safe. Spawn where it does not exist.
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["gradretention.bench.runner"])
        return context
    return multiprocessing.get_context("spawn")


def _in_process(configs: Sequence[RunConfig], data_dir: Path | None, threads: int) -> Iterator[RunResult]:
    for config in configs:
        try:
            with _torch_threads(threads):
                result = train(config, data_dir=data_dir)
        except RunInterrupted as stop:
            yield stop.result
            raise KeyboardInterrupt from None
        yield result


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    # Restored afterwards: the caller (a GUI, a notebook) keeps its own setting.
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def _remaining_results(futures: list[cf.Future]) -> Iterator[RunResult]:
    """Results of the runs that were in flight (now interrupted) or finished unseen."""
    for future in futures:
        if future.cancelled():
            continue
        try:
            yield future.result()
        except Exception:  # noqa: BLE001 - already stopping; a run that failed is not recorded
            continue


def _init_worker(threads: int, stop: Any, lifeline: multiprocessing.connection.Connection | None = None) -> None:
    global _STOP
    # Ctrl-C reaches the whole process group; only the driver reacts. Workers stop
    # through the flag, so their run is still recorded as interrupted.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    torch.set_num_threads(threads)
    _STOP = stop
    die_with_parent()
    if lifeline is not None:
        threading.Thread(target=_exit_when_closed, args=(lifeline,), name="driver-lifeline", daemon=True).start()


def die_with_parent() -> bool:
    """Ask Linux to SIGKILL this process when its parent exits; ``False`` where unsupported.

    ``prctl(PR_SET_PDEATHSIG)`` fires when the thread that forked us ends, so it is only
    safe in a child of a single-threaded parent, such as a forkserver's child.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    except (OSError, AttributeError):  # no libc prctl (e.g. a static or exotic libc)
        return False


def _exit_when_closed(lifeline: multiprocessing.connection.Connection) -> None:
    # The driver never writes: recv returns only with end-of-file, i.e. the driver is gone
    # (killed, or closed without shutting us down). Nobody is left to record a result.
    try:
        lifeline.recv_bytes()
    except (EOFError, OSError):
        pass
    os._exit(ORPHANED_EXIT)


def _run_settings() -> dict[str, str]:
    """The ``GRADRETENTION_*`` variables (data download, model path, checkpointing) of the driver now."""
    return {key: value for key, value in os.environ.items() if key.startswith("GRADRETENTION_")}


def _run_in_worker(config: RunConfig, data_dir: Path | None, settings: dict[str, str] | None = None) -> RunResult:
    if settings is not None:
        for key in [k for k in os.environ if k.startswith("GRADRETENTION_") and k not in settings]:
            del os.environ[key]
        os.environ.update(settings)
    return train(config, data_dir=data_dir, should_stop=_STOP.is_set if _STOP is not None else None)
