"""The benchmark report: ``<out>/report.md`` with PNGs in ``<out>/figures/``, and
``<out>/report.html``, one self-contained file (images as data URIs, CSS inline).

The report is a list of blocks (headings, paragraphs, tables, figure groups) that two
small renderers turn into Markdown and HTML, so both say the same thing. Every string
that came from the results (task and optimizer names, failure reasons) is escaped for
the format it lands in. Both files are written atomically.

Example:
    >>> build_report(Path("bench-out"))  # doctest: +SKIP
    PosixPath('bench-out/report.html')
"""

from __future__ import annotations

import base64
import datetime as dt
import html
import os
import re
import secrets
import string
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

import gradretention
from gradretention.bench import plots, stats
from gradretention.bench.store import ResultsStore
from gradretention.bench.table import (
    TextTable, higher_is_better, is_percent, metric_label, primary_metrics, problem_runs_table, reported_runs,
    results_table, sensitivity_table, significance_table, time_to_target_table, validation_metric,
)  # fmt: skip

TITLE = "GradRetentionNet benchmark report"
_PROVENANCE = (("package_version", "gradretention"), ("git_commit", "git commit"), ("torch_version", "torch"),
               ("python_version", "Python"), ("device", "device"), ("platform", "platform"))  # fmt: skip


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    kind: str = ""  # a CSS class in HTML: "protocol", "note"


@dataclass(frozen=True)
class Figures:
    """Figures shown side by side: ``(path of the PNG, caption)`` pairs."""

    items: tuple[tuple[Path, str], ...]


Block = Heading | Paragraph | TextTable | Figures


def build_report(out_dir: Path | str, metric: str | None = None, dpi: int = 100) -> Path:
    """Read ``<out_dir>/runs.db`` and write the Markdown and HTML reports beside it.

    Args:
        out_dir: the sweep's output folder.
        metric: judge every task on this metric (``accuracy`` or ``test_accuracy``);
            default: test accuracy where measured, else another ``test_*`` metric.
        dpi: resolution of the PNG figures.

    Returns:
        The path of ``report.html``.

    Raises:
        FileNotFoundError: there is no results store in ``out_dir``.
        ValueError: the store holds no runs, or ``metric`` is not a recorded metric.
    """
    out_dir = Path(out_dir)
    with ResultsStore(out_dir, read_only=True) as store:
        runs = store.runs()
        curves = store.curves(reported_runs(runs)["run_id"])
    return write_report(runs, curves, out_dir, metric, dpi=dpi)


def write_report(
    runs: pd.DataFrame, curves: pd.DataFrame, out_dir: Path, metric: str | None = None, dpi: int = 100
) -> Path:
    """:func:`build_report` on frames shaped like ``ResultsStore.runs()`` / ``.curves()``."""
    if runs.empty:
        raise ValueError(f"no runs recorded in {out_dir}; run `gradretention bench --out {out_dir}` first")
    metrics = primary_metrics(runs, metric)
    folder, colors = Path(out_dir) / "figures", plots.optimizer_colors(runs["optimizer"])
    blocks = [*_overview(runs, metrics), *_profile_blocks(runs, metrics, folder, dpi, colors),
              *_statistics(runs, metrics), *_task_blocks(runs, curves, metrics, folder, dpi, colors),
              *_problems(runs)]  # fmt: skip
    subtitle = _subtitle(runs)
    _write_atomic(Path(out_dir) / "report.md", _markdown(blocks, subtitle, Path(out_dir)))
    html_path = Path(out_dir) / "report.html"
    _write_atomic(html_path, _html(blocks, subtitle))
    return html_path


