"""The terminal table at 80 columns: long specs fold, steps may take two lines, no column is dropped or cropped."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from rich.console import Console

from gradretention.bench import table
from tests.bench.test_table import BASE, _run

SPECS = ("adam_hd_adam[hypergrad_lr=1e-07,lr=0.001]", "sgd_hd[hypergrad_lr=0.0001]",
         "rescaled_sgd[lr=0.0316,retain_min=0.5]", "adam")  # fmt: skip
HEADERS = ("optimizer", "mean ± sd", "done", "lr", "Δ vs ref", "verdict", "steps")


def wide_runs(task: str = "cifar10-resnet18") -> pd.DataFrame:
    """Parametrized specs, sub-1e-3 lrs, five-digit step counts and a diverged optimizer: the widest cells."""
    rows = [_run(spec, seed, value - 0.3 * (index == 2) + 0.001 * seed * index, lr=0.000316 * (index + 1),
                 steps_to_target=12345 + seed, task=task)
            for index, spec in enumerate(SPECS) for seed, value in enumerate(BASE)]  # fmt: skip
    rows += [_run("sgd", seed, math.nan, status="diverged", task=task) for seed in range(5)]
    return pd.DataFrame(rows)


def rendered(runs: pd.DataFrame, width: int) -> tuple[table.Table, list[str]]:
    console = Console(record=True, width=width, color_system=None)
    result = table.summary_table(runs, console=console, wall_seconds=12345.0)
    return result, console.export_text().splitlines()


@pytest.mark.parametrize("width", [80, 90, 100])
@pytest.mark.parametrize("task", ["cifar10-resnet18", "spiral"])
def test_every_column_and_cell_stays_whole(width, task):
    runs = wide_runs(task)
    result, lines = rendered(runs, width)
    assert max(len(line) for line in lines) <= width
    text = "\n".join(lines)
    assert "…" not in text
    header = next(line for line in lines if line.lstrip().startswith("optimizer"))
    assert all(name in header for name in HEADERS), header
    for cells in ("92.60 ± 2.06", "0.000316", "0.00126", "-30.20", "reference", "worse", "0/5"):
        assert cells in text, cells
    # steps: "12347 (5/5)" on one line, or its median above "(5/5)" in the same column.
    assert "12347 (5/5)" in text or any(
        "12347" in line and "(5/5)" in below and line.rindex("12347") + 5 == below.rindex("(5/5)") + 5
        for line, below in zip(lines, lines[1:])
    )
    # The optimizer column folds a spec; read top to bottom it spells the spec whole.
    start, label_width = header.index("optimizer"), result.columns[0].width or len(max(SPECS, key=len))
    column = "".join(line[start : start + label_width].strip() for line in lines[lines.index(header) + 2 :])
    assert all(spec in column for spec in SPECS), column


def test_a_table_that_fits_is_left_as_rich_lays_it_out():
    result, lines = rendered(wide_runs(), 160)
    assert result.columns[0].width is None and result.columns[-1].no_wrap
    assert any(line.lstrip().startswith(SPECS[0]) for line in lines)
