"""The results store: round trips, idempotent and atomic writes, schema guard, columns."""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

import gradretention
from gradretention.bench.provenance import PROVENANCE_KEYS, collect_provenance
from gradretention.bench.results import CurvePoint, RunConfig, RunResult
from gradretention.bench.store import (
    DB_NAME,
    SCHEMA_VERSION,
    SELECTION_COLUMNS,
    IncompatibleStoreError,
    ResultsStore,
    StoreError,
)

DOCUMENTED_COLUMNS = {
    "run_id", "task", "label", "optimizer", "optimizer_name", "lr", "seed", "data_seed", "phase",
    "status", "reason", "steps", "epochs_completed", "wall_seconds", "steps_to_target",
    "seconds_to_target", "config_json", "eval_json", "package_version", "git_commit",
    "torch_version", "device", "platform", "python_version", "optimizer_package", "optimizer_settings", "created_at",
}  # fmt: skip


def _result(
    seed: int = 0, status: str = "done", optimizer: str = "adam_hd[hypergrad_lr=1e-08]"
) -> RunResult:
    config = RunConfig(
        task="digits-mlp", optimizer=optimizer, seed=seed, lr=0.001, data_seed=7, epochs=3,
        phase="final", extra=(("width", 64), ("betas", (0.9, 0.999))),
    )  # fmt: skip
    curves = (
        CurvePoint(step=10, epoch=0.5, split="train", name="loss", value=1.25),
        CurvePoint(step=10, epoch=0.5, split="opt", name="lr", value=0.0011, group=0),
        CurvePoint(step=10, epoch=0.5, split="opt", name="lr", value=0.0021, group=1),
        CurvePoint(step=20, epoch=1.0, split="val", name="accuracy", value=0.75),
    )
    return RunResult(
        config=config, status=status, reason="" if status == "done" else "loss is nan",
        final={"test_accuracy": 0.9 + seed / 100, "test_loss": 0.3, "peak_ram_mb": 512.0},
        eval={"val_accuracy": 0.88}, curves=curves, steps=60, epochs_completed=3.0,
        wall_seconds=4.5, steps_to_target=40 if status == "done" else None,
        seconds_to_target=3.0 if status == "done" else None,
        provenance=collect_provenance("cpu"),
    )  # fmt: skip


def test_recorded_result_round_trips_with_curves_and_config(tmp_path: Path) -> None:
    result = _result()
    with ResultsStore(tmp_path) as store:
        store.record(result)
        back = store.get(result.run_id)
    assert back == result
    assert back.config.run_id == result.run_id  # extra's tuples came back as tuples
    assert back.curves[1].group == 0 and back.curves[0].group is None


