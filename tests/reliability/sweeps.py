"""The tiny sweep these tests crash, lock and repeat, how to pause it, and how to compare two stores."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pandas as pd

from gradretention.bench.config import SweepConfig
from gradretention.bench.events import RunFinished
from gradretention.bench.provenance import PROVENANCE_KEYS
from gradretention.bench.store import DB_NAME, ResultsStore

# 2 optimizers x 2 lrs tuned on seed 0, then 2 optimizers x 2 seeds: 8 runs.
PLANNED_RUNS = 8


def bench_args(out: Path, epochs: int = 40) -> list[str]:
    """``gradretention bench`` arguments of the tiny sweep (in-process, one thread)."""
    return ["bench", "--tasks", "spiral", "--optimizers", "adam,sgd", "--seeds", "2", "--lrs", "0.01,0.1",
            "--tune-seeds", "1", "--epochs", str(epochs), "--log-every", "5", "--workers", "1", "--threads", "1", "--out", str(out)]  # fmt: skip


# Measured time, memory and where/when: they differ between two identical runs.
VOLATILE_COLUMNS = frozenset({"wall_seconds", "seconds_to_target", "train_seconds_to_target", "cpu_seconds", "created_at", "peak_ram_mb", "peak_vram_mb",
                              "samples_per_second", "epoch_seconds", "eval_json", *PROVENANCE_KEYS})  # fmt: skip
VOLATILE_CURVES = frozenset({("train", "epoch_seconds"), ("train", "samples_per_second")})


def integrity(out: Path) -> str:
    """``PRAGMA integrity_check`` of ``out``'s store, opened the way a rerun opens it (WAL recovery)."""
    conn = sqlite3.connect(out / DB_NAME)
    try:
        return ";".join(row[0] for row in conn.execute("PRAGMA integrity_check"))
    finally:
        conn.close()


def deterministic_view(out: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Runs (sorted by id, volatile columns dropped) and curves (volatile series dropped)."""
    with ResultsStore(out, read_only=True) as store:
        runs, curves = store.runs(), store.curves()
    runs = runs.drop(columns=[c for c in runs.columns if c in VOLATILE_COLUMNS])
    runs = runs.sort_values("run_id").reset_index(drop=True)
    keep = [(split, name) not in VOLATILE_CURVES for split, name in zip(curves["split"], curves["name"])]
    return runs, curves[keep].reset_index(drop=True)


def eval_metrics(out: Path) -> dict[str, dict[str, float]]:
    """Per run id, the test metrics in ``eval_json`` minus its timings."""
    with ResultsStore(out, read_only=True) as store:
        runs = store.runs()
    timing = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
    return {row.run_id: {k: v for k, v in json.loads(row.eval_json).items() if k not in timing}
            for row in runs.itertuples()}  # fmt: skip


STORE_TABLES = frozenset({"meta", "runs", "curves", "selections"})


def store_tables(out: Path) -> frozenset[str]:
    """The tables in ``out``'s store: none (no file, or a kill before the schema's transaction committed) or all."""
    if not (out / DB_NAME).exists():
        return frozenset()
    conn = sqlite3.connect(out / DB_NAME)
    try:
        return frozenset(row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        conn.close()


def recorded_runs(out: Path) -> tuple[int, int]:
    """(rows in runs, distinct run ids) of ``out``'s store, (0, 0) without one: equal unless a run was stored twice."""
    if "runs" not in store_tables(out):
        return 0, 0
    conn = sqlite3.connect(out / DB_NAME)
    try:
        return conn.execute("SELECT COUNT(*), COUNT(DISTINCT run_id) FROM runs").fetchone()
    finally:
        conn.close()


def curve_indices_are_whole(out: Path) -> bool:
    """Every recorded run's curve rows are numbered 0..n-1 with no gap: never half a run."""
    if not store_tables(out):  # killed before the schema was committed: nothing recorded, nothing half-written
        return True
    conn = sqlite3.connect(out / DB_NAME)
    try:
        rows = conn.execute("SELECT run_id, COUNT(*), MIN(idx), MAX(idx) FROM curves GROUP BY run_id").fetchall()
        orphans = conn.execute("SELECT COUNT(*) FROM curves WHERE run_id NOT IN (SELECT run_id FROM runs)").fetchone()
    finally:
        conn.close()
    return orphans[0] == 0 and all(low == 0 and high == count - 1 for _, count, low, high in rows)


def tiny_config(out: Path, epochs: int = 40) -> SweepConfig:
    """The sweep of :func:`bench_args` as a :class:`SweepConfig`."""
    return SweepConfig(tasks=("spiral",), optimizers=("adam", "sgd"), seeds=2, lrs=(0.01, 0.1), tune_seeds=1, epochs=epochs,
                       log_every=5, workers=1, threads=1, out=str(out))  # fmt: skip


class Gate:
    """A listener that pauses the sweep after its first recorded run until ``resume`` exists.

    It touches ``paused`` when it stops, so a test knows the sweep is mid-way, holding
    its lock, with one run in the store.
    """

    def __init__(self, folder: Path, timeout: float = 120.0) -> None:
        self.paused, self.resume, self.timeout = folder / "paused", folder / "resume", timeout

    def __call__(self, event: object) -> None:
        if isinstance(event, RunFinished) and not self.paused.exists():
            self.paused.touch()
            wait_for(self.resume, self.timeout)


def wait_for(path: Path, timeout: float = 120.0) -> None:
    """Poll until ``path`` exists; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{path} did not appear within {timeout} s")
        time.sleep(0.01)
