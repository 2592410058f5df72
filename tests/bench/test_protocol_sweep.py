"""The sweep driving the grid protocol round by round, with a fake executor: no training.

The executor "trains" a run by scoring its lr on a synthetic objective, so that the optimum
can be put anywhere, outside the first grid included.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator, Sequence

import pytest

from gradretention.bench.config import SweepConfig
from gradretention.bench.results import RunConfig, RunResult
from gradretention.bench.store import ResultsStore
from gradretention.bench.sweep import run_sweep


class SyntheticExecutor:
    """Yields a result per config: val_accuracy = objective(lr), or diverged where ``diverges(lr)``."""

    def __init__(self, objective: Callable[[float], float], diverges: Callable[[float], bool]) -> None:
        self.objective, self.diverges = objective, diverges
        self.rounds: list[list[float]] = []

    def submit_all(self, configs: Sequence[RunConfig], data_dir: object) -> Iterator[RunResult]:
        self.rounds.append(sorted({c.lr for c in configs}))
        for config in configs:
            if self.diverges(config.lr):
                yield RunResult(config, "diverged", "loss is nan", final={"chance": 0.1})
            else:
                yield RunResult(config, "done", final={"val_accuracy": self.objective(config.lr), "chance": 0.1})


def peak_at(lr_star: float) -> Callable[[float], float]:
    return lambda lr: 0.9 - 0.1 * abs(math.log10(lr) - math.log10(lr_star))


def sweep(tmp_path, objective, diverges=lambda lr: False, **changes):
    config = SweepConfig(tasks=("spiral",), optimizers=("sgd",), lr_low=1e-3, lr_high=0.1, out=str(tmp_path),
                         **changes)  # fmt: skip
    executor = SyntheticExecutor(objective, diverges)
    outcome = run_sweep(config, executor=executor)
    with ResultsStore(tmp_path) as store:
        return outcome, executor.rounds, store.runs(), store.selections().iloc[0]


def test_an_optimum_above_the_first_grid_is_found_by_extension(tmp_path):
    outcome, rounds, runs, row = sweep(tmp_path, peak_at(0.5))
    assert rounds[0] == [0.001, 0.00316227766017, 0.01, 0.0316227766017, 0.1]
    assert rounds[1:3] == [[0.316227766017], [1.0]]  # the best moved up, then 1.0 was worse: interior
    assert (row["chosen_lr"], row["edge"], row["stop_reason"]) == (0.316227766017, "", "interior")
    assert json.loads(row["grid"])[-1] == 1.0 and len(json.loads(row["grid"])) == 7
    tune, final = runs[runs["phase"] == "tune"], runs[runs["phase"] == "final"]
    assert len(tune) == 7 * 3 and set(tune["seed"]) == {0, 1, 2}
    assert sorted(final["seed"]) == [100, 101, 102, 103, 104] and set(final["lr"]) == {0.316227766017}
    assert outcome.best_lrs[("spiral", "sgd")] == 0.316227766017


def test_the_bound_stops_the_extension_and_the_edge_is_recorded(tmp_path):
    _, rounds, runs, row = sweep(tmp_path, peak_at(100.0))
    assert rounds[1:4] == [[0.316227766017], [1.0], [3.16227766017]]
    assert (row["chosen_lr"], row["edge"], row["stop_reason"]) == (3.16227766017, "high", "bound: 3 extra points")
    assert len(runs[runs["phase"] == "tune"]) == 8 * 3


def test_a_point_where_every_tuning_seed_diverged_stops_the_extension(tmp_path):
    _, _, runs, row = sweep(tmp_path, peak_at(100.0), diverges=lambda lr: lr > 2)
    assert (row["chosen_lr"], row["edge"], row["stop_reason"]) == (1.0, "", "every tuning seed diverged at 3.16228")
    assert row["score"] == pytest.approx(peak_at(100.0)(1.0))
    assert set(runs[runs["lr"] > 2]["status"]) == {"diverged"}


def test_a_seed_that_diverged_counts_at_chance_in_the_score(tmp_path):
    # At 0.1 every seed would win, but seed 1 diverges there: (0.9 + 0.1 + 0.9) / 3 < 0.85 at 0.0316.
    def objective(lr: float) -> float:
        return 0.9 if lr == 0.1 else 0.85 if lr == 0.0316227766017 else 0.5

    executor = SyntheticExecutor(objective, lambda lr: False)
    original = executor.submit_all

    def one_seed_diverges(configs, data_dir):
        for result in original(configs, data_dir):
            if result.config.lr == 0.1 and result.config.seed == 1:
                result = RunResult(result.config, "diverged", "loss is nan", final={"chance": 0.1})
            yield result

    executor.submit_all = one_seed_diverges  # type: ignore[method-assign]
    config = SweepConfig(tasks=("spiral",), optimizers=("sgd",), lr_low=1e-3, lr_high=0.1, out=str(tmp_path))
    outcome = run_sweep(config, executor=executor)
    assert outcome.best_lrs[("spiral", "sgd")] == 0.0316227766017