def _overview(runs: pd.DataFrame, metrics: dict[str, str]) -> list[Block]:
    rows = tuple((label, _distinct(runs[key]) if key in runs.columns else "—") for key, label in _PROVENANCE)
    dates = pd.to_datetime(runs["created_at"], errors="coerce", utc=True).dropna()
    when = f"{dates.min():%Y-%m-%d %H:%M} – {dates.max():%Y-%m-%d %H:%M} UTC" if len(dates) else "—"
    provenance = TextTable(("", "value"), (*rows, ("runs recorded", when)))
    results = results_table(runs, metrics)
    if not results.rows:
        results = Paragraph("No finished evaluation run yet: nothing to summarise (see the runs listed below).", "note")
    return [Heading("Protocol"), Paragraph(protocol_text(runs, metrics), "protocol"), Heading("Provenance"),
            provenance, Heading("Results"), results]  # fmt: skip


def protocol_text(runs: pd.DataFrame, metrics: dict[str, str]) -> str:
    """The tuning protocol in one paragraph, with the grid and seed count actually used."""
    final = runs[runs["phase"] == "final"]
    n_text = _seed_count(final if len(final) else reported_runs(runs))
    tune = runs[(runs["phase"] == "tune") & runs["lr"].notna()]
    if tune.empty:
        return (f"No learning-rate tuning in these results: each optimizer ran at its configured lr on {n_text}; "
                "test numbers are reported.")  # fmt: skip
    grids = tune.groupby(["task", "optimizer"])["lr"].agg(lambda lrs: tuple(sorted(set(lrs))))
    grid = ", ".join(f"{lr:g}" for lr in sorted(set(tune["lr"])))
    same = "the same lr grid" if grids.nunique() == 1 else "the lr grid (not every optimizer ran every value)"
    scored = sorted({validation_metric(runs, m).replace("_", " ") for m in metrics.values()})
    scored = [re.sub(r"^val ", "validation ", name) for name in scored]
    tune_seeds = int(tune.groupby(["task", "optimizer", "lr"])["seed"].nunique().max())
    return (f"Tuning protocol, the same for every optimizer: each optimizer gets {same} ({grid}), scored on "
            f"{' / '.join(scored)} (mean over {_plural(tune_seeds, 'seed')}; an lr with a "
            f"diverged seed ranks last); the best lr is rerun on {n_text}; test numbers are reported. "
            "Splits are fixed per data seed: validation chooses, test reports." + _rerun_check(runs, final, metrics))


def _seed_count(runs: pd.DataFrame) -> str:
    """``3 seeds``, or ``3 seeds (fewer where runs are missing)`` when some pairs have fewer."""
    seeds = runs.groupby(["task", "optimizer"])["seed"].nunique()
    most = int(seeds.max()) if len(seeds) else 0
    return _plural(most, "seed") + (" (fewer where runs are missing)" if len(seeds) and seeds.min() < most else "")


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' * (count != 1)}"


def _rerun_check(runs: pd.DataFrame, final: pd.DataFrame, metrics: dict[str, str]) -> str:
    """A sentence naming any (task, optimizer) whose rerun lr is not the validation-best lr."""
    off = []
    for task, metric in metrics.items():
        score = validation_metric(runs, metric)
        tuned = runs[(runs["task"] == task) & (runs["phase"] == "tune") & (runs["status"] == "done")]
        scored = set(tuned.loc[tuned[score].notna(), "optimizer"])  # all seeds diverged: no best to check
        best = stats.best_lr_per_optimizer(runs[runs["task"] == task], score, higher_is_better(score))
        for (_, optimizer), lr in best.items():
            used = final.loc[(final["task"] == task) & (final["optimizer"] == optimizer), "lr"].dropna()
            if optimizer in scored and len(used) and not (used == lr).all():
                off.append(f"{optimizer} on {task} (rerun at {used.iloc[0]:g}, best {lr:g})")
    return f" Note: the rerun lr differs from the validation-best lr for {'; '.join(off)}." if off else ""


def _statistics(runs: pd.DataFrame, metrics: dict[str, str]) -> list[Block]:
    blocks: list[Block] = [Heading("Significance against the best baseline")]
    compared = significance_table(runs, metrics)
    blocks.append(compared or Paragraph(f"No finished baseline run ({', '.join(stats.BASELINES)}) to compare with."))
    for title, table in (("Time to target", time_to_target_table(runs)),
                         ("Learning-rate sensitivity", sensitivity_table(runs, metrics))):  # fmt: skip
        if table is not None:
            blocks += [Heading(title), table]
    return blocks


