"""The same sweep twice on the CPU: bit-identical metrics and curves, for every registry optimizer.

What is and is not deterministic on CUDA is written up in docs/determinism.md.
"""

from __future__ import annotations

import pandas as pd

from gradretention.bench.config import SweepConfig
from gradretention.bench.sweep import run_sweep
from gradretention.optim import available_optimizers

from .sweeps import deterministic_view, eval_metrics


def _sweep(out) -> None:
    # Every registered optimizer (the Q-learning, noise and hypergradient state included), two
    # seeds, its default lr: 2 x 29 short runs.
    config = SweepConfig(tasks=("spiral",), optimizers=tuple(available_optimizers()), seeds=2, lr_factors=(),
                         max_steps=25, log_every=5, workers=1, threads=1, out=str(out))  # fmt: skip
    assert run_sweep(config).trained == 2 * len(available_optimizers())


def test_the_same_sweep_twice_gives_bit_identical_metrics_and_curves(tmp_path):
    _sweep(tmp_path / "first")
    _sweep(tmp_path / "second")
    first_runs, first_curves = deterministic_view(tmp_path / "first")
    second_runs, second_curves = deterministic_view(tmp_path / "second")
    pd.testing.assert_frame_equal(first_runs, second_runs, check_exact=True)
    pd.testing.assert_frame_equal(first_curves, second_curves, check_exact=True)
    assert eval_metrics(tmp_path / "first") == eval_metrics(tmp_path / "second")
    # Not vacuous: the runs differ from one another, and what is compared is substantial.
    assert first_runs["test_loss"].nunique() > len(available_optimizers())
    assert len(first_curves) > 50 * len(first_runs)
