"""Where a real dataset's tensors come from, decoded or tokenised once and cached beside the data.

A task asks :func:`load_cached` for a *payload* (a dict of tensors and plain lists):

1. the original files, if :func:`~gradretention.tasks.readers.find_dataset` finds a
   complete layout under the data directory;
2. else a Hugging Face dataset folder ``<data_dir>/<name>/`` (``save_to_disk`` or parquet);
3. else, only when downloads are enabled (:func:`set_download`, the CLI's ``--download``),
   the Hub copy through ``datasets.load_dataset``;
4. else ``FileNotFoundError`` with the readers' message saying which files to put where.

The payload is built once and written atomically (temporary file, then ``os.replace``)
to ``<data_dir>/.gradretention-cache/<dataset>-<recipe>-<key>.pt``; later loads read it
with ``torch.load(weights_only=True)``. The key hashes the recipe (what was done to the
data: decoding, image size, tokenizer, maximum length) and the source's fingerprint (a
SHA-256 of the name and *content* of every file the reader reads), so editing, adding or
removing a data file rebuilds the cache, even when a replaced file keeps its size and
modification time (``cp -p``, ``tar x``, ``rsync -t``). An unwritable data directory
only costs the cache (a warning), never the run.

Within one process the last few payloads are also kept in memory (keyed by the cache
file, so a changed source is never served stale): a sweep decodes its data once. The
download switch lives in an environment variable so that sweep workers inherit it.

Example:
    >>> payload, source = load_cached("mnist", None, "uint8-v1", mnist_from_files, mnist_from_hf)  # doctest: +SKIP
    >>> source.kind, payload["test_images"].shape  # doctest: +SKIP
    ('files', torch.Size([10000, 28, 28]))
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from gradretention.tasks.readers import DatasetFormatError, find_dataset, load_hf_dataset
from gradretention.tasks.readers.hf import hf_folder_kind
from gradretention.tasks.fingerprint import files_fingerprint, layout_paths
from gradretention.tasks.readers.locate import dataset_source, locate_data_dir

DOWNLOAD_ENV = "GRADRETENTION_DOWNLOAD"
CACHE_DIRNAME = ".gradretention-cache"
_CACHE_FORMAT = "gradretention.datacache"
_CACHE_VERSION = 1
_MEMORY_SIZE = 4  # payloads kept in this process: a sweep reloads the same data for every run

Payload = dict[str, Any]
_MEMORY: dict[Path, Payload] = {}


def set_download(enabled: bool) -> None:
    """Allow (or forbid) Hugging Face downloads for datasets not on disk; the CLI's ``--download``."""
    if enabled:
        os.environ[DOWNLOAD_ENV] = "1"
    else:
        os.environ.pop(DOWNLOAD_ENV, None)


def download_enabled() -> bool:
    """Whether :func:`set_download` (or ``$GRADRETENTION_DOWNLOAD=1``) allows downloads."""
    return os.environ.get(DOWNLOAD_ENV, "").strip().lower() in {"1", "true", "yes"}


@dataclass(frozen=True)
class DataSource:
    """Where one dataset was found.

    Attributes:
        dataset: the name in :data:`~gradretention.tasks.readers.DATASETS`.
        kind: ``"files"`` (original format), ``"hf-folder"`` or ``"hf-download"``.
        root: the reader's root (``files``), the HF folder, or the data directory.
        data_dir: the resolved data directory; the cache lives under it.
        fingerprint: a hash of the content of every file the source's reader reads.
    """

    dataset: str
    kind: str
    root: Path
    data_dir: Path
    fingerprint: str


