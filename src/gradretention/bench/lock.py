"""One sweep per output folder: an advisory lock on ``<out_dir>/.lock``.

The sweep driver is the results store's only writer, so two ``bench`` processes on one
folder must not both drive. :class:`SweepLock` takes ``fcntl.flock(LOCK_EX | LOCK_NB)``
on ``<out_dir>/.lock`` for the sweep's lifetime and writes who holds it (pid, host,
start time, command) into the file. A second sweep fails at once with
:class:`SweepLockedError` naming the holder. The kernel drops a ``flock`` when its
process dies, however it dies (SIGKILL included), so a lock file left behind by a
crashed sweep never blocks the next one: the file's content is only read while the
lock is held by a live process.

Readers (reports, exports, the GUI) never take the lock; the store's WAL journal lets
them read while a sweep writes.

.. note:: ``flock`` is advisory and per host: it does not protect a folder on a network
   file system written from two machines. Where ``fcntl`` does not exist (Windows) no
   lock is taken and a :class:`RuntimeWarning` says so.

Example:
    >>> with SweepLock("bench-out"):  # doctest: +SKIP
    ...     run_the_sweep()
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import socket
import sys
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

from gradretention.bench.store import StoreError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


@dataclass(frozen=True)
class LockHolder:
    """Who holds an output folder's lock, as the holder wrote it."""

    pid: int
    host: str
    started: str
    command: str

    def describe(self) -> str:
        """``pid 4242 on host gpu1, started 2025-01-01T10:00:00+00:00, command: gradretention bench``."""
        return f"pid {self.pid} on host {self.host}, started {self.started}, command: {self.command}"


class SweepLockedError(StoreError):
    """Another live process holds the output folder's lock; nothing was written.

    Attributes:
        path: the lock file.
        holder: what the holder wrote, or ``None`` if it could not be read.
    """

    def __init__(self, path: Path, holder: LockHolder | None) -> None:
        who = holder.describe() if holder is not None else "a process whose details could not be read"
        super().__init__(
            f"output folder {path.parent} is in use by another sweep ({who}); wait for it to finish or "
            f"choose another --out. The lock is {path}; it is released when that process exits, even if it crashes"
        )
        self.path, self.holder = path, holder


def current_holder() -> LockHolder:
    """This process as a lock holder: its pid, host, start of locking and command line."""
    command = shlex.join(getattr(sys, "orig_argv", None) or sys.argv)
    started = dt.datetime.now().astimezone().isoformat(timespec="seconds")
    return LockHolder(os.getpid(), socket.gethostname(), started, command)


def read_holder(out_dir: Path | str) -> LockHolder | None:
    """The holder recorded in ``<out_dir>/.lock``; ``None`` if absent, empty or unreadable.

    The content is only meaningful while the lock is held: a crashed sweep leaves its
    details behind, and a live holder overwrites them right after locking.
    """
    try:
        text = (Path(out_dir) / LOCK_NAME).read_text(encoding="utf-8")
        fields = json.loads(text)
        return LockHolder(int(fields["pid"]), str(fields["host"]), str(fields["started"]), str(fields["command"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


class SweepLock:
    """Exclusive, non-blocking lock of an output folder for one sweep.

    Args:
        out_dir: the sweep's output folder; created if missing.

    Raises (from :meth:`acquire` / ``__enter__``):
        SweepLockedError: another live process holds the lock (the message names it).
        StoreError: the folder or the lock file cannot be created or written (read-only
            or full file system), with the path and the system's reason.
    """

    def __init__(self, out_dir: Path | str) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> SweepLock:
        """Take the lock and record this process as its holder."""
        if self._fd is not None:
            raise RuntimeError(f"{self.path} is already held by this SweepLock")
        fd = self._open()
        if fcntl is None:
            warnings.warn(f"no file locking on this platform: nothing stops a second sweep on {self.out_dir}",
                          RuntimeWarning, stacklevel=2)  # fmt: skip
        else:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise SweepLockedError(self.path, _live_holder(self.out_dir)) from None
            except OSError as exc:  # e.g. ENOLCK on a network file system without locks
                os.close(fd)
                raise StoreError(f"cannot lock {self.path}: {exc.strerror or exc}") from exc
        self._fd = fd
        try:
            _write_holder(fd, current_holder())
        except OSError as exc:
            self.release()
            raise StoreError(f"cannot write the lock file {self.path}: {exc.strerror or exc}; "
                             "the output folder must be writable and have free space") from exc  # fmt: skip
        return self

    def _open(self) -> int:
        try:
            self.out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create results folder {self.out_dir}: {exc.strerror or exc}") from exc
        try:
            # O_CLOEXEC: a program the sweep executes must not keep the lock alive after it.
            return os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            raise StoreError(f"cannot create the lock file {self.path}: {exc.strerror or exc}; "
                             "the output folder must be writable") from exc  # fmt: skip

    def release(self) -> None:
        """Drop the lock; the file stays (deleting it would race with a process opening it)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def __enter__(self) -> SweepLock:
        return self.acquire()

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"SweepLock({str(self.out_dir)!r}, held={self.held})"


def _write_holder(fd: int, holder: LockHolder) -> None:
    data = (json.dumps(asdict(holder)) + "\n").encode("utf-8")
    os.ftruncate(fd, 0)
    written = os.pwrite(fd, data, 0)
    if written != len(data):
        raise OSError(f"short write ({written} of {len(data)} bytes)")


def _live_holder(out_dir: Path) -> LockHolder | None:
    # Between another process's flock and its write, the file may still name the
    # previous (dead) holder: never report a pid of this host that no longer runs.
    holder = read_holder(out_dir)
    if holder is not None and holder.host == socket.gethostname() and not _alive(holder.pid):
        return None
    return holder


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True