def _problems(runs: pd.DataFrame) -> list[Block]:
    table = problem_runs_table(runs)
    if table is None:
        return [Heading("Runs that did not finish"), Paragraph(f"All {len(runs)} runs finished.")]
    return [Heading("Runs that did not finish"), table]


def _profile_blocks(runs: pd.DataFrame, metrics: dict[str, str], folder: Path, dpi: int, colors: dict) -> list[Block]:
    """The performance profile over the tasks judged on the most common metric."""
    if not metrics:
        return []
    metric = max(sorted(set(metrics.values())), key=list(metrics.values()).count)
    if not (is_percent(metric) or not higher_is_better(metric)):
        return []  # the profile's cost is 1 - metric: meaningless for an unbounded score
    tasks = [task for task, chosen in metrics.items() if chosen == metric]
    reported = reported_runs(runs)
    if not reported.loc[reported["task"].isin(tasks) & (reported["status"] == "done"), metric].notna().any():
        return []
    profile = stats.performance_profile(runs[runs["task"].isin(tasks)], metric, higher_is_better(metric))
    error = "the loss itself" if not higher_is_better(metric) else f"1 − {metric.replace('_', ' ')}"
    caption = f"Share of tasks on which an optimizer's mean error ({error}) is within a factor τ of the best one's."
    figures = _saved([(plots.performance_profile_plot(profile, colors), "profile", caption)], folder, dpi)
    return [Heading("Performance profile"), figures] if figures.items else []


def _task_blocks(
    runs: pd.DataFrame, curves: pd.DataFrame, metrics: dict[str, str], folder: Path, dpi: int, colors: dict
) -> list[Block]:
    """One section of figures per task: curves, lr trajectories, box plot, lr sensitivity."""
    blocks: list[Block] = []
    for task, slug in _slugs(runs["task"].unique()).items():
        metric = metrics.get(task)
        drawn = [
            (plots.learning_curves(runs, curves, task, metric.removeprefix("test_") if metric else "accuracy", colors),
             f"curves-{slug}", "Train loss and the validation metric, mean ± std over seeds; diverged runs left out."),
            (plots.lr_trajectories(runs, curves, task, colors), f"lr-{slug}",
             "Learning rate of parameter group 0, mean over seeds (symlog axis once an lr reaches zero or below)."),
        ]  # fmt: skip
        if metric is not None:
            score = validation_metric(runs, metric)
            drawn += [
                (plots.metric_boxplot(runs, task, metric, colors), f"box-{slug}",
                 f"{metric_label(metric)} of every seed (dots) and its spread (boxes)."),
                (plots.sensitivity_curves(runs, task, score, colors), f"sensitivity-{slug}",
                 f"{metric_label(score)} against the initial lr in the tuning runs; "
                 "× marks an lr where every seed diverged."),
            ]  # fmt: skip
        figures = _saved(drawn, folder, dpi)
        if figures.items:
            blocks += [Heading(f"Task {task}"), figures]
    return blocks


def _saved(figures: list, folder: Path, dpi: int) -> Figures:
    return Figures(tuple((plots.save_figure(fig, folder / f"{name}.png", dpi), caption)
                         for fig, name, caption in figures if fig is not None))  # fmt: skip


def _slugs(tasks: Iterable[str]) -> dict[str, str]:
    """File-name-safe, distinct slugs of the task names, in sorted order."""
    slugs: dict[str, str] = {}
    for task in sorted(tasks):
        base = re.sub(r"[^a-z0-9]+", "-", task.lower()).strip("-") or "task"
        slug, index = base, 2
        while slug in slugs.values():
            slug, index = f"{base}-{index}", index + 1
        slugs[task] = slug
    return slugs


def _distinct(values: pd.Series, limit: int = 4) -> str:
    seen = [str(v) for v in dict.fromkeys(values.dropna()) if str(v)]
    return ", ".join(seen[:limit]) + (f" (+{len(seen) - limit} more)" if len(seen) > limit else "") or "—"


