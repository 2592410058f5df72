"""The real-data suites: the hypergradient paper's protocol and the retention claim, full and quick."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gradretention.bench.config import SweepConfig
from gradretention.bench.store import ResultsStore
from gradretention.bench.suites import suite_configs, suite_sweeps
from gradretention.cli import main
from gradretention.optim import create_optimizer
from gradretention.tasks.presets import HALF_DECADES, hd_paper_specs

from .readers.realformats import write_mnist

PAPER_SIX = ("sgd", "nesterov", "adam", "sgd_hd", "sgdn_hd", "adam_hd")
VARIANTS = ("sgd_hd_sgdn", "sgd_hd_adam", "sgdn_hd_sgdn", "sgdn_hd_adam", "adam_hd_sgdn", "adam_hd_adam")


def _groups(spec: str) -> dict:
    import torch

    group = create_optimizer(spec, [torch.nn.Parameter(torch.zeros(1))]).param_groups[0]
    # α may be a 0-dim tensor (no host sync in step()); compare its value.
    return {key: float(value) if isinstance(value, torch.Tensor) else value for key, value in group.items()}


def test_hd_paper_specs_carry_the_papers_alpha_beta_and_decay():
    specs = hd_paper_specs()
    assert sorted(s.split("[")[0] for s in specs) == sorted(PAPER_SIX + VARIANTS)
    for spec in specs:
        group = _groups(spec)
        assert group["lr"] == 1e-3 and group["weight_decay"] == 1e-4, spec
        name = spec.split("[")[0]
        if "_hd" in name:  # β of the base: 1e-3 for SGD / SGDN, 1e-7 for Adam (train.py's run.sh)
            assert group["hypergrad_lr"] == (1e-7 if name.startswith("adam") else 1e-3), spec
        if name.startswith(("sgdn", "nesterov")):
            assert group["momentum"] == 0.9 and group["nesterov"], spec


def test_hd_paper_fmnist_runs_the_papers_epochs_and_the_alpha_grid():
    configs = suite_configs("hd-paper-fmnist")
    main_runs = [c for c in configs if _groups(c.optimizer)["lr"] == 1e-3]
    assert {(c.task, c.epochs, c.batch_size) for c in main_runs} == {("fmnist-logreg", 10, 128), ("fmnist-mlp", 100, 128)}
    # Two models x twelve optimizers x three seeds; logreg's α₀ = 1e-3 grid point is the same runs.
    assert len({c.run_id for c in main_runs}) == 2 * 12 * 3
    sensitivity = {_groups(c.optimizer)["lr"] for c in configs if c.task == "fmnist-logreg"}
    assert sensitivity == set(HALF_DECADES)
    quick = suite_configs("hd-paper-fmnist", quick=True)
    assert {(c.epochs, c.seed) for c in quick if c.task == "fmnist-mlp"} == {(3, 0)}
    assert {c.seed for c in quick if c.task == "fmnist-logreg" and c.epochs == 10} == {0, 1, 2}
    assert {c.optimizer for c in quick} == {c.optimizer for c in configs}  # the same shape, shorter


def test_retention_claim_holds_the_seeds_setting_and_a_fair_sweep(tmp_path):
    rows = suite_configs("retention-claim")
    assert {(c.optimizer, c.epochs, c.batch_size) for c in rows} == {
        ("sgd[lr=0.0001]", 10, 64), ("rescaled_sgd[base_lr=1e-05,decay=0.9,lr=0.001]", 10, 64)}
    assert sorted({c.seed for c in rows}) == [0, 1, 2, 3, 4]
    base = SweepConfig(out=str(tmp_path / "rc"), workers=1, device="cpu")
    (fair,) = suite_sweeps("retention-claim", base)
    assert fair.out == str(tmp_path / "rc" / "fair") and fair.workers == 1
    assert fair.tasks == ("fmnist-mlp",) and fair.optimizers == ("sgd", "rescaled_sgd")
    # One shared absolute half-decade grid from 1e-4 to 1e-1, extendable at its edges.
    assert (fair.protocol, fair.lr_low, fair.lr_high, fair.lrs, fair.lr_factors) == ("grid", 1e-4, 1e-1, (), None)
    assert fair.extend == 3 and fair.tune_seeds == 3 and fair.seeds == 5
    (quick,) = suite_sweeps("retention-claim", base, quick=True, seeds=2, epochs=1)
    assert (quick.seeds, quick.epochs) == (2, 1)
    assert suite_sweeps("adagrad-lecture", base) == []


def test_quick_without_a_suite_is_refused(capsys):
    assert main(["bench", "--quick", "--tasks", "spiral"]) == 2
    assert "--quick selects a suite's quick form" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["hd-paper-fmnist", "retention-claim"])
def test_a_missing_dataset_stops_the_suite_before_training(tmp_path: Path, name, capsys):
    code = main(["bench", "--suite", name, "--quick", "--epochs", "1", "--seeds", "1",
                 "--data-dir", str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--workers", "1"])  # fmt: skip
    assert code != 0
    assert "sudo apt-get install dataset-fashion-mnist" in capsys.readouterr().err


def test_lr_free_suite_puts_the_peers_beside_ours_under_the_grid_protocol(tmp_path):
    from gradretention.bench.config import SweepConfig
    from gradretention.tasks.presets import LR_FREE_OPTIMIZERS

    base = SweepConfig(out=str(tmp_path))
    assert suite_configs("lr-free") == []
    (full,) = suite_sweeps("lr-free", base)
    assert full.protocol == "grid" and full.optimizers == LR_FREE_OPTIMIZERS
    assert {"prodigy", "schedulefree_adamw", "adam_hd", "sgdn_hd", "adam_var"} <= set(full.optimizers)
    assert len(full.tasks) == 6 and full.epochs is None and full.batch_size is None
    assert (full.tune_seeds, full.seeds, full.lr_low, full.lr_high) == (3, 5, 1e-5, 1.0)
    assert full.out == str(tmp_path / "lr-free")
    (quick,) = suite_sweeps("lr-free", base, quick=True)
    assert quick.tasks == ("digits-mlp", "mnist1d-mlp") and quick.seeds == 3


@pytest.mark.slow
def test_retention_claim_runs_its_rows_then_its_fair_sweep_on_tiny_files(tmp_path, capsys):
    write_mnist(tmp_path / "data" / "fashion-mnist", np.random.default_rng(1), {"train": 24, "test": 6}, gz=True)
    out = tmp_path / "out"
    assert main(["bench", "--suite", "retention-claim", "--quick", "--epochs", "1", "--seeds", "1", "--workers", "1",
                 "--data-dir", str(tmp_path / "data"), "--out", str(out)]) == 0  # fmt: skip
    with ResultsStore(out, read_only=True) as store:
        rows = store.runs()
    assert sorted(rows["optimizer"]) == sorted(["sgd[lr=0.0001]", "rescaled_sgd[base_lr=1e-05,decay=0.9,lr=0.001]"])
    with ResultsStore(out / "fair", read_only=True) as store:
        fair = store.runs()
    tune, final = fair[fair["phase"] == "tune"], fair[fair["phase"] == "final"]
    assert set(tune["optimizer"]) == set(final["optimizer"]) == {"sgd", "rescaled_sgd"}
    assert {1e-4, 1e-3, 1e-2, 1e-1} <= set(tune["lr"].round(6)) and set(tune["seed"]) == {0}
    assert len(final) == 2 and not set(final["seed"]) & set(tune["seed"])  # fresh seeds report
    assert "Report: " in capsys.readouterr().out
