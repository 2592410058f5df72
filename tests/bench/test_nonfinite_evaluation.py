"""A NaN or infinite evaluation metric is a failed run (``diverged``, reason named), never ``done`` with NaN."""

from __future__ import annotations

import dataclasses
import math

import pandas as pd
import pytest

from gradretention.bench.analysis.verdicts import FAILED
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import train
from gradretention.tasks.registry import get_task
from tests.reliability.fault_tasks import registered


def poisoned_spiral(split: str, value: float):
    """The spiral task whose ``split`` has ``value`` in its first input."""
    spiral = get_task("spiral")

    def load(seed: int, data_dir=None):
        data = spiral.load(seed, data_dir)
        part = getattr(data, split)
        inputs = part.inputs.clone()
        inputs[0, 0] = value
        return dataclasses.replace(data, **{split: dataclasses.replace(part, inputs=inputs)})

    return dataclasses.replace(spiral, name=f"spiral-{split}-{value}", load=load)


@pytest.mark.parametrize(("split", "value"), [("test", math.nan), ("val", math.nan), ("test", math.inf)])
def test_a_non_finite_evaluation_ends_the_run_as_diverged_with_the_reason(split, value):
    task = poisoned_spiral(split, value)
    with registered(task):
        result = train(RunConfig(task=task.name, optimizer="sgd", epochs=2))
    assert result.status == "diverged" and result.status in FAILED
    assert result.reason.startswith(f"{split} loss is nan at step ")
    assert "non-finite evaluation" in result.reason
    # No split metric is recorded as a result; the curve keeps the point where it broke.
    assert not {"test_loss", "test_accuracy", "val_loss", "val_accuracy", "best_val_loss"} & set(result.final)
    broken = [p for p in result.curves if p.split == split and p.name == "loss"]
    assert math.isnan(broken[-1].value)


def test_a_finite_evaluation_still_finishes():
    result = train(RunConfig(task="spiral", optimizer="sgd", epochs=2))
    assert result.status == "done" and math.isfinite(result.final["test_loss"])


def test_the_analysis_counts_it_as_a_failed_seed(tmp_path):
    from gradretention.bench.store import ResultsStore

    task = poisoned_spiral("test", math.nan)
    with registered(task), ResultsStore(tmp_path) as store:
        store.record(train(RunConfig(task=task.name, optimizer="sgd", epochs=1, seed=100, phase="final")))
        runs = store.runs()
    assert list(runs["status"]) == ["diverged"]
    assert runs["status"].isin(FAILED).all() and pd.isna(runs.get("test_loss", pd.Series([math.nan]))).all()