def _subtitle(runs: pd.DataFrame) -> str:
    counts = runs["status"].value_counts()
    status = ", ".join(f"{counts[s]} {s}" for s in ("done", "diverged", "error", "interrupted") if s in counts)
    tasks, optimizers = runs["task"].nunique(), runs["optimizer"].nunique()
    return (f"{len(runs)} runs ({status}) · {tasks} task{'s' * (tasks != 1)} · "
            f"{optimizers} optimizer{'s' * (optimizers != 1)} · generated {_now()}")  # fmt: skip


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _markdown(blocks: list[Block], subtitle: str, out_dir: Path) -> str:
    lines = [f"# {TITLE}", "", _md(subtitle), ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [_md(block.text), ""]
        elif isinstance(block, TextTable):
            lines += [*_md_table(block), ""]
        else:
            for path, caption in block.items:
                lines += [f"![{_md(caption)}]({path.relative_to(out_dir).as_posix()})", "", f"*{_md(caption)}*", ""]
    return "\n".join(lines)


def _md_table(table: TextTable) -> list[str]:
    def row(cells: tuple[str, ...], index: int) -> str:
        shown = (f"**{_md(c)}**" if (index, j) in table.bold and c else _md(c) for j, c in enumerate(cells))
        return "| " + " | ".join(shown) + " |"

    align = ("---:" if j in table.numeric else "---" for j in range(len(table.headers)))
    lines = ["| " + " | ".join(_md(h) for h in table.headers) + " |", "| " + " | ".join(align) + " |"]
    lines += [row(cells, i) for i, cells in enumerate(table.rows)]
    return lines + ([f"\n*{_md(table.caption)}*"] if table.caption else [])


def _md(text: str) -> str:
    """Escape Markdown syntax and raw HTML; keep ``_`` inside words (``adam_hd``) readable."""
    text = " ".join(str(text).split())
    text = re.sub(r"([\\`*\[\]|#])", r"\\\1", text)
    text = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _html(blocks: list[Block], subtitle: str) -> str:
    body, nav = [], []
    for block in blocks:
        if isinstance(block, Heading):
            anchor = f"s{len(nav)}"
            nav.append(f'<a href="#{anchor}">{html.escape(block.text)}</a>')
            body.append(f'<h{block.level} id="{anchor}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Paragraph):
            kind = f' class="{block.kind}"' if block.kind else ""
            body.append(f"<p{kind}>{html.escape(block.text)}</p>")
        elif isinstance(block, TextTable):
            body.append(_html_table(block))
        else:
            body.append('<div class="figures">' + "".join(_html_figure(p, c) for p, c in block.items) + "</div>")
    template_file = resources.files("gradretention.bench").joinpath("report_template.html")
    template = string.Template(template_file.read_text("utf-8"))
    return template.substitute(title=html.escape(TITLE), subtitle=html.escape(subtitle), nav="".join(nav),
                               body="\n".join(body), version=html.escape(gradretention.__version__), generated=_now())


def _html_table(table: TextTable) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    rows = []
    for i, cells in enumerate(table.rows):
        tds = []
        for j, cell in enumerate(cells):
            classes = " ".join(c for c in ("num" if j in table.numeric else "", "best" if (i, j) in table.bold else "",
                                           "reason" if table.headers[j] == "reason" else "") if c)  # fmt: skip
            attribute = f' class="{classes}"' if classes else ""
            tds.append(f"<td{attribute}>{html.escape(cell)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    body = "".join(rows)
    return f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _html_figure(path: Path, caption: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    alt = html.escape(caption)
    return f'<figure><img src="data:image/png;base64,{data}" alt="{alt}"><figcaption>{alt}</figcaption></figure>'


def _write_atomic(path: Path, text: str) -> None:
    """Write to a temp file beside ``path`` and rename it over: readers never see half a file."""
    # Not mkstemp: its 0600 mode would make the report unreadable when served or shared.
    temp = path.with_name(f".{path.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp")
    try:
        with open(temp, "x", encoding="utf-8") as stream:
            stream.write(text)
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
