"""The terminal summary of a sweep: one rich table, following the report's rules.

One section per comparison group (never pooled across setups); per optimizer the test
mean ± sd with its success rate ("4/5" finished of planned, failed seeds at chance),
the paired difference to the group's reference baseline and the verdict. Colour and
bold mark only a significant verdict (green better, red worse); a tie is plain. The
numbers are the report's (:func:`gradretention.bench.analysis.analyse.analyse_runs`).

Example:
    >>> from rich.console import Console
    >>> summary_table(store.runs(), console=Console(), wall_seconds=252.0)  # doctest: +SKIP
"""

from __future__ import annotations

import textwrap

import pandas as pd
from rich import box
from rich.cells import cell_len
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from gradretention.bench.analysis.analyse import GroupAnalysis, analyse_runs
from gradretention.bench.analysis.facts import is_accuracy
from gradretention.bench.analysis.setups import with_labels
from gradretention.bench.reporting import cells
from gradretention.bench.store import CURVE_COLUMNS

_TONES = {"better": "bold green", "worse": "bold red"}


def summary_table(
    runs: pd.DataFrame, console: Console | None = None, wall_seconds: float | None = None, metric: str | None = None,
) -> Table:  # fmt: skip
    """A rich table per comparison group × optimizer: test mean ± sd, done (finished/planned), lr,
    Δ vs the reference baseline and the verdict, median steps to the validation target.

    Args:
        runs: ``ResultsStore.runs()``.
        console: printed there when given.
        wall_seconds: the sweep's wall time, shown in the caption.
        metric: force one metric for every task (see :func:`~gradretention.bench.analysis.facts.primary_metrics`).
    """
    analyses = analyse_runs(with_labels(runs), pd.DataFrame(columns=list(CURVE_COLUMNS)), None, metric)
    metrics = {a.metric for a in analyses}
    single = cells.metric_label(next(iter(metrics))) if len(metrics) == 1 else None
    # No task column: a group's title heads its rows, which keeps the table within 80 columns.
    table = Table(title="GradRetentionNet benchmark" + (f": {single}" if single else ""), header_style="bold",
                  box=box.SIMPLE_HEAD, pad_edge=False)  # fmt: skip
    widest = max((len(a.group.title) for a in analyses), default=10)
    table.add_column("optimizer", overflow="fold", min_width=min(widest, 22))  # _fit narrows it where needed
    table.add_column("mean ± sd", justify="right", no_wrap=True)
    for header in ("done", "lr", "Δ vs ref", "verdict", "steps"):
        table.add_column(header, justify="right", no_wrap=True)
    for index, analysis in enumerate(analyses):
        if index:
            table.add_section()
        title = analysis.group.title + ("" if single else f" ({cells.metric_label(analysis.metric)})")
        table.add_row(Text(title, style="bold"))
        for row in _rows(analysis):
            table.add_row(*row)
    table.caption = _caption(wall_seconds, all(is_accuracy(a.metric) for a in analyses))
    if console is not None:
        _fit(table, console, console.width)
        console.print(table)
    return table


_LABEL_MIN = 10  # the optimizer column folds long specs, but keeps this many characters per line


def _fit(table: Table, console: Console, width: int) -> None:
    """Narrow ``table`` to ``width`` columns by folding the optimizer column, then by putting
    ``steps``' "(reached/n)" under its median; never by dropping or cropping a column.

    Left to itself rich shrinks every wrappable column at once and crops the others with
    "…": at 80 columns with parametrized specs it squeezed ``steps`` to nothing.
    """
    natural = [max(cell_len(str(cell)) for cell in (column.header, *column.cells)) for column in table.columns]
    overhead = Measurement.get(console, console.options.update_width(10**4), table).maximum - sum(natural)
    room = width - overhead - sum(natural[1:])  # what the optimizer column may take
    if room >= natural[0]:
        return
    steps = table.columns[-1]
    if room < _LABEL_MIN:  # "12345 (5/5)" on two lines: the median, then (reached/n)
        words = max(cell_len(word) for cell in (steps.header, *steps.cells) for word in str(cell).split())
        room += natural[-1] - words
        steps.width, steps.no_wrap = words, False
    table.columns[0].width = max(room, _LABEL_MIN)


def _rows(analysis: GroupAnalysis) -> list[list[str | Text]]:
    compared = analysis.comparisons.set_index("label") if len(analysis.comparisons) else pd.DataFrame()
    steps = analysis.targets[analysis.targets["kind"] == "validation"].set_index("label")
    out = []
    for row in analysis.summary.sort_values("label").itertuples():
        verdict, diff = ("reference", "") if row.label == analysis.reference else ("—", "")
        if row.label in compared.index:
            c = compared.loc[row.label]
            verdict, diff = c["verdict"], cells.format_diff(analysis.metric, c["diff"])
        style = _TONES.get(verdict)
        mean = cells.mean_sd(analysis.metric, row.mean, row.sd)
        # Text, not str: a spec such as "adam_hd[hypergrad_lr=1e-07]" is not rich markup.
        out.append([Text(row.label, style=style or ""), mean,
                    f"{row.finished}/{row.planned}", cells.lr(row.lr), Text(diff, style=style or ""),
                    Text(verdict, style=style or ""), _steps(steps, row.label)])  # fmt: skip
    return out


def _steps(steps: pd.DataFrame, label: str) -> str:
    if label not in steps.index:
        return "—"
    row = steps.loc[label]
    median = f"{row['median_steps']:.0f}" if pd.notna(row["median_steps"]) else "—"
    return f"{median} ({row['reached']}/{row['n']})"


def _caption(wall_seconds: float | None, accuracies: bool) -> str:
    text = ("done: finished/planned seeds (failed count at chance); Δ: paired vs the reference baseline "
            "(best validation); colour only for significant verdicts; steps: median to the validation target "
            "(reached/n)")  # fmt: skip
    if not accuracies:
        text += "; a metric that is not an accuracy has no test-set noise term in its verdict"
    if wall_seconds is not None:
        text += f"; total wall time {cells.duration(wall_seconds)}"
    # Wrapped here: rich's own caption wrap crops a character at the edge of an 80-column table.
    return textwrap.fill(text, 70)
