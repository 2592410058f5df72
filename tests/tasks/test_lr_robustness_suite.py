"""The lr-robustness suite (issue 19): its sweep reproduces the README's sensitivity table."""

from __future__ import annotations

from gradretention.bench.config import SweepConfig
from gradretention.bench.suites import suite_configs, suite_sweeps
from gradretention.optim.registry import get_entry
from gradretention.tasks.presets import LR_ROBUSTNESS_OPTIMIZERS


def test_lr_robustness_suite_runs_the_new_controllers_beside_hd_baselines_and_peers(tmp_path):
    base = SweepConfig(out=str(tmp_path))
    assert suite_configs("lr-robustness") == []
    (full,) = suite_sweeps("lr-robustness", base)
    assert full.protocol == "grid" and full.optimizers == LR_ROBUSTNESS_OPTIMIZERS
    assert {"sgdn_lrprop", "adam_lrprop", "adam_zprop", "adam_rmshd", "adam_stackhd", "sgdn_hdm", "adam_hdm", "sgdn_loghd", "adam_loghd", "sgdn_hd", "adam_hd",
            "adam", "nesterov", "prodigy", "schedulefree_adamw"} == set(full.optimizers)
    assert all(get_entry(name) for name in full.optimizers)  # every name resolves (peers included)
    assert full.tasks == ("spiral", "digits-logreg", "digits-mlp", "digits-cnn", "mnist1d-mlp", "mnist1d-cnn")
    assert (full.tune_seeds, full.seeds, full.lr_low, full.lr_high, full.extend) == (3, 5, 1e-5, 1.0, 3)
    assert full.out == str(tmp_path / "embedded")
    (quick,) = suite_sweeps("lr-robustness", base, quick=True)
    assert quick.tasks == ("digits-mlp", "mnist1d-mlp") and (quick.tune_seeds, quick.seeds) == (2, 3)
