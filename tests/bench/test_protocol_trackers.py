"""α movement and the train-loss target on crafted sequences, and their place in a run's record."""

from __future__ import annotations

import math

import pytest
import torch

from gradretention.bench.results import RunConfig
from gradretention.bench.run.trackers import AlphaTracker, LossTarget
from gradretention.bench.runner import train


def tracked(sequences: list[list[float]], as_tensor: bool = False) -> dict[str, float]:
    """Feed each group's α sequence (first value = α_0) through an AlphaTracker."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in sequences]
    optimizer = torch.optim.SGD([{"params": [p], "lr": seq[0]} for p, seq in zip(params, sequences)])
    if as_tensor:
        for group in optimizer.param_groups:
            group["lr"] = torch.tensor(group["lr"], dtype=torch.float64)
    tracker = AlphaTracker(optimizer)
    for step in range(1, max(len(s) for s in sequences)):
        for group, seq in zip(optimizer.param_groups, sequences):
            value = seq[min(step, len(seq) - 1)]
            group["lr"] = torch.tensor(value, dtype=torch.float64) if as_tensor else value
        tracker.observe()
    return tracker.summary()


@pytest.mark.parametrize("as_tensor", [False, True])
def test_alpha_movement_is_the_largest_relative_change_over_steps_and_groups(as_tensor):
    # group 0: 0.1 -> 0.12 -> 0.09 (|r - 1| at most 0.2); group 1: 1.0 -> 0.5 -> 1.3 (at most 0.5)
    summary = tracked([[0.1, 0.12, 0.09], [1.0, 0.5, 1.3]], as_tensor)
    assert summary["alpha_movement"] == pytest.approx(0.5)
    assert summary["alpha_min_ratio"] == pytest.approx(0.5)
    assert summary["alpha_negative"] == 0.0


@pytest.mark.parametrize("as_tensor", [False, True])
def test_an_alpha_that_crosses_zero_is_flagged_negative_even_if_it_comes_back(as_tensor):
    summary = tracked([[0.01, 0.005, -0.002, 0.01]], as_tensor)
    assert summary["alpha_negative"] == 1.0
    assert summary["alpha_min_ratio"] == pytest.approx(-0.2)
    assert summary["alpha_movement"] == pytest.approx(1.2)


def test_an_alpha_that_never_moves_has_zero_movement_and_a_nan_alpha_counts_as_infinite():
    assert tracked([[0.001, 0.001, 0.001]]) == {"alpha_movement": 0.0, "alpha_min_ratio": 1.0, "alpha_negative": 0.0}
    assert tracked([[0.001, math.nan, 0.001]])["alpha_movement"] == math.inf
    assert tracked([[0.001, math.nan, 0.001]], as_tensor=True)["alpha_movement"] == math.inf


def test_loss_target_is_the_first_step_of_the_debiased_average_at_or_below_it():
    target = LossTarget(1.0, beta=0.5)
    # By hand, beta = 0.5: m_1 = 1.5 -> 1.5 / 0.5 = 3.0; m_2 = 1.25 -> 1.25 / 0.75 = 1.67.
    target.feed(0, [3.0, 1.0], seconds_now=2.0)
    assert target.step is None
    target.feed(2, [0.0, 0.0], seconds_now=6.0)
    # m_3 = 0.625 -> 0.625 / 0.875 = 0.714 <= 1: step 3, halfway through the window's 2 .. 6 seconds.
    assert target.step == 3 and target.seconds == pytest.approx(2.0 + (6.0 - 2.0) * 1 / 2)
    assert target.summary() == {"train_loss_target": 1.0, "train_steps_to_target": 3.0, "train_seconds_to_target": 4.0}
    missed = LossTarget(0.1)
    missed.feed(0, [1.0, math.nan, 0.5], 1.0)
    assert missed.summary() == {"train_loss_target": 0.1}


def test_every_run_records_alpha_targets_and_chance():
    plain = train(RunConfig(task="spiral", optimizer="sgd", lr=0.1, epochs=2))
    moving = train(RunConfig(task="spiral", optimizer="sgd_hd[hypergrad_lr=0.01]", lr=0.1, epochs=2))
    assert plain.final["alpha_movement"] == 0.0 and plain.final["alpha_negative"] == 0.0
    assert moving.final["alpha_movement"] > 0.0
    lrs = [p.value for p in moving.curves if p.split == "opt" and p.name == "lr"]
    # The tracker reads every step, the curve only at log steps: it sees at least as much movement.
    assert moving.final["alpha_movement"] >= max(abs(v / 0.1 - 1) for v in lrs) - 1e-12
    assert plain.final["chance"] == pytest.approx(1 / 3) and plain.final["val_target"] == 0.9
    assert plain.final["train_loss_target"] == pytest.approx(0.3 * math.log(3))
    from gradretention.tasks.registry import get_task

    assert plain.final["n_test"] == len(get_task("spiral").load(0, None).test)  # recorded, not inferred
    diverged = train(RunConfig(task="spiral", optimizer="sgd", lr=1e6, epochs=2))
    assert diverged.status == "diverged" and diverged.final["chance"] == pytest.approx(1 / 3)


def test_alpha_tracker_reads_enhanced_sgds_applied_lr_not_its_untouched_group_lr():
    from gradretention.optim import EnhancedSGD  # noqa: PLC0415

    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = EnhancedSGD([param], lr=0.1, reward="spec", epsilon=0.0, noise_scale=0.0)
    tracker = AlphaTracker(optimizer)
    param.grad = torch.ones(2)
    optimizer.step(loss=1.0)
    optimizer.step(loss=10.0)  # a spike halves lr_scale: α = 0.05 while group["lr"] stays 0.1
    tracker.observe()
    assert optimizer.param_groups[0]["lr"] == 0.1
    assert tracker.summary()["alpha_movement"] == pytest.approx(0.5)
    assert tracker.summary()["alpha_min_ratio"] == pytest.approx(0.5)
