"""Atomic output files: written beside their target under a temporary name, then renamed over.

The temporary name is ``.<name>.<pid>-<random>.tmp``; a writer killed between the two
steps leaves such a file behind. :func:`remove_stale_temps` deletes the leftovers whose
writer process is gone, so the next report or export cleans up after a killed one,
while a concurrent writer's file (its process still alive) is left alone.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_TEMP = re.compile(r"^\.(?P<name>.+)\.(?P<pid>\d+)-[0-9a-f]+\.tmp$")


def temp_path(path: Path) -> Path:
    """A fresh temporary name beside ``path``, carrying this process's id."""
    # Not mkstemp: its 0600 mode would make the output unreadable when served or shared.
    return path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")


def remove_stale_temps(path: Path) -> list[Path]:
    """Delete the temporaries of ``path`` left by writers that no longer run; returns them."""
    removed = []
    for candidate in path.parent.glob(f".{path.name}.*.tmp"):
        match = _TEMP.match(candidate.name)
        if match and match["name"] == path.name and not _alive(int(match["pid"])):
            try:
                candidate.unlink()
            except OSError:  # another cleaner got there first, or the folder refuses: harmless
                continue
            removed.append(candidate)
    return removed


def write_text_atomic(path: Path, text: str) -> None:
    """Write ``text`` to a temporary beside ``path`` and rename it over: readers never see half a file."""
    remove_stale_temps(path)
    temp = temp_path(path)
    try:
        with open(temp, "x", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # someone else's live process, or an id we cannot check: keep its file
    return True
