"""The benchmark report: ``<out>/report.html`` (one self-contained file, interactive
figures, works offline) and ``<out>/report.md`` (the same tables; figures linked).

The report is built per comparison group (:mod:`gradretention.bench.analysis.setups`):
runs of different setups are never pooled. Each group states its setup and protocol,
its verdicts against the reference baseline (:mod:`~gradretention.bench.analysis.verdicts`),
the caveats computed from its runs, and its figures. Both files are written atomically,
and temporaries left by a killed report are removed (:mod:`~gradretention.bench.reporting.files`).

Example:
    >>> build_report(Path("bench-out"))  # doctest: +SKIP
    PosixPath('bench-out/report.html')
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import pandas as pd

from gradretention.bench.analysis.analyse import EVALUATION_PHASES, GroupAnalysis, analyse_runs
from gradretention.bench.analysis.setups import differing_keys, with_labels
from gradretention.bench.reporting import render
from gradretention.bench.reporting.blocks import Block, Bullets, Heading, Paragraph, TextTable
from gradretention.bench.reporting.figures import palette
from gradretention.bench.reporting.files import write_text_atomic
from gradretention.bench.reporting.sections import group_blocks
from gradretention.bench.store import ResultsStore

_PROVENANCE = (("package_version", "gradretention"), ("git_commit", "git commit"), ("torch_version", "torch"),
               ("python_version", "Python"), ("device", "device"), ("platform", "platform"))  # fmt: skip
_RULES = ("How to read the verdicts: each optimizer is compared with its group's reference baseline (the baseline "
          "with the best mean validation score) on the final seeds both ran, paired by seed. A diverged or failed "
          "seed counts at the chance level, and 'finished' shows how many of the planned seeds finished. better / "
          "worse (green / red) only where the Holm-corrected paired-t CI of the difference excludes 0 and the "
          "difference exceeds 1.96 × the test set's own sampling error (accuracies); everything else is a tie. "
          "Final seeds never took part in choosing an lr.")  # fmt: skip


def build_report(out_dir: Path | str, metric: str | None = None) -> Path:
    """Read ``<out_dir>/runs.db`` and write ``report.html`` and ``report.md`` beside it.

    Args:
        out_dir: the sweep's output folder.
        metric: judge every task on this metric (``accuracy`` or ``test_accuracy``);
            default: each task's target metric on test where measured.

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: there is no results store in ``out_dir``.
        ValueError: the store holds no runs, or ``metric`` is not a recorded metric.
    """
    out_dir = Path(out_dir)
    with ResultsStore(out_dir, read_only=True) as store:
        runs = store.runs()
        curves = store.curves(runs.loc[runs["phase"].isin(EVALUATION_PHASES), "run_id"])
        selections = store.selections()
    return write_report(runs, curves, out_dir, metric, selections=selections)


def write_report(
    runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path | str, metric: str | None = None, *,
    selections: pd.DataFrame | None = None,
) -> Path:  # fmt: skip
    """:func:`build_report` on frames shaped like ``ResultsStore.runs()``, ``.curves()``, ``.selections()``."""
    out_dir = Path(out_dir)
    if runs.empty:
        raise ValueError(f"no runs recorded in {out_dir}; run `gradretention bench --out {out_dir}` first")
    out_dir.mkdir(parents=True, exist_ok=True)
    runs = with_labels(runs)
    analyses = analyse_runs(runs, curves, selections, metric)
    colors = palette(runs["label"])
    blocks: list[Block] = [*_overview(runs, analyses, selections)]
    for analysis, anchor in zip(analyses, _slugs(a.group.title for a in analyses)):
        blocks += group_blocks(analysis, curves, colors, anchor)
    blocks += _problems(runs)
    subtitle = _subtitle(runs, analyses)
    write_text_atomic(out_dir / "report.md", render.markdown(blocks, subtitle))
    html_path = out_dir / "report.html"
    write_text_atomic(html_path, render.html_page(blocks, subtitle))
    return html_path


def _overview(runs: pd.DataFrame, analyses: list[GroupAnalysis], selections: pd.DataFrame | None) -> list[Block]:
    rows = tuple((label, _distinct(runs[key]) if key in runs.columns else "—") for key, label in _PROVENANCE)
    dates = pd.to_datetime(runs.get("created_at", pd.Series(dtype=str)), errors="coerce", utc=True).dropna()
    when = f"{dates.min():%Y-%m-%d %H:%M} – {dates.max():%Y-%m-%d %H:%M} UTC" if len(dates) else "—"
    blocks: list[Block] = [Heading("Overview"), Paragraph(_RULES, "protocol")]
    if (selections is None or selections.empty) and (runs["phase"] == "tune").any():
        blocks.append(Paragraph("Tuning protocol not recorded (a store written by an older version, or a sweep that "
                                "has not chosen its settings yet): each group states what its runs show instead.",
                                "note"))  # fmt: skip
    split = differing_keys([a.group for a in analyses])
    if split:
        items = tuple(f"{task}: runs of {len(set(a.group.number for a in analyses if a.group.task == task))} setups "
                      f"(differing in {', '.join(keys)}) are reported as separate groups, never pooled."
                      for task, keys in sorted(split.items()))  # fmt: skip
        blocks.append(Bullets(items, "Setups kept apart"))
    blocks += [_index(analyses), TextTable(("", "value"), (*rows, ("runs recorded", when)), caption="Provenance.")]
    return blocks


def _index(analyses: list[GroupAnalysis]) -> TextTable:
    """One line per group: its best optimizer by test mean is not named; its verdict counts are."""
    rows = []
    for analysis in analyses:
        verdicts = analysis.comparisons["verdict"].value_counts() if len(analysis.comparisons) else {}
        count = ", ".join(f"{verdicts[v]} {v}" for v in ("better", "worse", "tie", "no test") if v in verdicts)
        rows.append((analysis.group.title, str(analysis.group.runs["label"].nunique()), str(len(analysis.group.runs)),
                     analysis.reference or "—", count or "—", str(len(analysis.caveats))))  # fmt: skip
    headers = ("comparison group", "optimizers", "runs", "reference", "verdicts vs reference", "caveats")
    return TextTable(headers, tuple(rows), numeric=frozenset({1, 2, 5}), caption="Comparison groups in this report.")


def _problems(runs: pd.DataFrame) -> list[Block]:
    bad = runs[runs["status"] != "done"].sort_values(["status", "task", "label", "phase", "lr", "seed"])
    if bad.empty:
        return [Heading("Runs that did not finish"), Paragraph(f"All {len(runs)} runs finished.")]
    rows = tuple((r.status, r.task, r.label, r.phase, f"{r.lr:.3g}" if pd.notna(r.lr) else "—", str(r.seed),
                  _short(str(r.reason or "—"))) for r in bad.itertuples())  # fmt: skip
    headers = ("status", "task", "optimizer", "phase", "lr", "seed", "reason")
    return [Heading("Runs that did not finish"), TextTable(headers, rows, numeric=frozenset({4, 5}))]


def _short(text: str, limit: int = 300) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _slugs(titles: Iterable[str]) -> list[str]:
    """HTML-id-safe, distinct slugs of the group titles, in order."""
    slugs: list[str] = []
    for title in titles:
        base = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-") or "group"
        slug, index = base, 2
        while slug in slugs:
            slug, index = f"{base}-{index}", index + 1
        slugs.append(slug)
    return slugs


def _distinct(values: pd.Series, limit: int = 4) -> str:
    seen = [str(v) for v in dict.fromkeys(values.dropna()) if str(v)]
    return ", ".join(seen[:limit]) + (f" (+{len(seen) - limit} more)" if len(seen) > limit else "") or "—"


def _subtitle(runs: pd.DataFrame, analyses: list[GroupAnalysis]) -> str:
    counts = runs["status"].value_counts()
    status = ", ".join(f"{counts[s]} {s}" for s in ("done", "diverged", "error", "interrupted") if s in counts)
    groups = len(analyses)
    return (f"{len(runs)} runs ({status}) · {groups} comparison group{'s' * (groups != 1)} · "
            f"{runs['label'].nunique()} optimizers · generated {render.now()}")  # fmt: skip
