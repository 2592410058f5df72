"""The results store: one SQLite file, ``<out_dir>/runs.db``, one row per run.

The sweep driver is the only writer; reports, the GUI and exports may read the same file
from other processes at the same time (WAL journal). Each :meth:`ResultsStore.record`
is one transaction, so a crash never leaves a run half-written, and finished runs are
what a resumed sweep skips unless their recorded optimizer settings changed (:meth:`ResultsStore.finished_settings`). A write that fails (a full
disk, a read-only folder) raises :class:`StoreError` saying so, and leaves the runs
recorded before intact; a store on read-only media is still readable.

Example:
    >>> with ResultsStore(Path("bench-out")) as store:  # doctest: +SKIP
    ...     store.record(result)
    ...     frame = store.runs()
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import pandas as pd

import gradretention
from gradretention.bench.provenance import PROVENANCE_KEYS
from gradretention.bench.results import RUN_STATUSES, RunResult
from gradretention.bench.store_rows import (  # noqa: F401  (re-exported: the store's public names)
    CURVE_COLUMNS,
    JSON_COLUMNS,
    RUN_COLUMNS,
    SELECTION_COLUMNS,
    StoreError,
    frame_record,
    json_cell,
    optimizer_base_name,
    result_from_row,
    run_row,
)  # fmt: skip

SCHEMA_VERSION = 2
# Version 1 lacked ``runs.label`` and the ``selections`` table; opening it for writing adds
# both in one transaction (old rows' label = their optimizer), reading it shows the same.
MIGRATABLE_VERSIONS = ("1",)
DB_NAME = "runs.db"
FINISHED_STATUSES: tuple[str, ...] = ("done", "diverged")

# The columns stored as-is; ``final``, ``eval`` and provenance live in JSON so that a new
# metric name never needs a migration.
_STORED = (
    *RUN_COLUMNS[: RUN_COLUMNS.index("eval_json")],
    "final_json", "eval_json", "provenance_json", "created_at",
)  # fmt: skip
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, task TEXT NOT NULL, label TEXT NOT NULL, optimizer TEXT NOT NULL,
    optimizer_name TEXT NOT NULL, lr REAL, seed INTEGER NOT NULL, data_seed INTEGER NOT NULL,
    phase TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL, steps INTEGER NOT NULL,
    epochs_completed REAL NOT NULL, wall_seconds REAL NOT NULL, steps_to_target INTEGER,
    seconds_to_target REAL, config_json TEXT NOT NULL, final_json TEXT NOT NULL,
    eval_json TEXT NOT NULL, provenance_json TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS curves (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, idx INTEGER NOT NULL,
    step INTEGER NOT NULL, epoch REAL NOT NULL, split TEXT NOT NULL, name TEXT NOT NULL,
    "group" INTEGER, value REAL, PRIMARY KEY (run_id, idx));
CREATE TABLE IF NOT EXISTS selections (
    task TEXT NOT NULL, label TEXT NOT NULL, protocol TEXT NOT NULL, chosen_spec TEXT NOT NULL,
    chosen_lr REAL, score REAL, tuning_seeds TEXT NOT NULL, final_seeds TEXT NOT NULL,
    grid TEXT NOT NULL, edge TEXT NOT NULL, stop_reason TEXT NOT NULL, trials INTEGER NOT NULL,
    final_run_ids TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (task, label));
"""
_MIGRATION_FROM_1 = """
ALTER TABLE runs ADD COLUMN label TEXT NOT NULL DEFAULT '';
UPDATE runs SET label = optimizer WHERE label = '';
"""


class IncompatibleStoreError(StoreError):
    """The file was written with another schema version; it is left untouched."""


