"""File-system faults for tests: a per-file size limit, and private mounts (tmpfs, read-only binds).

``RLIMIT_FSIZE`` works everywhere on Linux without privileges: a write past the limit
fails with ``EFBIG`` (once SIGXFSZ, which would kill the process, is ignored). Mounts need
root (or a user namespace): :func:`mounts_available` probes once, and the mount helpers
run inside a forked child that first moves into its own mount namespace, so nothing it
mounts is visible outside it or outlives it.
"""

from __future__ import annotations

import ctypes
import functools
import os
import resource
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from . import forked

CLONE_NEWNS = 0x00020000


def size_limited(limit: int, function: Callable[[], int | None]) -> Callable[[], int | None]:
    """``function`` run with every file it writes capped at ``limit`` bytes (call in a child)."""

    def limited() -> int | None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
        return function()

    return limited


def private_mount_namespace() -> None:
    """Move this (child) process into a mount namespace of its own; mounts stay private to it."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNS) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare(CLONE_NEWNS): {os.strerror(errno)}")
    subprocess.run(["mount", "--make-rprivate", "/"], check=True, capture_output=True)


def mount_tmpfs(target: Path, size: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    command = ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(target)]
    subprocess.run(command, check=True, capture_output=True)


def bind_read_only(target: Path) -> None:
    subprocess.run(["mount", "--bind", str(target), str(target)], check=True, capture_output=True)
    subprocess.run(["mount", "-o", "remount,bind,ro", str(target)], check=True, capture_output=True)


def fill(folder: Path, leave: int) -> None:
    """Write a filler file so that about ``leave`` bytes stay free on ``folder``'s file system."""
    stats = os.statvfs(folder)
    free = stats.f_bavail * stats.f_frsize
    with open(folder / "filler", "wb") as stream:
        stream.write(bytes(max(free - leave, 0)))


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


@functools.cache
def mounts_available() -> bool:
    """Whether a child can take a private mount namespace and mount a tmpfs (root, Linux)."""
    if shutil.which("mount") is None or not hasattr(os, "fork"):
        return False
    with tempfile.TemporaryDirectory() as folder:

        def probe() -> int:
            private_mount_namespace()
            mount_tmpfs(Path(folder) / "mnt", "64k")
            return 0

        return forked.run(probe, Path(folder) / "probe.log", timeout=60).returncode == 0
