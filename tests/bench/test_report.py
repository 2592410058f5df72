"""The report: one self-contained interactive HTML file, Markdown tables, protocol, verdicts, caveats."""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

from gradretention.bench.report import build_report, write_report
from gradretention.bench.results import CurvePoint, RunConfig, RunResult
from gradretention.bench.store import ResultsStore

EVIL = "<script>alert(1)</script>"
GRID = (1e-3, 10**-2.5, 1e-2, 10**-1.5, 1e-1)
TUNE_SEEDS, FINAL_SEEDS = (0, 1, 2), (100, 101, 102, 103, 104)
ADAM = (0.90, 0.91, 0.92, 0.91, 0.90)
# adam_hd: +5 points on every seed (better); EVIL: -5 points (worse); adam_hd_adam: +0.2 points, a
# consistent gain inside the test-set noise (tie); sgd: -8 points but one diverged seed at chance (tie).
FINAL = {"adam": ADAM, "adam_hd": tuple(a + 0.05 + 0.001 * i for i, a in enumerate(ADAM)),
         "adam_hd_adam": tuple(a + 0.002 + 0.0001 * i for i, a in enumerate(ADAM)),
         "sgd": (0.82, 0.83, None, 0.84, 0.82), EVIL: tuple(a - 0.05 - 0.001 * i for i, a in enumerate(ADAM))}
BEST_LR = {"adam": 1e-2, "adam_hd": 1e-3, "adam_hd_adam": 1e-2, "sgd": 1e-1, EVIL: 1e-2}
SETUP = {"task": "spiral", "epochs": 4, "batch_size": 32, "data_seed": 0, "device": "cpu", "max_steps": None}


def _row(optimizer: str, phase: str, lr: float, seed: int, accuracy: float | None, *, epochs: int = 4,
         reason: str = "") -> dict:  # fmt: skip
    status = "done" if accuracy is not None else "diverged"
    config = json.dumps({**SETUP, "epochs": epochs, "optimizer": optimizer, "seed": seed, "lr": lr, "phase": phase,
                         "extra": []})  # fmt: skip
    return dict(
        run_id=f"{optimizer}|{phase}|{lr}|{seed}|{epochs}", task="spiral", optimizer=optimizer, label=optimizer,
        optimizer_name=optimizer, lr=lr, seed=seed, data_seed=0, phase=phase, status=status,
        reason=reason or ("non-finite loss <img src=x> at step 7" if status != "done" else ""), steps=40,
        epochs_completed=4.0, wall_seconds=1.5, steps_to_target=20 + seed % 7 if (accuracy or 0) > 0.9 else None,
        seconds_to_target=0.5, config_json=config, eval_json=json.dumps({"eval_samples_per_second": 3000.0,
        "eval_runtime": 1.0}), package_version="0.1.0", git_commit="abc123def456", torch_version="2.13.0",
        device="cpu", platform="Linux-test", python_version="3.11.7", created_at="2026-01-02T03:04:05+00:00",
        val_accuracy=accuracy - 0.01 if status == "done" else math.nan,
        test_accuracy=accuracy if status == "done" else math.nan,
    )  # fmt: skip


def _runs() -> pd.DataFrame:
    rows = []
    for optimizer, accuracies in FINAL.items():
        for lr in GRID:
            for seed in TUNE_SEEDS:  # the validation score peaks at the lr that the final phase reruns
                rows.append(_row(optimizer, "tune", lr, seed, 0.9 - 0.1 * abs(math.log10(lr / BEST_LR[optimizer]))))
        rows += [_row(optimizer, "final", BEST_LR[optimizer], s, a) for s, a in zip(FINAL_SEEDS, accuracies)]
    return pd.DataFrame(rows)


def _selections() -> pd.DataFrame:
    grid = json.dumps(list(GRID))
    return pd.DataFrame([{
        "task": "spiral", "label": label, "protocol": "grid", "chosen_spec": f"{label}[lr={BEST_LR[label]:g}]",
        "chosen_lr": BEST_LR[label], "score": 0.89, "tuning_seeds": json.dumps(TUNE_SEEDS),
        "final_seeds": json.dumps(FINAL_SEEDS), "grid": grid, "edge": "high" if label == "sgd" else "",
        "stop_reason": "bound: 3 extra points" if label == "sgd" else "", "trials": 0} for label in FINAL])  # fmt: skip


