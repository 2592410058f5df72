"""Tidy tables out of the results store as CSV or Parquet: ``runs``, ``curves`` and
``selections`` as stored, plus the report's ``verdicts`` (one row per comparison group and
optimizer), ``sensitivity`` (lr-sensitivity widths with their CIs) and ``claims`` (each
method against the baseline rule it modifies).

Files land in ``<out_dir>/export/`` and appear atomically (written to a temporary file in
the same folder, flushed to disk, then ``os.replace``d), so a reader never opens half a
table and a crash or a full disk leaves the previous export whole.

Example:
    >>> export_results(Path("bench-out"), "csv")[:2]  # doctest: +SKIP
    [PosixPath('bench-out/export/runs.csv'), PosixPath('bench-out/export/curves.csv')]
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import pandas as pd

from gradretention.bench.analysis.analyse import analyse_runs, claims_table, sensitivity_table, verdict_table
from gradretention.bench.analysis.setups import with_labels
from gradretention.bench.reporting.files import remove_stale_temps, temp_path
from gradretention.bench.store import ResultsStore, StoreError

EXPORT_FORMATS: tuple[str, ...] = ("csv", "parquet")
EXPORT_DIR = "export"


class OutputError(StoreError):
    """An export file could not be written (read-only folder, full disk); the store is untouched.

    A :class:`StoreError`, so the command line reports it and exits 2 like other output problems.
    """


def export_results(out_dir: Path | str, fmt: str = "csv") -> list[Path]:
    """Write ``runs``, ``curves``, ``selections``, ``verdicts``, ``sensitivity`` and ``claims`` (``.<fmt>``)
    from ``<out_dir>/runs.db``.

    Args:
        out_dir: The sweep's output folder, holding ``runs.db``.
        fmt: ``"csv"`` or ``"parquet"`` (Parquet needs pyarrow: the ``parquet`` extra).

    Returns:
        The paths written: runs, curves, selections, verdicts, sensitivity, claims.

    Raises:
        ValueError: ``fmt`` is not one of :data:`EXPORT_FORMATS`.
        FileNotFoundError: ``out_dir`` holds no results store.
        ImportError: Parquet was asked for and pyarrow is not installed.
        OutputError: a table cannot be written (read-only folder, full disk); the
            message names the file, and the previous export, if any, is left whole.
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"unknown export format {fmt!r}; valid: {', '.join(EXPORT_FORMATS)}")
    if fmt == "parquet" and importlib.util.find_spec("pyarrow") is None:
        raise ImportError("Parquet export needs pyarrow: pip install 'gradretention[parquet]'")
    # Read-only: exporting must neither create an empty store nor block a running sweep.
    with ResultsStore(out_dir, read_only=True) as store:
        tables = {"runs": store.runs(), "curves": store.curves(), "selections": store.selections()}
    analyses = analyse_runs(with_labels(tables["runs"]), tables["curves"], tables["selections"]) if len(tables["runs"]) else []
    tables |= {"verdicts": verdict_table(analyses), "sensitivity": sensitivity_table(analyses),
               "claims": claims_table(analyses)}
    target = Path(out_dir) / EXPORT_DIR
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create the export folder {target}: {exc.strerror or exc}") from exc
    return [_write_atomic(frame, target / f"{name}.{fmt}", fmt) for name, frame in tables.items()]


def _write_atomic(frame: pd.DataFrame, path: Path, fmt: str) -> Path:
    writers: dict[str, Callable[[BinaryIO], object]] = {
        "csv": lambda stream: frame.to_csv(stream, index=False, mode="wb"),
        "parquet": lambda stream: frame.to_parquet(stream, index=False, engine="pyarrow"),
    }
    remove_stale_temps(path)  # a killed export's leftovers
    temp = temp_path(path)
    try:
        with open(temp, "xb") as stream:
            writers[fmt](stream)
            stream.flush()
            os.fsync(stream.fileno())  # on disk before the rename makes it the export
        os.replace(temp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):  # the folder may refuse the clean-up too
            temp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}; the previous export, if any, is "
                          "unchanged") from exc  # fmt: skip
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return path
