"""Run a function in a forked child that the test can SIGKILL, and read what it printed.

Forking from the test process reuses its imports (torch, pandas, the harness), so a
trial costs milliseconds to start instead of the seconds a fresh interpreter needs.
The child writes its stdout and stderr to a file and leaves with ``os._exit``: it never
runs the parent's atexit handlers or pytest's teardown.
"""

from __future__ import annotations

import os
import signal
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

CRASHED = 70  # the child's exit code when its function raised


@dataclass
class Child:
    """A forked process running one function."""

    pid: int
    log: Path
    returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code (``-signal`` if killed), or ``None`` while it runs."""
        if self.returncode is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float = 120.0) -> int:
        """Wait for the exit; SIGKILL and fail if it takes longer than ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while self.poll() is None:
            if time.monotonic() > deadline:
                self.kill()
                raise TimeoutError(f"child {self.pid} still running after {timeout} s:\n{self.output()}")
            time.sleep(0.01)
        assert self.returncode is not None
        return self.returncode

    def kill(self) -> bool:
        """SIGKILL the child if it still runs; returns whether it was running."""
        if self.poll() is not None:
            return False
        os.kill(self.pid, signal.SIGKILL)
        self.wait()
        return self.returncode == -signal.SIGKILL

    def output(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


def start(function: Callable[[], int | None], log: Path) -> Child:
    """Fork, run ``function()`` in the child; its return value (None: 0) is the exit code."""
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        _child(function, log)
    return Child(pid, log)


def run(function: Callable[[], int | None], log: Path, timeout: float = 120.0) -> Child:
    """Run ``function`` in a child to completion."""
    child = start(function, log)
    child.wait(timeout)
    return child


def _child(function: Callable[[], int | None], log: Path) -> None:
    code = CRASHED
    try:
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        # Fresh objects on the new descriptors: pytest's capture objects stay in the parent.
        sys.stdout = open(1, "w", encoding="utf-8", closefd=False, buffering=1)
        sys.stderr = open(2, "w", encoding="utf-8", closefd=False, buffering=1)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        result = function()
        code = 0 if result is None else int(result)
    except BaseException:  # noqa: BLE001 - report anything, then leave without unwinding pytest
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)
