"""Content fingerprints of data files: what the data cache is keyed on.

A fingerprint is a SHA-256 over the name and the *content* of every file a reader reads,
never their size and modification time: a file replaced by another of the same size
whose mtime was kept (``cp -p``, ``tar x``, ``rsync -t``) is other data and must rebuild
the cache. Each file's digest is remembered within the process under its (path, device,
inode, size, mtime, ctime); the kernel sets ctime on every write and nothing can set it
back, so a changed file always misses, while a sweep hashes its data once per process
instead of once per run.

Cost (``python benchmarks/data_fingerprint.py``, 2-core CI machine): Fashion-MNIST's four
files (31 MB) hash in 65 ms the first time in a process (~470 MB/s, a tenth of decoding
them once) and in 0.02 ms after that.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
from pathlib import Path

from gradretention.tasks.readers.locate import DATASETS

_HASH_CHUNK = 1 << 20
_DIGESTS: dict[tuple[str, int, int, int, int, int], str] = {}


def layout_paths(dataset: str, data_dir: Path, folder: Path) -> list[Path]:
    """The files and folders of ``dataset``'s layout at ``folder`` that exist: what its reader reads.

    IMDB's ``aclImdb/train/unsup`` (50 000 reviews no task reads) is thus never hashed.
    A layout matches when ``folder`` ends with its folder (under ``data_dir`` or a system
    data folder); ``[folder]`` itself when none does.
    """
    for layout in DATASETS[dataset].layouts:
        tail = Path(layout.folder).parts
        if folder == data_dir / layout.folder or folder.parts[-len(tail) :] == tail:
            return [folder / name for names in layout.entries for name in names if (folder / name).exists()]
    return [folder]


def files_fingerprint(paths: list[Path], exclude: tuple[str, ...] = ()) -> str:
    """A SHA-256 of the name and content of every file under ``paths`` (folders recursively).

    Content, not size and mtime: a file replaced by another of the same size whose mtime
    was kept is other data. Names are relative to each of ``paths`` and numbered by its
    position, so a copied or moved folder keeps the key while a file moved from one of
    ``paths`` to another changes it. Hidden files and folders, the cache folder among
    them, are skipped, and so are names matching an ``exclude`` glob. Each file is hashed
    once per process (see the module docstring).
    """
    digest = hashlib.sha256()
    for index, top in enumerate(paths):
        digest.update(f"#{index}\n".encode())
        files = [(top.name, str(top))] if top.is_file() else _walk(top, exclude)
        for name, path in files:
            digest.update(f"{name}|{file_digest(path)}\n".encode())
    return digest.hexdigest()


def _walk(top: Path, exclude: tuple[str, ...]) -> list[tuple[str, str]]:
    # os.walk on strings: pathlib's per-path overhead would triple the cost on 50 000 reviews.
    found = []
    for folder, subfolders, names in os.walk(top):
        subfolders[:] = sorted(name for name in subfolders if not name.startswith("."))
        relative = os.path.relpath(folder, top)
        for name in sorted(names):
            if not name.startswith(".") and not any(fnmatch.fnmatch(name, pattern) for pattern in exclude):
                found.append((f"{relative}/{name}", os.path.join(folder, name)))
    return found


def file_digest(path: str) -> str:
    """The SHA-256 of one file's content, remembered in this process until the file changes."""
    stat = os.stat(path)
    key = (path, stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    known = _DIGESTS.get(key)
    if known is not None:
        return known
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(_HASH_CHUNK):
            digest.update(chunk)
    _DIGESTS[key] = digest.hexdigest()
    return _DIGESTS[key]