def locate_source(dataset: str, data_dir: str | os.PathLike[str] | None = None) -> DataSource:
    """Find ``dataset`` in the order of the module docstring.

    Raises:
        FileNotFoundError: nothing on disk and downloads are off (or the dataset has no
            Hub copy); the message lists the files to put where.
        ValueError: an unknown dataset.
    """
    root = locate_data_dir(data_dir)[0]
    hub_id = dataset_source(dataset).hub_id
    try:
        folder = find_dataset(dataset, data_dir)
    except FileNotFoundError:
        # Only datasets with a Hub copy have a known Hugging Face schema to read.
        if hub_id is not None and hf_folder_kind(root / dataset) is not None:
            return DataSource(dataset, "hf-folder", root / dataset, root, files_fingerprint([root / dataset]))
        if not download_enabled() or hub_id is None:
            raise  # the readers' message: which files to put where (and whether --download applies)
        return DataSource(dataset, "hf-download", root, root, f"hub:{hub_id}")
    return DataSource(dataset, "files", folder, root, files_fingerprint(layout_paths(dataset, root, folder)))


def open_hf(source: DataSource) -> Any:
    """The ``datasets.DatasetDict`` of an ``hf-folder`` or ``hf-download`` source."""
    if source.kind not in ("hf-folder", "hf-download"):
        raise ValueError(f"open_hf needs a Hugging Face source, got kind {source.kind!r}")
    return load_hf_dataset(source.dataset, source.data_dir, download=source.kind == "hf-download")


def cache_file(source: DataSource, recipe: str) -> Path:
    """``<data_dir>/.gradretention-cache/<dataset>-<recipe>-<key>.pt`` for this source and recipe."""
    key = hashlib.sha256(f"{recipe}\n{source.kind}\n{source.fingerprint}".encode()).hexdigest()[:16]
    safe_recipe = "".join(char if char.isalnum() or char in "-_." else "_" for char in recipe)[:60]
    return source.data_dir / CACHE_DIRNAME / f"{source.dataset}-{safe_recipe}-{key}.pt"


def load_cached(
    dataset: str,
    data_dir: str | os.PathLike[str] | None,
    recipe: str,
    from_files: Callable[[Path], Payload],
    from_hf: Callable[[Any], Payload],
) -> tuple[Payload, DataSource]:
    """The payload for ``dataset`` built by ``recipe``, and where the data came from.

    Looked up in this process's memory (the last few payloads, keyed by the cache file,
    so a changed source is never served stale), then in the cache file, else built and
    cached. Payloads are shared between callers: treat their tensors as read-only.

    Args:
        dataset: a name in :data:`~gradretention.tasks.readers.DATASETS`.
        data_dir: ``--data-dir``, or ``None`` for ``$GRADRETENTION_DATA`` / the HF cache.
        recipe: names everything the builders do; change it when they change.
        from_files: builds the payload from the original files' root folder.
        from_hf: builds it from a ``datasets.DatasetDict``.

    Raises:
        FileNotFoundError: the dataset is nowhere (see :func:`locate_source`).
        DatasetFormatError: the files are there but malformed (from the readers).
    """
    source = locate_source(dataset, data_dir)
    path = cache_file(source, recipe)
    payload = _MEMORY.get(path)
    if payload is None:
        payload = read_cache(path)
    if payload is None:
        payload = from_files(source.root) if source.kind == "files" else from_hf(open_hf(source))
        write_cache(path, payload)
    _MEMORY.pop(path, None)
    _MEMORY[path] = payload  # most recent last
    while len(_MEMORY) > _MEMORY_SIZE:
        _MEMORY.pop(next(iter(_MEMORY)))
    return payload, source


def read_cache(path: Path) -> Payload | None:
    """The payload stored at ``path``; ``None`` when absent, unreadable or of another format."""
    if not path.is_file():
        return None
    try:
        stored = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - a torn or foreign file is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable data cache {path} ({type(error).__name__}: {error}); rebuilding it")
        return None
    if not isinstance(stored, dict) or stored.get("format") != _CACHE_FORMAT or stored.get("version") != _CACHE_VERSION:
        return None
    return stored["payload"]


def write_cache(path: Path, payload: Payload) -> bool:
    """Write ``payload`` to ``path`` atomically; ``False`` (and a warning) if the folder is not writable."""
    document = {"format": _CACHE_FORMAT, "version": _CACHE_VERSION, "payload": payload}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as error:
        warnings.warn(f"cannot cache decoded data in {path.parent} ({error}); it will be decoded again next time")
        return False
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(document, stream)
        os.replace(temporary, path)  # readers see the old file or the whole new one, never a torn one
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return True


