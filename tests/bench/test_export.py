"""Export: tidy runs and curves tables that pandas reads back, written atomically."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from gradretention.bench.export import export_results
from gradretention.bench.results import CurvePoint, RunConfig, RunResult
from gradretention.bench.store import ResultsStore


def _fill_store(out_dir: Path) -> None:
    base = RunResult(
        config=RunConfig(task="spiral", optimizer="sgd_hd[hypergrad_lr=0.001]", lr=0.01),
        status="done", final={"test_accuracy": 0.9, "test_loss": 0.25}, steps=20,
        curves=tuple(CurvePoint(step=s, epoch=s / 10, split="train", name="loss", value=1 / s)
                     for s in (1, 2, 3)),
    )  # fmt: skip
    with ResultsStore(out_dir) as store:
        store.record(base)
        store.record(replace(base, config=replace(base.config, seed=1), status="diverged",
                             final={"test_accuracy": 0.1}, curves=base.curves[:1]))  # fmt: skip


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_export_writes_tables_that_read_back_with_the_same_rows(tmp_path: Path, fmt: str) -> None:
    _fill_store(tmp_path)
    paths = export_results(tmp_path, fmt)
    names = ("runs", "curves", "selections", "verdicts", "sensitivity", "claims")
    assert paths == [tmp_path / "export" / f"{name}.{fmt}" for name in names]
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    runs, curves = read(paths[0]), read(paths[1])
    with ResultsStore(tmp_path, read_only=True) as store:
        assert list(runs.columns) == list(store.runs().columns)
    assert len(runs) == 2 and len(curves) == 4
    assert sorted(runs["status"]) == ["diverged", "done"]
    assert sorted(runs["test_accuracy"]) == [0.1, 0.9]
    assert curves["value"].sum() == pytest.approx(1 + 1 / 2 + 1 / 3 + 1)
    assert sorted(p.name for p in paths[0].parent.iterdir()) == sorted(p.name for p in paths)
    verdicts = read(paths[3])  # the report's numbers: the diverged seed counts at chance (1/3 on spiral)
    assert verdicts[["task", "label", "planned", "finished", "failed"]].values.tolist() == [
        ["spiral", "sgd_hd[hypergrad_lr=0.001]", 2, 1, 1]]
    assert verdicts["mean"].tolist() == pytest.approx([(0.9 + 1 / 3) / 2])


def test_export_replaces_an_older_export(tmp_path: Path) -> None:
    _fill_store(tmp_path)
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "runs.csv").write_text("stale\n")
    export_results(tmp_path, "csv")
    assert len(pd.read_csv(tmp_path / "export" / "runs.csv")) == 2


def test_unknown_format_lists_the_valid_ones(tmp_path: Path) -> None:
    _fill_store(tmp_path)
    with pytest.raises(ValueError, match="'xlsx'; valid: csv, parquet"):
        export_results(tmp_path, "xlsx")
    assert not (tmp_path / "export").exists()


def test_export_without_a_store_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="runs.db"):
        export_results(tmp_path / "nothing-here", "csv")
    assert not (tmp_path / "nothing-here").exists()