def _curves(runs: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for run in runs.itertuples():
        hd = run.optimizer != "adam"
        for step in range(0, 40, 10):
            rows += [dict(run_id=run.run_id, step=step, epoch=step / 10, split="train", name="loss", group=None,
                          value=1.0 / (1 + step + run.seed % 3)),
                     dict(run_id=run.run_id, step=step, epoch=step / 10, split="opt", name="lr", group=0,
                          value=run.lr * ((1 - step / 20) if hd else 1.0))]  # fmt: skip
        rows += [dict(run_id=run.run_id, step=10 * e, epoch=e, split="val", name="accuracy", group=None,
                      value=0.5 + 0.1 * e) for e in range(1, 5)]  # fmt: skip
    return pd.DataFrame(rows)


@pytest.fixture(scope="module")
def report(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bench-out")
    runs = _runs()
    return write_report(runs, _curves(runs), out, selections=_selections())


def _markdown(report: Path) -> str:
    return (report.parent / "report.md").read_text("utf-8")


def _md_row(markdown: str, first_cell: str, width: int = 11) -> list[str]:
    """The cells of the first table row with this first cell and ``width`` cells (11: the results table)."""
    rows = ([cell.strip() for cell in line.strip().strip("|").split("|")] for line in markdown.splitlines()
            if line.startswith(f"| {first_cell} |"))  # fmt: skip
    return next(row for row in rows if len(row) == width)


def test_html_is_one_self_contained_file_with_plotly_embedded_once(report: Path) -> None:
    text = report.read_text("utf-8")
    assert text.count("plotly.js v") == 1 and "<script src" not in text and "<link" not in text
    bundle_end = text.index("</script>")  # the embedded plotly.js bundle, whose code names plotly.com
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", text[bundle_end:])  # no CDN: works offline
    assert text.count("Plotly.newPlot(") == 5  # per seed, train loss, validation, α, sensitivity
    # Drill-down: every optimizer's seeds are one legend entry, hidden until clicked.
    assert text.count('"name":"adam_hd \\u00b7 seeds"') >= 4 and '"visible":"legendonly"' in text
    assert not list(report.parent.glob(".report*"))  # no temp file left behind
    ids = re.findall(r'\bid="([^"]+)"', text[bundle_end:])
    assert len(ids) > 5 and len(ids) == len(set(ids)), "every id in the page is unique (the nav jumps to them)"
    nav_targets = re.findall(r'<a href="#([^"]+)"', text)
    assert nav_targets and set(nav_targets) <= set(ids)


def test_names_and_reasons_are_escaped_in_html_and_markdown(report: Path) -> None:
    text = report.read_text("utf-8")
    assert EVIL not in text and "&lt;script&gt;alert(1)&lt;/script&gt;" in text and "&lt;img src=x&gt;" in text
    markdown = _markdown(report)
    assert "<script" not in markdown and "<img" not in markdown


def test_each_group_states_its_setup_and_protocol_from_the_selections(report: Path) -> None:
    markdown = _markdown(report)
    assert "Setup: epochs 4 · max steps none · batch size 32 · data seed 0 · device cpu" in markdown
    assert "Grid protocol" in markdown and "tuning seeds 0–2 (3)" in markdown
    assert "Final seeds 100–104 (5), disjoint from the tuning seeds" in markdown
    assert "sgd: best lr 0.1 still at the high edge of the grid (bound: 3 extra points)" in markdown


def test_verdicts_follow_the_ci_and_the_test_set_noise(report: Path) -> None:
    markdown = _markdown(report)
    # optimizer | lr | mean ± sd | finished | val | Δ | verdict | CI t | CI boot | p | Wilcoxon
    hd, noise, sgd = (_md_row(markdown, name) for name in ("**adam_hd**", "adam_hd_adam", "sgd"))
    evil = _md_row(markdown, "**&lt;script&gt;alert(1)&lt;/script&gt;**")
    assert hd[5] == "**+5.20 (n=5)**" and hd[6] == "**better**"
    assert evil[5] == "**-5.20 (n=5)**" and evil[6] == "**worse**"
    assert noise[6] == "tie (within test noise)" and float(noise[9]) < 0.05  # significant CI, inside 1.96·SE_test: a tie
    assert sgd[3] == "4 of 5" and sgd[6] == "tie (CI includes 0)"  # one seed at chance widens its CI past 0
    assert _md_row(markdown, "adam")[5:7] == ["reference", "reference"]
    # The diverged sgd seed counts at chance (1/3 on spiral) in its mean: (0.82 + 0.83 + 0.84 + 0.82 + 1/3) / 5.
    assert sgd[2].startswith(f"{100 * (0.82 + 0.83 + 0.84 + 0.82 + 1 / 3) / 5:.2f} ±")


def test_a_constant_difference_is_not_printed_as_a_zero_width_ci(tmp_path: Path) -> None:
    runs = _runs()
    same = runs["optimizer"] == "adam_hd"
    runs.loc[same & (runs["phase"] == "final"), "test_accuracy"] = [a + 0.05 for a in ADAM]
    markdown = _markdown(write_report(runs, _curves(runs).iloc[:0], tmp_path))
    hd = _md_row(markdown, "**adam_hd**")
    assert hd[7] == "none: Δ equal on every seed" and hd[8] == "—"


def test_caveats_name_small_n_alpha_and_failed_seeds(report: Path) -> None:
    markdown = _markdown(report)
    assert "sgd: 1 of 5 final seeds diverged or failed; they count at chance level" in markdown
    assert "adam_hd: α negative (α\\_t ≤ 0) in 5 of 5 runs." in markdown
    assert "| adam_hd | 5 | 150 % | -0.5 | 0 | 5 |" in markdown


def test_runs_of_another_setup_are_reported_apart_never_pooled(tmp_path: Path) -> None:
    runs = pd.concat([_runs(), pd.DataFrame([_row("adam", "final", 1e-2, s, 0.5, epochs=20) for s in (100, 101)])])
    markdown = _markdown(write_report(runs, _curves(runs).iloc[:0], tmp_path))
    assert "## Task spiral · setup 1" in markdown and "## Task spiral · setup 2" in markdown
    assert "spiral: runs of 2 setups (differing in epochs) are reported as separate groups, never pooled." in markdown
    second = markdown.split("## Task spiral · setup 2")[1]
    assert "Setup: epochs 20" in second and "adam_hd" not in second.split("##")[0]


def test_an_old_store_without_selections_says_so(tmp_path: Path) -> None:
    runs = _runs().drop(columns=["label"])
    markdown = _markdown(write_report(runs, _curves(runs).iloc[:0], tmp_path))
    assert "protocol not recorded: a store written by an older version" in markdown
    assert "adam_hd: the chosen lr is the lowest tuned lr" in markdown


def test_sensitivity_and_targets_tables(report: Path) -> None:
    markdown = _markdown(report)
    # adam's grid scores 0.9 - 0.1·decades from 1e-2: only 1e-2 is within one point.
    # Every seed scores the same peaked curve: shuffling the grid (a null width of 0) rarely keeps its full spread.
    assert "| adam | 0.01 | 89.00 | 0.00 | no spread over resamples (0.00) | 0.00 | 0.024 | 5 | 3 | 90.80 |" in markdown
    assert "| optimizer | validation accuracy ≥ 0.9: seeds reached | median steps | median seconds |" in markdown
    assert "| adam_hd | 5 of 5 | 24 | 0.50 |" in markdown and "| sgd | 0 of 5 | — | — |" in markdown


def test_the_seed_claims_pair_each_method_with_its_base(report: Path) -> None:
    markdown = _markdown(report)
    hd, noise = _md_row(markdown, "**adam_hd**", width=6), _md_row(markdown, "adam_hd_adam", width=6)
    assert hd[1:] == ["adam", "+0.00 (no spread over resamples)", "+5.20 \\[+5.00, +5.40\\]", "**better**",
                      "1.00 \\[1.00, 1.00\\] (n=3)"]  # fmt: skip
    assert noise[1] == "adam" and noise[4] == "tie (within test noise)"


def test_failed_runs_are_listed_with_their_reason(report: Path) -> None:
    assert "| diverged | spiral | sgd | final | 0.1 | 102 | non-finite loss &lt;img src=x&gt; at step 7 |" in _markdown(report)


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
                store.record(_result(optimizer, "final", 0.1, seed + 10, accuracy))
    path = build_report(tmp_path, metric="accuracy")
    text = path.read_text("utf-8")
    assert path == tmp_path / "report.html" and "feedc0ffee" in text
    assert "91.50 ± 2.12" in text  # adam_hd: mean and sample sd of 0.90, 0.93
    assert "Setup: epochs 2" in _markdown(path)


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium installed (apt install chromium) to render the report")
def test_a_real_browser_renders_every_interactive_figure(report: Path) -> None:
    dom = subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--virtual-time-budget=10000",
                          "--dump-dom", report.as_uri()], capture_output=True, text=True, timeout=120).stdout  # fmt: skip
    expected = report.read_text("utf-8").count("Plotly.newPlot(")
    # plotly marks a drawn figure with js-plotly-plot and draws its traces into an SVG.
    assert dom.count('class="plot-container plotly"') == expected > 0
    assert dom.count('class="main-svg"') >= expected and "scatterlayer" in dom
    assert 'class="legend"' in dom  # toggling happens through the legend


