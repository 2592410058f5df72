"""Tidy tables out of the results store: ``runs`` and ``curves`` as CSV or Parquet.

Files land in ``<out_dir>/export/`` and appear atomically (written to a temporary file in
the same folder, then ``os.replace``d), so a reader never opens half a table.

Example:
    >>> export_results(Path("bench-out"), "csv")  # doctest: +SKIP
    [PosixPath('bench-out/export/runs.csv'), PosixPath('bench-out/export/curves.csv')]
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from gradretention.bench.store import ResultsStore

EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet")
EXPORT_DIR = "export"


def export_results(out_dir: Path | str, fmt: str = "csv") -> list[Path]:
    """Write ``runs.<fmt>`` and ``curves.<fmt>`` from ``<out_dir>/runs.db``.

    Args:
        out_dir: The sweep's output folder, holding ``runs.db``.
        fmt: ``"csv"`` or ``"parquet"`` (Parquet needs pyarrow: the ``parquet`` extra).

    Returns:
        The paths written, runs table first.

    Raises:
        ValueError: ``fmt`` is not one of :data:`EXPORT_FORMATS`.
        FileNotFoundError: ``out_dir`` holds no results store.
        ImportError: Parquet was asked for and pyarrow is not installed.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ImportError("Parquet export needs pyarrow: pip install 'gradretention[parquet]'")
    # Read-only: exporting must neither create an empty store nor block a running sweep.
    with ResultsStore(out_dir, read_only=True) as store:
        tables = {"runs": store.runs(), "curves": store.curves()}
    target = Path(out_dir) / EXPORT_DIR
    target.mkdir(parents=True, exist_ok=True)
    return [_write_atomic(frame, target / f"{name}.{fmt}", fmt) for name, frame in tables.items()]


def _write_atomic(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    writers: dict[str, Callable[[str], object]] = {
        "csv": lambda tmp: frame.to_csv(tmp, index=False),
        "parquet": lambda tmp: frame.to_parquet(tmp, index=False, engine="pyarrow"),
    }
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        writers[fmt](tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
