"""A damaged JSON cell in runs.db: a clear error naming the file, the run and the column, never a traceback."""

from __future__ import annotations

import contextlib
import shutil
import sqlite3

import pytest

from gradretention.bench.store import JSON_COLUMNS, ResultsStore, StoreError
from gradretention.cli import main

RUN = ["run", "--task", "spiral", "--optimizer", "sgd", "--epochs", "1", "--workers", "1", "--threads", "1"]


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "out"
    assert main([*RUN, "--out", str(out)]) == 0
    return out


def damaged(finished, tmp_path, column: str, text: str) -> tuple[str, str]:
    """A copy of the finished sweep whose one run holds ``text`` in ``column``; its folder and run id."""
    out = tmp_path / "out"
    shutil.copytree(finished, out)
    with contextlib.closing(sqlite3.connect(out / "runs.db")) as conn, conn:
        run_id = conn.execute("SELECT run_id FROM runs").fetchone()[0]
        conn.execute(f"UPDATE runs SET {column} = ? WHERE run_id = ?", (text, run_id))
    return str(out), run_id


@pytest.mark.parametrize("column", JSON_COLUMNS)
@pytest.mark.parametrize(("text", "problem"), [("[]", "must hold a JSON object, got list"),
                                                ('"x"', "must hold a JSON object, got str"),
                                                ("{not json", "is not valid JSON")])  # fmt: skip
def test_report_export_and_a_rerun_name_the_run_and_column(finished, tmp_path, capsys, column, text, problem):
    out, run_id = damaged(finished, tmp_path, column, text)
    for argv in (["report", out], ["export", out], [*RUN, "--out", out]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert f"run {run_id!r}, column {column} {problem}" in err, err
        assert "runs.db" in err and "Traceback" not in err


@pytest.mark.parametrize("column", JSON_COLUMNS)
def test_get_raises_a_store_error_for_a_damaged_cell(finished, tmp_path, column):
    out, run_id = damaged(finished, tmp_path, column, "[1, 2]")
    with ResultsStore(out, read_only=True) as store, pytest.raises(StoreError, match=f"column {column} must hold"):
        store.get(run_id)


def test_a_config_with_unknown_keys_is_a_store_error(finished, tmp_path):
    out, run_id = damaged(finished, tmp_path, "config_json", '{"task": "spiral", "colour": "red"}')
    with ResultsStore(out, read_only=True) as store, pytest.raises(StoreError, match="is not a run config"):
        store.get(run_id)


def test_intact_cells_read_back_unchanged(finished):
    with ResultsStore(finished, read_only=True) as store:
        [run_id] = store.runs()["run_id"]
        result = store.get(run_id)
    assert result.status == "done" and result.config.task == "spiral" and "test_accuracy" in result.final


def test_a_provenance_value_edited_into_a_json_object_is_read_as_its_json_text(finished, tmp_path):
    edited = '{"optimizer_settings": {"eps": 0.001, "lr": 0.01}, "device": "cpu"}'
    out, run_id = damaged(finished, tmp_path, "provenance_json", edited)
    with ResultsStore(out, read_only=True) as store:
        run = store.runs().set_index("run_id").loc[run_id]
    assert run["optimizer_settings"] == '{"eps": 0.001, "lr": 0.01}' and run["device"] == "cpu"
    assert main(["report", out]) == 0  # the report reads it (it crashed on an unhashable value before)