def clear_memory() -> None:
    """Forget the payloads held in this process (the disk cache stays)."""
    _MEMORY.clear()


@dataclass(frozen=True)
class MemoisedLoad:
    """A task's ``load`` over :func:`load_cached`, with the embedded tasks' ``cache_clear()``.

    The embedded tasks' loads are wrapped in ``functools.lru_cache``; callers free their memory
    with ``task.load.cache_clear()``. Here the payloads are memoised by
    :func:`load_cached` instead (so a changed file or setting is never served stale), and
    ``cache_clear`` forgets them all.
    """

    function: Callable[[int, Path | None], Any]

    def __call__(self, data_seed: int, data_dir: Path | None = None) -> Any:
        return self.function(data_seed, data_dir)

    def cache_clear(self) -> None:
        """Forget every payload held in this process."""
        clear_memory()


def carve_validation(n: int, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded ``(train, validation)`` index tensors over ``range(n)``, validation ~``fraction`` of n.

    For datasets whose release has no validation split: the same seed always gives the
    same split, and both parts keep at least one example.

    Raises:
        ValueError: ``n < 2`` (nothing to split) or ``fraction`` outside (0, 1).
    """
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"validation fraction must be in (0, 1), got {fraction}")
    if n < 2:
        raise ValueError(f"need at least 2 training examples to carve a validation split, got {n}")
    held_out = min(n - 1, max(1, round(fraction * n)))
    order = np.random.default_rng(seed).permutation(n)
    return torch.from_numpy(order[held_out:].copy()), torch.from_numpy(order[:held_out].copy())


def hf_images(cells: list[Any], mode: str, size: tuple[int, int], where: str) -> np.ndarray:
    """Decode a Hugging Face image column to ``uint8 (N, H, W)`` (mode ``L``) or ``(N, H, W, 3)`` (``RGB``).

    A cell is a ``PIL.Image`` (a decoded ``Image`` feature) or a ``{"bytes", "path"}`` dict
    (the column read without its feature). ``size`` is ``(height, width)``.

    Raises:
        DatasetFormatError: a cell that is not an image, or an image of another size.
    """
    from PIL import Image

    out = np.empty((len(cells), *size, *((3,) if mode == "RGB" else ())), dtype=np.uint8)
    for index, cell in enumerate(cells):
        if isinstance(cell, dict) and cell.get("bytes") is not None:
            cell = Image.open(io.BytesIO(cell["bytes"]))
        if not isinstance(cell, Image.Image):
            raise DatasetFormatError(f"{where}: row {index}: expected an image, found {type(cell).__name__}")
        if (cell.height, cell.width) != size:
            raise DatasetFormatError(
                f"{where}: row {index}: expected a {size[1]}x{size[0]} image, found {cell.width}x{cell.height}"
            )
        out[index] = np.asarray(cell.convert(mode), dtype=np.uint8)
    return out


def require_examples(count: int, minimum: int, where: str) -> None:
    """DatasetFormatError naming ``where`` when a split holds fewer than ``minimum`` examples.

    Called before tokenizing or decoding, so an empty file or split ends in this message
    instead of an ``IndexError`` deep inside a tokenizer.
    """
    if count < minimum:
        raise DatasetFormatError(f"{where}: holds {count} examples, need at least {minimum}")


def checked_labels(values: list[Any], num_classes: int, where: str) -> np.ndarray:
    """Integer labels as ``int64``; DatasetFormatError naming the first one outside ``0..num_classes-1``."""
    labels = np.asarray(values)
    if labels.ndim != 1 or (labels.size and not np.issubdtype(labels.dtype, np.integer)):
        raise DatasetFormatError(f"{where}: expected integer class labels, found {labels.dtype} {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels >= num_classes))
    if bad.size:
        raise DatasetFormatError(
            f"{where}: labels must be 0..{num_classes - 1}, found {labels[bad[0]].item()!r} at row {int(bad[0])}"
        )
    return labels.astype(np.int64)