class ResultsStore:
    """Runs and their curves in ``<out_dir>/runs.db``.

    Args:
        out_dir: The sweep's output folder; created if missing (unless ``read_only``).
        read_only: Open an existing store for reading only, e.g. from a report or GUI
            process while a sweep is still writing.

    Raises:
        StoreError: The folder or file cannot be created or opened.
        IncompatibleStoreError: The file has another ``schema_version``.
        FileNotFoundError: ``read_only`` and there is no store in ``out_dir``.
    """

    def __init__(self, out_dir: Path | str, *, read_only: bool = False) -> None:
        self.out_dir = Path(out_dir)
        self.path = self.out_dir / DB_NAME
        self.read_only = read_only
        if read_only and not self.path.is_file():
            raise FileNotFoundError(f"no results store at {self.path}")
        if not read_only:
            try:
                self.out_dir.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"cannot create results folder {self.out_dir}: {exc}") from exc
        try:
            self._conn = self._opened(immutable=False)
        except StoreError:
            if not self._on_read_only_media():
                raise
            self._conn = self._opened(immutable=True)

    def _opened(self, immutable: bool) -> sqlite3.Connection:
        self._conn = self._connect(immutable)
        try:
            self._open_schema()
        except sqlite3.Error as exc:
            self._conn.close()
            raise StoreError(f"cannot open results store {self.path}: {exc}{_failure_hint(self.path)}") from exc
        except BaseException:
            self._conn.close()
            raise
        return self._conn

    def _on_read_only_media(self) -> bool:
        # A WAL store needs its -shm file even to read; where the folder is read-only (an
        # archive, a read-only mount) and no -wal holds unmerged commits, the file cannot
        # change under us, and SQLite may read it as immutable without one.
        wal = self.path.with_name(self.path.name + "-wal")
        wal_empty = not wal.exists() or wal.stat().st_size == 0
        return self.read_only and wal_empty and not os.access(self.out_dir, os.W_OK)

    def _connect(self, immutable: bool = False) -> sqlite3.Connection:
        mode = "mode=ro&immutable=1" if immutable else "mode=ro"
        target = f"{self.path.resolve().as_uri()}?{mode}" if self.read_only else str(self.path)
        try:
            # isolation_level=None: transactions are explicit (BEGIN IMMEDIATE in record()).
            conn = sqlite3.connect(target, uri=self.read_only, timeout=30, isolation_level=None)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results store {self.path}: {exc}") from exc
        conn.row_factory = sqlite3.Row
        return conn

    def _open_schema(self) -> None:
        # Check the version before any PRAGMA that writes: an incompatible file stays
        # byte-for-byte as it was.
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        found = None
        if "meta" in tables:
            row = self._conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
            found = str(row[0]) if row else "missing"
            if found not in MIGRATABLE_VERSIONS:
                self._check_version(found)
        elif tables:
            self._check_version("missing")
        elif self.read_only:
            raise StoreError(f"{self.path} is empty, not a results store")
        if self.read_only:
            return
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        if found in MIGRATABLE_VERSIONS:
            self._migrate()
        if "meta" not in tables:
            with self._write_transaction():
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        self._conn.execute(statement)
                self._conn.executemany(
                    "INSERT OR IGNORE INTO meta(key, value) VALUES (?, ?)",
                    [("schema_version", str(SCHEMA_VERSION)),
                     ("package_version", gradretention.__version__)],
                )  # fmt: skip

    def _migrate(self) -> None:
        """Bring a version-1 store to :data:`SCHEMA_VERSION` in one transaction."""
        with self._write_transaction():
            for statement in (*_MIGRATION_FROM_1.split(";"), *_SCHEMA.split(";")):
                if statement.strip():
                    self._conn.execute(statement)
            self._conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    def _check_version(self, found: object) -> None:
        if str(found) != str(SCHEMA_VERSION):
            raise IncompatibleStoreError(
                f"results store {self.path} has schema_version {found}, this gradretention "
                f"{gradretention.__version__} reads schema_version {SCHEMA_VERSION}; nothing "
                "was overwritten — use another output folder or the matching version"
            )

    @contextlib.contextmanager
    def _write_transaction(self) -> Iterator[None]:
        # BEGIN IMMEDIATE takes the write lock up front, so readers never see half a run.
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")

    def finished_ids(self) -> set[str]:
        """Ids of runs that a resumed sweep skips: status ``done`` or ``diverged``."""
        marks = ",".join("?" * len(FINISHED_STATUSES))
        query = f"SELECT run_id FROM runs WHERE status IN ({marks})"
        return {r[0] for r in self._conn.execute(query, FINISHED_STATUSES)}

    def finished_settings(self) -> dict[str, str | None]:
        """``{run_id: optimizer_settings}`` of the finished runs (None: recorded before settings were kept)."""
        marks = ",".join("?" * len(FINISHED_STATUSES))
        query = f"SELECT run_id, provenance_json FROM runs WHERE status IN ({marks})"
        rows = self._conn.execute(query, FINISHED_STATUSES)
        return {row["run_id"]: json_cell(row, "provenance_json", self.path).get("optimizer_settings") for row in rows}

    def record(self, result: RunResult) -> None:
        """Insert or replace one run and all its curve points, in one transaction.

        Raises:
            ValueError: ``result.status`` is not one of :data:`RUN_STATUSES`.
            StoreError: The store is read-only or the write failed (nothing was written).
        """
        if result.status not in RUN_STATUSES:
            raise ValueError(f"unknown run status {result.status!r}; valid: {RUN_STATUSES}")
        if self.read_only:
            raise StoreError(f"results store {self.path} was opened read-only")
        row = run_row(result)
        upsert = (
            f"INSERT INTO runs({','.join(_STORED)}) VALUES ({','.join('?' * len(_STORED))}) "
            f"ON CONFLICT(run_id) DO UPDATE SET "
            + ",".join(f"{c}=excluded.{c}" for c in _STORED[1:])
        )
        curve_rows = (
            (result.run_id, i, p.step, p.epoch, p.split, p.name, p.group, p.value)
            for i, p in enumerate(result.curves)
        )
        try:
            with self._write_transaction():
                self._conn.execute(upsert, [row[c] for c in _STORED])
                self._conn.execute("DELETE FROM curves WHERE run_id = ?", (result.run_id,))
                self._conn.executemany("INSERT INTO curves VALUES (?,?,?,?,?,?,?,?)", curve_rows)
        except (sqlite3.Error, OverflowError, TypeError, ValueError) as exc:
            raise StoreError(
                f"could not record run {result.run_id} ({result.config.optimizer!r} on task "
                f"{result.config.task!r}, seed {result.config.seed}) in {self.path}: {exc}"
                f"{_failure_hint(self.path)}; nothing of "
                "this run was written and the runs recorded before are intact: fix the cause (a full disk, a "
                "read-only folder) and rerun the same command to resume"
            ) from exc

    def runs(self) -> pd.DataFrame:
        """All runs, one row each: :data:`RUN_COLUMNS` plus one column per ``final`` key.

        A ``final`` key that clashes with a documented column is prefixed ``final_``.
        """
        rows = self._conn.execute("SELECT * FROM runs ORDER BY created_at, run_id").fetchall()
        records = [frame_record(r, self.path) for r in rows]
        metric_names = sorted({k for rec in records for k in rec} - set(RUN_COLUMNS))
        frame = pd.DataFrame.from_records(records, columns=[*RUN_COLUMNS, *metric_names])
        return frame.astype(
            {"lr": float, "seconds_to_target": float, "epochs_completed": float,
             "wall_seconds": float, "steps_to_target": "Int64"}
        )  # fmt: skip

    def record_selection(self, selection: dict[str, Any]) -> None:
        """Insert or replace the selection of one (task, label): the keys of :data:`SELECTION_COLUMNS`.

        Lists (seeds, grid, run ids) are stored as JSON text; ``created_at`` is set here.

        Raises:
            ValueError: a missing or unknown key, naming it.
            StoreError: the store is read-only or the write failed.
        """
        given = set(selection)
        expected = set(SELECTION_COLUMNS) - {"created_at"}
        if given != expected:
            raise ValueError(f"selection keys must be {sorted(expected)}; missing {sorted(expected - given)}, "
                             f"unknown {sorted(given - expected)}")
        if self.read_only:
            raise StoreError(f"results store {self.path} was opened read-only")
        row = {key: json.dumps(list(value)) if isinstance(value, (list, tuple)) else value
               for key, value in selection.items()}  # fmt: skip
        row["created_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="microseconds")
        marks = ",".join("?" * len(SELECTION_COLUMNS))
        try:
            with self._write_transaction():
                self._conn.execute(f"INSERT OR REPLACE INTO selections({','.join(SELECTION_COLUMNS)}) "
                                   f"VALUES ({marks})", [row[c] for c in SELECTION_COLUMNS])  # fmt: skip
        except sqlite3.Error as exc:
            raise StoreError(f"could not record the selection of {selection['label']!r} on task "
                             f"{selection['task']!r} in {self.path}: {exc}{_failure_hint(self.path)}") from exc

    def selections(self) -> pd.DataFrame:
        """What each sweep decided, one row per (task, label), columns :data:`SELECTION_COLUMNS`.

        ``tuning_seeds``, ``final_seeds``, ``grid`` and ``final_run_ids`` are JSON lists;
        ``edge`` is ``""``, ``"low"`` or ``"high"``; ``trials`` is 0 for the grid protocol.
        A version-1 store opened read-only has none (an empty frame with these columns).
        """
        tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master")}
        rows = []
        if "selections" in tables:
            rows = self._conn.execute(f"SELECT {','.join(SELECTION_COLUMNS)} FROM selections "
                                      "ORDER BY task, label").fetchall()  # fmt: skip
        frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(SELECTION_COLUMNS))
        return frame.astype({"chosen_lr": float, "score": float, "trials": "int64"})

    def curves(self, run_ids: Iterable[str] | None = None) -> pd.DataFrame:
        """Curve points in logging order, columns :data:`CURVE_COLUMNS`; all runs if ``None``."""
        query = 'SELECT run_id, step, epoch, split, name, "group", value FROM curves'
        if run_ids is None:
            rows = self._conn.execute(f"{query} ORDER BY run_id, idx").fetchall()
        else:
            rows = []
            ids = list(dict.fromkeys(run_ids))
            for start in range(0, len(ids), 500):  # stay far below SQLite's variable limit
                chunk = ids[start : start + 500]
                where = f" WHERE run_id IN ({','.join('?' * len(chunk))}) ORDER BY run_id, idx"
                rows.extend(self._conn.execute(query + where, chunk).fetchall())
        frame = pd.DataFrame.from_records([tuple(r) for r in rows], columns=list(CURVE_COLUMNS))
        return frame.astype({"step": "int64", "epoch": float, "group": "Int64", "value": float})

    def get(self, run_id: str) -> RunResult | None:
        """The recorded :class:`RunResult` with this id, curves included; ``None`` if absent."""
        row = self._conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            return None
        points = self._conn.execute(
            'SELECT step, epoch, split, name, value, "group" FROM curves '
            "WHERE run_id = ? ORDER BY idx",
            (run_id,),
        ).fetchall()
        return result_from_row(row, points, self.path)

    def close(self) -> None:
        """Close the connection; further calls fail with ``sqlite3.ProgrammingError``."""
        self._conn.close()

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"ResultsStore({str(self.out_dir)!r}, read_only={self.read_only})"


LOW_SPACE_BYTES = 1 << 20  # below this much free space, a failed write names the space left


def _failure_hint(path: Path) -> str:
    """Why a write into ``path``'s folder may have failed, when the file system says so."""
    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return ""
    if free < LOW_SPACE_BYTES:
        return f" (the file system holding {path.parent} has {free} bytes free)"
    if not os.access(path.parent, os.W_OK):
        return f" ({path.parent} is not writable)"
    return ""
