"""Hugging Face ``datasets`` fallbacks for when the original-format files are not on disk.

Two local forms are read from ``<data_dir>/<dataset>/`` without any network access:

* a folder written by ``Dataset.save_to_disk`` / ``DatasetDict.save_to_disk``
  (it holds ``dataset_dict.json`` or ``state.json``), read with ``datasets.load_from_disk``;
* parquet files as the Hub stores them (``plain_text/train-00000-of-00001.parquet``,
  ``data/test-*.parquet``, ``train/*.parquet``): the split is the parent folder's name when
  that is a split name, else the file name up to its first ``-``.

Only with ``download=True`` does :func:`load_hf_dataset` call
``datasets.load_dataset(hub_id)``. No ``trust_remote_code`` is ever passed, so no
dataset loading script runs (``datasets`` 4 and later refuse such scripts anyway).
``datasets`` is imported lazily: the original-format readers work without it.
"""

from __future__ import annotations

import os
from collections import defaultdict
from pathlib import Path
from types import ModuleType
from typing import Any

from .errors import DatasetFormatError
from .locate import dataset_source, locate_data_dir, missing_message

SPLIT_FOLDERS = frozenset({"train", "test", "validation", "valid", "dev", "unsupervised"})
_SAVED_MARKERS = ("dataset_dict.json", "state.json")


def import_datasets() -> ModuleType:
    """The ``datasets`` module, or an ImportError that says how to install it."""
    try:
        import datasets
    except ImportError as error:
        raise ImportError(
            "Reading Hugging Face datasets needs the `datasets` package: pip install datasets "
            "(or pip install 'gradretention[text]')"
        ) from error
    return datasets


def hf_folder_kind(folder: str | Path) -> str | None:
    """``"save_to_disk"``, ``"parquet"``, or ``None`` when ``folder`` holds neither form."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    if any((folder / marker).is_file() for marker in _SAVED_MARKERS):
        return "save_to_disk"
    if next(folder.rglob("*.parquet"), None) is not None:
        return "parquet"
    return None


def parquet_splits(folder: str | Path) -> dict[str, list[Path]]:
    """Parquet files under ``folder`` grouped by split name (see the module docstring).

    Raises:
        DatasetFormatError: one split's files sit in different folders (two configs mixed).
    """
    folder = Path(folder)
    splits: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(folder.rglob("*.parquet")):
        split = path.parent.name if path.parent.name in SPLIT_FOLDERS else path.stem.split("-")[0]
        splits[split].append(path)
    for split, paths in splits.items():
        parents = sorted({str(path.parent) for path in paths})
        if len(parents) > 1:
            raise DatasetFormatError(
                f"{folder}: parquet files of split {split!r} sit in several folders {parents}; "
                "expected one folder per dataset configuration"
            )
    return dict(splits)


def load_local_hf(folder: str | Path) -> Any:
    """A ``datasets.DatasetDict`` from a ``save_to_disk`` folder or a folder of parquet files.

    A single saved ``Dataset`` becomes a one-split dict keyed by its own split name
    (``"train"`` when it has none).

    Raises:
        FileNotFoundError: ``folder`` holds neither form.
    """
    folder = Path(folder)
    kind = hf_folder_kind(folder)
    if kind is None:
        raise FileNotFoundError(
            f"No Hugging Face dataset in {folder}: expected a `save_to_disk` folder "
            f"({' or '.join(_SAVED_MARKERS)}) or *.parquet files"
        )
    datasets = import_datasets()
    if kind == "save_to_disk":
        loaded = datasets.load_from_disk(str(folder))
        if isinstance(loaded, datasets.DatasetDict):
            return loaded
        return datasets.DatasetDict({str(loaded.split or "train"): loaded})
    return datasets.DatasetDict(
        {split: _read_parquet(datasets, paths) for split, paths in parquet_splits(folder).items()}
    )


def _read_parquet(datasets: ModuleType, paths: list[Path]) -> Any:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pa.concat_tables([pq.read_table(path) for path in paths])
    except (pa.ArrowException, OSError) as error:
        raise DatasetFormatError(f"{paths[0].parent}: unreadable parquet file ({error})") from error
    # In memory and uncached: the files are the cache. The Hub's schema metadata
    # (ClassLabel names, Image columns) is read back by Features.from_arrow_schema.
    return datasets.Dataset(datasets.table.InMemoryTable(table))


def load_hf_dataset(
    dataset: str,
    data_dir: str | os.PathLike[str] | None = None,
    download: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> Any:
    """``dataset`` as a ``datasets.DatasetDict``: from ``<data_dir>/<dataset>/``, or the Hub.

    Args:
        dataset: a name from :data:`~gradretention.tasks.readers.locate.DATASETS`.
        data_dir: see :func:`~gradretention.tasks.readers.locate.resolve_data_dir`.
        download: fetch the Hub copy when nothing is on disk (the only network path).
        cache_dir: where ``load_dataset`` caches a download (``datasets``' default if ``None``).

    Raises:
        FileNotFoundError: nothing on disk and ``download`` is false; the message says
            which files to put where.
        ValueError: ``download`` for a dataset with no Hub copy, or an unknown name.
    """
    source = dataset_source(dataset)
    root, origin = locate_data_dir(data_dir)
    if hf_folder_kind(root / dataset) is not None:
        return load_local_hf(root / dataset)
    if not download:
        raise FileNotFoundError(missing_message(dataset, root, origin))
    if source.hub_id is None:
        raise ValueError(f"--download is not available for {source.title}: get {source.origin}")
    datasets = import_datasets()
    return datasets.load_dataset(source.hub_id, cache_dir=None if cache_dir is None else str(cache_dir))


def split_columns(dataset_dict: Any, split: str, columns: list[str]) -> dict[str, list[Any]]:
    """The named columns of one split as Python lists.

    Raises:
        DatasetFormatError: the split or a column is missing; the message lists what
            was expected and what the dataset has.
    """
    if split not in dataset_dict:
        raise DatasetFormatError(f"expected split {split!r}, found splits {sorted(dataset_dict)}")
    table = dataset_dict[split]
    missing = [column for column in columns if column not in table.column_names]
    if missing:
        raise DatasetFormatError(
            f"split {split!r}: expected columns {columns}, found columns {table.column_names}"
        )
    return {column: list(table[column]) for column in columns}
