"""The budget protocol: Sobol trials inside their declared spaces, the same every time, and the pick."""

from __future__ import annotations

import functools
import json
import math

import pandas as pd
import pytest

from gradretention.bench.config import SweepConfig
from gradretention.bench.protocol.budget import SEARCH_SPACES, BudgetTuner, search_space, sobol_trials, trial_of
from gradretention.bench.protocol.plan import make_tuner
from gradretention.bench.store import ResultsStore
from gradretention.bench.sweep import _plan, run_sweep
from gradretention.optim import available_optimizers, create_optimizer


@pytest.mark.parametrize("name", sorted(SEARCH_SPACES))
def test_trials_are_deterministic_and_inside_the_declared_space(name):
    space = search_space(name, 1e-5, 1.0)
    first, again = sobol_trials(space, 16), sobol_trials(space, 16)
    assert first == again and len({tuple(p.items()) for p in first}) == 16
    for point in first:
        for dim in space:
            assert dim.low <= point[dim.name] <= dim.high, (dim, point)
    # Low discrepancy: each half of the lr's log-range holds half of the 16 points.
    assert sum(math.log10(p["lr"]) < -2.5 for p in first) == 8


def test_every_declared_space_names_real_hyperparameters_of_a_registered_optimizer():
    import torch

    for name, dims in SEARCH_SPACES.items():
        if name not in available_optimizers():
            continue
        point = sobol_trials(search_space(name, 1e-5, 1.0), 1)[0]
        create_optimizer(name, [torch.nn.Parameter(torch.zeros(1))], **point)  # an unknown key raises
        assert [d.name for d in dims] == list(point)[1:]


def test_a_hyperparameter_set_in_the_spec_is_not_sampled():
    assert [d.name for d in search_space("adam_hd", 1e-5, 1.0)] == ["lr", "hypergrad_lr"]
    assert [d.name for d in search_space("adam_hd[hypergrad_lr=1e-07]", 1e-5, 1.0)] == ["lr"]


def _tuner(tmp_path, label: str = "adam_hd", trials: int = 4) -> BudgetTuner:
    config = SweepConfig(protocol="budget", trials=trials, tune_seeds=2, seeds=2, max_steps=3, out=str(tmp_path))
    tuner = make_tuner(config, "spiral", label, functools.partial(_plan, config, "spiral"))
    assert isinstance(tuner, BudgetTuner)
    return tuner


def test_the_best_trial_is_the_best_mean_validation_with_failed_seeds_at_chance(tmp_path):
    tuner = _tuner(tmp_path)
    runs = tuner.pending()
    assert len(runs) == 4 * 2 and {r.seed for r in runs} == {0, 1}
    assert sorted(trial_of(r.extra) for r in runs) == [0, 0, 1, 1, 2, 2, 3, 3]
    # Made-up scores: trial 1 has the best single seed but diverged on the other (chance 1/3).
    val = {(0, 0): 0.70, (0, 1): 0.72, (1, 0): 0.95, (1, 1): None, (2, 0): 0.80, (2, 1): 0.78, (3, 0): 0.5, (3, 1): 0.5}
    frame = pd.DataFrame([{"run_id": r.run_id, "status": "done" if val[(trial_of(r.extra), r.seed)] else "diverged",
                           "val_accuracy": val[(trial_of(r.extra), r.seed)], "chance": 1 / 3} for r in runs])  # fmt: skip
    tuner.update(frame)
    selection = tuner.selection()
    assert tuner.done and selection.protocol == "budget" and selection.trials == 4
    assert selection.score == pytest.approx(0.79)  # trial 2; trial 1 scores (0.95 + 1/3) / 2 = 0.64
    assert selection.chosen_spec == tuner.trial_spec(2) and selection.chosen_lr == sobol_trials(tuner.space, 4)[2]["lr"]
    assert selection.chosen_spec.startswith("adam_hd[hypergrad_lr=") and "trial 2" in selection.stop_reason


def test_a_budget_sweep_records_trials_and_reruns_the_best_on_the_final_seeds(tmp_path):
    config = SweepConfig(tasks=("spiral",), optimizers=("momentum", "sgd[lr=0.1]"), protocol="budget", trials=3,
                         tune_seeds=2, seeds=2, max_steps=6, log_every=3, workers=1, out=str(tmp_path))  # fmt: skip
    outcome = run_sweep(config)
    with ResultsStore(tmp_path) as store:
        runs, selections = store.runs(), store.selections().set_index("label")
    tune = runs[runs["phase"] == "tune"]
    assert len(tune) == 3 * 2 and set(tune["label"]) == {"momentum"}  # the fixed lr is not tuned
    trials = tune["config_json"].map(lambda text: trial_of(json.loads(text)["extra"]))
    means = tune.assign(trial=trials).groupby("trial")["val_accuracy"].mean()
    best = int(means[means == means.max()].index.min())
    row = selections.loc["momentum"]
    assert (row["protocol"], row["trials"], row["score"]) == ("budget", 3, pytest.approx(means.max()))
    final = runs[(runs["phase"] == "final") & (runs["label"] == "momentum")]
    assert set(final["optimizer"]) == {row["chosen_spec"]} and sorted(final["seed"]) == [100, 101]
    assert set(tune[trials == best]["optimizer"]) == {row["chosen_spec"]}
    assert selections.loc["sgd[lr=0.1]", "protocol"] == "fixed"
    assert outcome.best_lrs[("spiral", "momentum")] == row["chosen_lr"]


def test_a_learning_rate_free_peer_searches_its_lr_around_1():
    pytest.importorskip("dadaptation", reason="the peers extra is not installed")
    space = search_space("dadapt_adam", 1e-5, 1.0)
    assert [(d.name, d.low, d.high) for d in space] == [("lr", 0.1, 10.0)]
    assert all(0.1 <= p["lr"] <= 10.0 for p in sobol_trials(space, 8))
