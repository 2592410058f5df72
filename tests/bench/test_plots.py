"""Figures: what each plot draws from the tidy frames, and that empty data gives no figure."""

from __future__ import annotations

import math
import os

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from gradretention.bench import plots

OPTIMIZERS = ("adam", "adam_hd", "sgd")


def _runs() -> pd.DataFrame:
    """Two final seeds per optimizer on 'spiral', three tune lrs each; sgd's largest lr diverged."""
    rows = []
    for index, name in enumerate(OPTIMIZERS):
        for seed in (0, 1):
            rows.append(dict(run_id=f"{name}-f{seed}", task="spiral", optimizer=name, lr=0.01, seed=seed,
                             phase="final", status="done", test_accuracy=0.8 + 0.05 * index + 0.01 * seed))
        for lr in (1e-3, 1e-2, 1e-1):
            diverged = name == "sgd" and lr == 1e-1
            rows.append(dict(run_id=f"{name}-t{lr}", task="spiral", optimizer=name, lr=lr, seed=0, phase="tune",
                             status="diverged" if diverged else "done",
                             val_accuracy=math.nan if diverged else 0.7 + lr))
    return pd.DataFrame(rows)


def _curves(runs: pd.DataFrame) -> pd.DataFrame:
    """Train loss every 10 steps, val accuracy per epoch, lr of group 0 (adam_hd's crosses zero)."""
    rows = []
    for run in runs.itertuples():
        shift = 0.1 * run.seed
        for step in range(0, 50, 10):
            rows.append(dict(run_id=run.run_id, step=step, epoch=step / 10, split="train", name="loss",
                             group=None, value=2.0 / (1 + step) + shift))
            lr = 0.01 - 0.0005 * step if run.optimizer == "adam_hd" else 0.01
            rows.append(dict(run_id=run.run_id, step=step, epoch=step / 10, split="opt", name="lr", group=0, value=lr))
            rows.append(dict(run_id=run.run_id, step=step, epoch=step / 10, split="opt", name="lr", group=1, value=5.0))
        for epoch in range(1, 4):
            rows.append(dict(run_id=run.run_id, step=10 * epoch, epoch=epoch, split="val", name="accuracy",
                             group=None, value=0.5 + 0.1 * epoch + shift))
    return pd.DataFrame(rows)


def _line_data(fig: Figure, title_part: str) -> dict[str, np.ndarray]:
    ax = next(ax for ax in fig.axes if title_part in ax.get_title())
    return {line.get_label(): np.asarray(line.get_ydata(), float) for line in ax.get_lines()
            if not line.get_label().startswith("_")}


def test_learning_curves_plot_the_mean_over_seeds_per_optimizer() -> None:
    runs = _runs()
    fig = plots.learning_curves(runs, _curves(runs), "spiral")
    val = _line_data(fig, "validation")
    assert sorted(val) == sorted(OPTIMIZERS)
    # Final seeds 0 and 1 (shifts 0 and 0.1) averaged; the tuning runs at other lrs are not.
    assert val["adam"] == pytest.approx([0.65, 0.75, 0.85])
    assert fig.axes[0].get_yscale() == "log"


def test_learning_curves_leave_out_diverged_runs() -> None:
    runs = _runs()
    curves = _curves(runs)
    runs.loc[runs["run_id"] == "sgd-f1", "status"] = "diverged"
    curves.loc[curves["run_id"] == "sgd-f1", "value"] = 1e30
    fig = plots.learning_curves(runs, curves, "spiral")
    assert max(_line_data(fig, "train loss")["sgd"]) < 10


def test_lr_trajectory_uses_group_zero_on_a_symlog_axis() -> None:
    runs = _runs()
    fig = plots.lr_trajectories(runs, _curves(runs), "spiral")
    ax = fig.axes[0]
    assert ax.get_yscale() == "symlog"
    lines = _line_data(fig, "learning rate")
    assert lines["adam_hd"] == pytest.approx([0.01, 0.005, 0.0, -0.005, -0.01])
    assert lines["sgd"] == pytest.approx([0.01] * 5)  # group 1 (lr 5.0) is not mixed in