def test_a_killed_reports_temporaries_are_removed_by_the_next_report(tmp_path: Path) -> None:
    dead = subprocess.Popen(["true"])  # a writer that has exited
    dead.wait()
    stale = tmp_path / f".report.html.{dead.pid}-deadbeef.tmp"
    live = tmp_path / f".report.md.{os.getpid()}-cafe0123.tmp"  # a concurrent writer, still running
    for path in (stale, live):
        path.write_text("half a report")
    runs = _runs()
    write_report(runs, _curves(runs).iloc[:0], tmp_path)
    assert not stale.exists() and live.exists()


def test_sensitivity_lists_untuned_optimizers_beside_the_tuned_with_their_test_score(tmp_path) -> None:
    # An lr-free peer runs its final seeds at lr = 1 with no grid: a row without a width, with its test mean.
    runs = pd.concat([_runs(), pd.DataFrame([_row("prodigy", "final", 1.0, s, 0.93) for s in FINAL_SEEDS])])
    markdown = _markdown(write_report(runs, _curves(runs), tmp_path, selections=_selections()))
    assert "| prodigy | 1 (fixed) | — (not tuned) | — (no grid) | — | — | — | 0 | — | 93.00 |" in markdown
    assert "| adam_hd | 0.001 |" in markdown  # the tuned rows stay, widths first
