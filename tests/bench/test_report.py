"""The report: self-contained HTML, Markdown with existing PNGs, the protocol, the statistics."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from gradretention.bench.report import build_report, write_report
from gradretention.bench.results import CurvePoint, RunConfig, RunResult
from gradretention.bench.store import ResultsStore

EVIL = "<script>alert(1)</script>"
GRID = (1e-3, 1e-2, 1e-1)
# Final test accuracy per seed; adam_hd is the best, sgd the worst.
FINAL = {"adam": (0.90, 0.91, 0.92), "adam_hd": (0.95, 0.96, 0.97), "sgd": (0.80, 0.86, 0.83), EVIL: (0.85, 0.86, 0.87)}
BEST_LR = {"adam": 1e-2, "adam_hd": 1e-3, "sgd": 1e-1, EVIL: 1e-2}


def _row(optimizer: str, phase: str, lr: float, seed: int, accuracy: float, status: str = "done", reason: str = "") -> dict:
    return dict(
        run_id=f"{optimizer}|{phase}|{lr}|{seed}", task="spiral", optimizer=optimizer, optimizer_name=optimizer,
        lr=lr, seed=seed, data_seed=0, phase=phase, status=status, reason=reason, steps=40, epochs_completed=4.0,
        wall_seconds=1.5, steps_to_target=20 + 10 * seed if accuracy > 0.9 else None, seconds_to_target=0.5,
        config_json="{}", eval_json="{}", package_version="0.1.0", git_commit="abc123def456",
        torch_version="2.13.0", device="cpu", platform="Linux-test", python_version="3.11.7",
        created_at="2026-01-02T03:04:05+00:00", train_loss=0.2, val_loss=0.3,
        val_accuracy=accuracy - 0.01 if status == "done" else math.nan,
        test_accuracy=accuracy if status == "done" else math.nan,
        test_f1=accuracy - 0.02 if status == "done" else math.nan,
    )  # fmt: skip


def _runs() -> pd.DataFrame:
    rows = []
    for optimizer, accuracies in FINAL.items():
        for lr in GRID:
            # The validation score peaks at the lr that the final phase reruns.
            rows.append(_row(optimizer, "tune", lr, 0, 0.9 - 0.1 * abs(math.log10(lr / BEST_LR[optimizer]))))
        rows += [_row(optimizer, "final", BEST_LR[optimizer], seed, acc) for seed, acc in enumerate(accuracies)]
    rows.append(_row("adam", "tune", 1e-1, 1, math.nan, status="diverged", reason="non-finite loss <img src=x> at step 7"))
    return pd.DataFrame(rows)


def _curves(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run in runs.itertuples():
        for step in range(0, 40, 10):
            rows += [dict(run_id=run.run_id, step=step, epoch=step / 10, split="train", name="loss", group=None,
                          value=1.0 / (1 + step)),
                     dict(run_id=run.run_id, step=step, epoch=step / 10, split="opt", name="lr", group=0,
                          value=run.lr * (1 - step / 20))]  # fmt: skip
        rows += [dict(run_id=run.run_id, step=10 * e, epoch=e, split="val", name="accuracy", group=None,
                      value=0.5 + 0.1 * e) for e in range(1, 5)]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-out")
    runs = _runs()
    return write_report(runs, _curves(runs), out, dpi=40)


def test_html_is_self_contained_with_embedded_images(report: Path) -> None:
    text = report.read_text("utf-8")
    assert report.name == "report.html"
    assert text.count('src="data:image/png;base64,') == 5  # profile + four figures of the one task
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text)
    assert "<link" not in text and "<script" not in text


def test_names_and_reasons_are_escaped_in_html_and_markdown(report: Path) -> None:
    text = report.read_text("utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "&lt;img src=x&gt;" in text
    markdown = (report.parent / "report.md").read_text("utf-8")
    assert "<script" not in markdown and "<img" not in markdown


def test_protocol_states_the_grid_and_the_number_of_seeds(report: Path) -> None:
    text = report.read_text("utf-8")
    assert "each optimizer gets the same lr grid (0.001, 0.01, 0.1), scored on validation accuracy" in text
    assert "the best lr is rerun on 3 seeds; test numbers are reported" in text
    assert "differs from the validation-best lr" not in text


def test_protocol_flags_a_rerun_at_a_lr_that_validation_did_not_pick(tmp_path) -> None:
    runs = _runs()
    runs.loc[(runs["optimizer"] == "sgd") & (runs["phase"] == "final"), "lr"] = 1e-3
    text = write_report(runs, _curves(runs).iloc[0:0], tmp_path, dpi=40).read_text("utf-8")
    assert "the rerun lr differs from the validation-best lr for sgd on spiral (rerun at 0.001, best 0.1)" in text


def test_summary_bolds_the_best_mean_with_its_ci(report: Path) -> None:
    markdown = (report.parent / "report.md").read_text("utf-8")
    adam_hd = next(line for line in markdown.splitlines() if line.startswith("| spiral | **adam_hd** |"))
    assert "**96.00 ± 1.00**" in adam_hd
    assert re.search(r"\| 9\d\.\d\d – 9\d\.\d\d \| \*\*94\.00 ± 1\.00\*\* \| 3 \| 0 \|", adam_hd)


def test_significance_table_has_holm_corrected_welch_and_mann_whitney(report: Path) -> None:
    markdown = (report.parent / "report.md").read_text("utf-8")
    assert "| task | optimizer | best baseline | n | mean | baseline mean | diff | Welch p (Holm)" in markdown
    # Oracle: scipy on the hand-made samples, Holm over the three comparisons with adam.
    base = np.array(FINAL["adam"])
    welch = {o: sps.ttest_ind(np.array(FINAL[o]), base, equal_var=False).pvalue for o in ("adam_hd", "sgd", EVIL)}
    ranked = sorted(welch, key=welch.get)
    holm = dict(zip(ranked, np.maximum.accumulate([min(1, (3 - i) * welch[o]) for i, o in enumerate(ranked)])))
    row = next(line for line in markdown.splitlines() if line.startswith("| spiral | adam_hd | adam | 3 vs 3 |"))
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells[6] == "**+5.00**"
    assert cells[7] == (f"{holm['adam_hd']:.1e}" if holm["adam_hd"] < 1e-3 else f"{holm['adam_hd']:.3f}")
    assert cells[9] == "+5.00"  # Cohen's d: 0.05 / pooled sd 0.01
    assert cells[10] == "**better**"
    sgd = next(line for line in markdown.splitlines() if line.startswith("| spiral | sgd | adam |"))
    assert sgd.rstrip().endswith("| **worse** |")


def test_markdown_references_figures_that_exist(report: Path) -> None:
    markdown = (report.parent / "report.md").read_text("utf-8")
    paths = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", markdown)
    assert len(paths) == 5
    for path in paths:
        assert path.startswith("figures/") and (report.parent / path).is_file()


def test_failed_runs_are_listed_with_their_reason(report: Path) -> None:
    markdown = (report.parent / "report.md").read_text("utf-8")
    assert "| diverged | spiral | adam | tune | 0.1 | 1 | non-finite loss &lt;img src=x&gt; at step 7 |" in markdown


def test_time_to_target_and_sensitivity_sections_are_present(report: Path) -> None:
    markdown = (report.parent / "report.md").read_text("utf-8")
    assert "| spiral | adam_hd | 100 % of 3 | 30 | 0.50 |" in markdown
    # sgd's grid 0.9 - 0.1 * decades: 0.7, 0.8, 0.9; only its best lr is within one point.
    assert "| spiral | sgd | 0.1 | 89.00 | 3 | 33 % |" in markdown


def test_unknown_metric_and_empty_store_are_clear_errors(tmp_path) -> None:
    runs = _runs()
    with pytest.raises(ValueError, match="unknown metric 'bleu'.*test_accuracy"):
        write_report(runs, _curves(runs), tmp_path, metric="bleu")
    with pytest.raises(ValueError, match="no runs recorded"):
        write_report(runs.iloc[0:0], _curves(runs), tmp_path)
    with pytest.raises(FileNotFoundError, match="runs.db"):
        build_report(tmp_path / "nothing-here")


def _result(optimizer: str, phase: str, lr: float, seed: int, accuracy: float) -> RunResult:
    config = RunConfig(task="spiral", optimizer=optimizer, seed=seed, lr=lr, epochs=2, phase=phase)
    curves = tuple(CurvePoint(step=s, epoch=s / 10, split="train", name="loss", value=1 / (1 + s)) for s in (0, 10))
    curves += (CurvePoint(step=10, epoch=1.0, split="val", name="accuracy", value=accuracy),
               CurvePoint(step=10, epoch=1.0, split="opt", name="lr", value=lr, group=0))  # fmt: skip
    provenance = {"package_version": "0.1.0", "git_commit": "feedc0ffee", "torch_version": "2.13.0",
                  "device": "cpu", "platform": "Linux", "python_version": "3.11"}  # fmt: skip
    final = {"val_accuracy": accuracy, "test_accuracy": accuracy, "test_f1": accuracy}
    return RunResult(config=config, status="done", final=final, curves=curves, steps=20, provenance=provenance)


def test_report_from_a_real_results_store(tmp_path) -> None:
    with ResultsStore(tmp_path) as store:
        for optimizer, accuracies in (("adam", (0.80, 0.82)), ("adam_hd", (0.90, 0.93))):
            for lr in (0.01, 0.1):
                store.record(_result(optimizer, "tune", lr, 0, accuracies[0] + lr))
            for seed, accuracy in enumerate(accuracies):
                store.record(_result(optimizer, "final", 0.1, seed, accuracy))
    path = build_report(tmp_path, metric="accuracy", dpi=40)
    text = path.read_text("utf-8")
    assert path == tmp_path / "report.html"
    assert "feedc0ffee" in text and "same lr grid (0.01, 0.1)" in text and "rerun on 2 seeds" in text
    assert "91.50 ± 2.12" in text  # adam_hd: mean and sample std of 0.90, 0.93
    assert text.count("data:image/png;base64,") == 5
    assert not list(tmp_path.glob(".report*"))  # no temp file left behind