def test_positive_lrs_within_a_decade_stay_on_a_linear_axis() -> None:
    runs = _runs()
    runs = runs[runs["optimizer"] != "adam_hd"]  # the others keep lr 0.01 throughout
    fig = plots.lr_trajectories(runs, _curves(runs), "spiral")
    assert fig.axes[0].get_yscale() == "linear"


def test_one_optimizer_keeps_one_colour_across_figures() -> None:
    runs = _runs()
    colors = plots.optimizer_colors(runs["optimizer"])
    assert len(set(colors.values())) == len(OPTIMIZERS)
    assert len(set(plots.optimizer_colors(f"opt{i}" for i in range(20)).values())) == 20
    curves_fig = plots.learning_curves(runs, _curves(runs), "spiral", colors=colors)
    lr_fig = plots.lr_trajectories(runs, _curves(runs), "spiral", colors=colors)
    for fig in (curves_fig, lr_fig):
        for line in fig.axes[-1].get_lines():
            if line.get_label() in colors:
                assert line.get_color() == colors[line.get_label()]


def test_boxplot_has_one_row_per_optimizer_with_every_seed() -> None:
    fig = plots.metric_boxplot(_runs(), "spiral", "test_accuracy")
    ax = fig.axes[0]
    assert [tick.get_text() for tick in ax.get_yticklabels()] == list(OPTIMIZERS)
    seeds = np.concatenate([collection.get_offsets()[:, 0] for collection in ax.collections])
    assert sorted(seeds) == pytest.approx(sorted([0.8, 0.81, 0.85, 0.86, 0.9, 0.91]))


def test_sensitivity_curve_marks_lrs_where_every_seed_diverged() -> None:
    fig = plots.sensitivity_curves(_runs(), "spiral", "val_accuracy")
    ax = fig.axes[0]
    assert ax.get_xscale() == "log"
    sgd = [line for line in ax.get_lines() if line.get_color() == ax.get_lines()[-1].get_color()]
    lost = [line for line in sgd if line.get_marker() == "x"]
    assert np.asarray(lost[0].get_xdata()) == pytest.approx([0.1])


def test_performance_profile_draws_one_step_line_per_optimizer() -> None:
    profile = pd.DataFrame({"optimizer": ["a", "a", "b", "b"], "tau": [1.0, 2.0, 1.0, 2.0],
                            "fraction": [0.5, 1.0, 0.5, 0.5]})
    fig = plots.performance_profile_plot(profile)
    assert sorted(_line_data(fig, "profile")) == ["a", "b"]


def test_empty_data_gives_no_figure() -> None:
    runs = _runs()
    empty_runs, empty_curves = runs.iloc[0:0], _curves(runs).iloc[0:0]
    assert plots.learning_curves(empty_runs, empty_curves, "spiral") is None
    assert plots.learning_curves(runs, _curves(runs), "no-such-task") is None
    assert plots.lr_trajectories(runs, empty_curves, "spiral") is None
    assert plots.metric_boxplot(empty_runs, "spiral", "test_accuracy") is None
    assert plots.metric_boxplot(runs, "spiral", "test_f1") is None  # no such column
    assert plots.sensitivity_curves(runs[runs["phase"] == "final"], "spiral", "val_accuracy") is None
    assert plots.performance_profile_plot(pd.DataFrame(columns=["optimizer", "tau", "fraction"])) is None


def test_save_figure_writes_a_png_and_leaves_no_temp_file(tmp_path) -> None:
    fig = plots.metric_boxplot(_runs(), "spiral", "test_accuracy")
    path = plots.save_figure(fig, tmp_path / "figures" / "box.png", dpi=40)
    assert path == tmp_path / "figures" / "box.png"
    assert Image.open(path).format == "PNG"
    assert [p.name for p in path.parent.iterdir()] == ["box.png"]
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask  # shareable like any file, not mkstemp's 0600
