"""Temporary files that a killed report or export left in an output folder, and their removal.

The report (``report.html``, ``report.md``) and the export tables are written atomically: to
``.NAME.PID-HEX.tmp`` beside the target (``PID`` the writer's process id), then renamed over
it. A writer killed in between (SIGKILL, a power cut) leaves that file behind; the next
``bench``, ``run``, ``report`` or ``export`` on the folder removes it.

Only files named exactly so are touched, and only stale ones: last written before this
command started and by a process that no longer runs, so that a report another process is
writing right now keeps its file.

Example:
    >>> remove_stale_temporaries(Path("bench-out"))  # doctest: +SKIP
    [PosixPath('bench-out/.report.html.4242-9f3a1c2e.tmp')]
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

# What report.py and export.py name their temporary files: ".report.html.4242-9f3a1c2e.tmp".
_REPORT = re.compile(r"^\.report\.(?:html|md)\.(\d+)-[0-9a-f]+\.tmp$")
_EXPORT = re.compile(r"^\.[A-Za-z0-9_]+\.(?:csv|parquet)\.(\d+)-[0-9a-f]+\.tmp$")
_STARTED = time.time()  # imported when a command first needs it: "before this command started"


def remove_stale_temporaries(out_dir: Path | str, started: float = _STARTED) -> list[Path]:
    """Remove the stale report / export temporaries in ``out_dir`` and ``out_dir/export``.

    Args:
        out_dir: a sweep's output folder (it need not exist).
        started: files last modified at or after this time (seconds since the epoch) are kept.

    Returns:
        The files removed. One that cannot be removed (a read-only folder) is left alone:
        it costs disk space, not correctness, and the command's own writes will say more.
    """
    removed = []
    for folder, pattern in ((Path(out_dir), _REPORT), (Path(out_dir) / "export", _EXPORT)):
        try:
            entries = list(os.scandir(folder))
        except OSError:  # no such folder yet, or unreadable: nothing of ours to clean
            continue
        for entry in entries:
            match = pattern.match(entry.name)
            if match is None or not entry.is_file(follow_symlinks=False):
                continue
            try:
                if entry.stat(follow_symlinks=False).st_mtime >= started or _running(int(match.group(1))):
                    continue
                os.unlink(entry.path)
            except OSError:
                continue
            removed.append(Path(entry.path))
    return removed


def _running(pid: int) -> bool:
    """Whether a process with this id exists (another user's counts: it may be writing)."""
    if pid == os.getpid():
        return True
    if not 0 < pid < 2**31:  # no process has this id (0 would signal our own process group)
        return False
    try:
        os.kill(pid, 0)  # signal 0: an existence check, nothing is sent
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, but is not ours
        return True
    return True