def test_get_of_unknown_id_is_none(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store:
        assert store.get("0123456789abcdef") is None


def test_nan_curve_value_comes_back_as_nan(tmp_path: Path) -> None:
    result = replace(_result(), curves=(CurvePoint(5, 0.1, "train", "loss", math.nan),))
    with ResultsStore(tmp_path) as store:
        store.record(result)
        assert math.isnan(store.get(result.run_id).curves[0].value)
        assert math.isnan(store.curves()["value"].iloc[0])


def test_recording_a_run_twice_keeps_one_row_and_the_latest_curves(tmp_path: Path) -> None:
    first = _result(status="error")
    second = replace(_result(), curves=first.curves[:2])
    with ResultsStore(tmp_path) as store:
        store.record(first)
        store.record(second)
        runs, curves = store.runs(), store.curves()
    assert len(runs) == 1 and runs["status"].tolist() == ["done"]
    assert len(curves) == 2


def test_failed_write_leaves_the_previous_record_intact(tmp_path: Path) -> None:
    good = _result()
    # A step beyond SQLite's 64-bit integers fails while curves are being inserted,
    # after the run row was already upserted inside the transaction.
    bad_point = CurvePoint(step=2**70, epoch=1.0, split="train", name="loss", value=0.1)
    bad = replace(good, status="diverged", curves=(*good.curves, bad_point))
    with ResultsStore(tmp_path) as store:
        store.record(good)
        with pytest.raises(StoreError, match=good.run_id):
            store.record(bad)
        assert store.get(good.run_id) == good
        assert len(store.curves()) == len(good.curves)


def test_finished_ids_are_done_and_diverged_runs_only(tmp_path: Path) -> None:
    results = {s: _result(seed=i, status=s) for i, s in enumerate(
        ("done", "diverged", "error", "interrupted"))}  # fmt: skip
    with ResultsStore(tmp_path) as store:
        for result in results.values():
            store.record(result)
        assert store.finished_ids() == {results["done"].run_id, results["diverged"].run_id}


def test_runs_frame_has_the_documented_columns_and_expanded_final(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store:
        store.record(_result(seed=0))
        store.record(replace(_result(seed=1), final={"test_accuracy": 0.5, "test_f1": 0.4}))
        runs = store.runs().sort_values("seed")
    finals = {"test_accuracy", "test_loss", "peak_ram_mb", "test_f1"}
    assert set(runs.columns) == DOCUMENTED_COLUMNS | finals
    assert runs["test_accuracy"].tolist() == [0.9, 0.5]
    assert math.isnan(runs["test_f1"].iloc[0]) and runs["test_f1"].iloc[1] == 0.4
    assert runs["optimizer"].iloc[0] == "adam_hd[hypergrad_lr=1e-08]"
    assert runs["optimizer_name"].iloc[0] == "adam_hd"
    assert runs["package_version"].iloc[0] == gradretention.__version__
    assert runs["steps_to_target"].iloc[0] == 40


def test_empty_store_frames_still_have_their_columns(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store:
        assert set(store.runs().columns) == DOCUMENTED_COLUMNS
        assert list(store.curves().columns) == [
            "run_id", "step", "epoch", "split", "name", "group", "value"]  # fmt: skip


def test_curves_can_be_restricted_to_some_runs(tmp_path: Path) -> None:
    a, b = _result(seed=0), _result(seed=1)
    with ResultsStore(tmp_path) as store:
        store.record(a)
        store.record(b)
        only_b = store.curves([b.run_id])
    assert set(only_b["run_id"]) == {b.run_id} and len(only_b) == len(b.curves)
    assert only_b["group"].tolist()[1:3] == [0, 1]


def test_store_uses_wal_and_records_its_versions(tmp_path: Path) -> None:
    ResultsStore(tmp_path / "out").close()
    conn = sqlite3.connect(tmp_path / "out" / DB_NAME)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        meta = dict(conn.execute("SELECT key, value FROM meta"))
    finally:
        conn.close()
    assert meta == {"schema_version": str(SCHEMA_VERSION),
                    "package_version": gradretention.__version__}  # fmt: skip


def test_incompatible_schema_raises_and_leaves_the_file_untouched(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store:
        store.record(_result())
    db = tmp_path / DB_NAME
    conn = sqlite3.connect(db)
    with conn:
        conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before_bytes, before_mtime = db.read_bytes(), db.stat().st_mtime_ns
    with pytest.raises(IncompatibleStoreError, match=r"999.*schema_version 2.*nothing was over"):
        ResultsStore(tmp_path)
    assert db.read_bytes() == before_bytes and db.stat().st_mtime_ns == before_mtime


def test_a_foreign_sqlite_file_is_incompatible(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / DB_NAME)
    conn.execute("CREATE TABLE other (x INTEGER)")
    conn.close()
    with pytest.raises(IncompatibleStoreError, match="schema_version missing"):
        ResultsStore(tmp_path)


def test_a_file_that_is_not_sqlite_raises_store_error_naming_it(tmp_path: Path) -> None:
    (tmp_path / DB_NAME).write_bytes(b"these are not the runs you are looking for" * 50)
    with pytest.raises(StoreError, match=DB_NAME):
        ResultsStore(tmp_path)


def test_unwritable_folder_raises_store_error_naming_it(tmp_path: Path) -> None:
    # We run as root, where chmod cannot deny writes: a regular file as parent can.
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="blocker"):
        ResultsStore(blocker / "out")


def test_read_only_store_reads_beside_the_writer_and_refuses_writes(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=DB_NAME):
        ResultsStore(tmp_path, read_only=True)
    with ResultsStore(tmp_path) as writer:
        writer.record(_result(seed=0))
        with ResultsStore(tmp_path, read_only=True) as reader:
            writer.record(_result(seed=1))
            assert len(reader.runs()) == 2
            with pytest.raises(StoreError, match="read-only"):
                reader.record(_result(seed=2))


def test_unknown_status_is_a_value_error(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store, pytest.raises(ValueError, match="'finished'.*done"):
        store.record(replace(_result(), status="finished"))


def test_provenance_has_every_key_and_the_real_versions() -> None:
    import platform

    import torch

    provenance = collect_provenance("cuda:1")
    assert tuple(provenance) == PROVENANCE_KEYS
    assert provenance["device"] == "cuda:1"
    assert provenance["torch_version"] == torch.__version__
    assert provenance["python_version"] == platform.python_version()
    commit = provenance["git_commit"]
    assert commit == "unknown" or (len(commit) == 40 and int(commit, 16) >= 0)


@pytest.mark.parametrize(("spec", "package"), [
    ("adam_hd[lr=0.001]", "gradretention "), ("adamw", "torch "), ("prodigy", "prodigyopt "),
    ("pt:adabelief", "pytorch"), ("no_such_optimizer", "unknown"),
])  # fmt: skip
def test_provenance_names_the_package_behind_the_optimizer(spec: str, package: str) -> None:
    pytest.importorskip("prodigyopt", reason="the peers extra is not installed")
    found = collect_provenance("cpu", spec)["optimizer_package"]
    assert found.startswith(package) and (package == "unknown" or found.split()[-1][0].isdigit())


def _selection(label: str = "adam", **changes) -> dict:
    row = {"task": "spiral", "label": label, "protocol": "grid", "chosen_spec": label, "chosen_lr": 0.01,
           "score": 0.9, "tuning_seeds": [0, 1, 2], "final_seeds": [100, 101], "grid": [0.001, 0.01, 0.1],
           "edge": "", "stop_reason": "interior", "trials": 0, "final_run_ids": ["a", "b"]}  # fmt: skip
    return {**row, **changes}


def test_selections_round_trip_one_row_per_task_and_label(tmp_path: Path) -> None:
    with ResultsStore(tmp_path) as store:
        assert list(store.selections().columns) == list(SELECTION_COLUMNS) and store.selections().empty
        store.record_selection(_selection())
        store.record_selection(_selection(chosen_lr=0.1, edge="high"))  # a later decision replaces it
        store.record_selection(_selection("sgd[lr=0.05]", protocol="fixed", tuning_seeds=[], score=None))
        frame = store.selections().set_index("label")
    assert list(frame.index) == ["adam", "sgd[lr=0.05]"]
    assert frame.loc["adam", "chosen_lr"] == 0.1 and frame.loc["adam", "edge"] == "high"
    assert json.loads(frame.loc["adam", "grid"]) == [0.001, 0.01, 0.1]
    assert json.loads(frame.loc["sgd[lr=0.05]", "tuning_seeds"]) == [] and math.isnan(frame.loc["sgd[lr=0.05]", "score"])


def test_a_selection_with_a_missing_or_unknown_key_is_refused(tmp_path: Path) -> None:
    row = _selection()
    del row["edge"]
    with ResultsStore(tmp_path) as store, pytest.raises(ValueError, match=r"missing \['edge'\], unknown \['x'\]"):
        store.record_selection({**row, "x": 1})


def _version_1_store(folder: Path) -> RunResult:
    """A store as version 1 wrote it: no label column, no selections table."""
    result = _result()
    with ResultsStore(folder) as store:
        store.record(result)
    conn = sqlite3.connect(folder / DB_NAME)
    with conn:
        conn.execute("DROP TABLE selections")
        conn.execute("ALTER TABLE runs DROP COLUMN label")
        conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return result


def test_a_version_1_store_reads_as_it_is_and_migrates_when_opened_for_writing(tmp_path: Path) -> None:
    result = _version_1_store(tmp_path)
    with ResultsStore(tmp_path, read_only=True) as old:
        assert old.runs()["label"].tolist() == [result.config.optimizer] and old.selections().empty
    with ResultsStore(tmp_path) as store:
        store.record_selection(_selection())
        runs = store.runs()
        assert store.get(result.run_id) == result
    assert runs["label"].tolist() == [result.config.optimizer] and set(runs.columns) >= DOCUMENTED_COLUMNS
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert conn.execute("SELECT label FROM runs").fetchall() == [(result.config.optimizer,)]
    finally:
        conn.close()
