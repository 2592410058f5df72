"""The advantage Q-learning controller (EnhancedSGD's default): hand-computed windows, probes, telemetry, errors."""

from __future__ import annotations

import copy
import math

import pytest
import torch

from gradretention.optim import EnhancedSGD
from gradretention.optim.controllers.qlearning import SCALE_NAMES, QConfig, ScaleController, action_entropy
from gradretention.optim.controllers.qlearning_advantage import (
    AdvantageController,
    advantage_reward,
    advantage_state,
    confident_action,
    improvement_bin,
    standard_error,
)
from tests.optim.conftest import make_regression_problem, regression_loss


def test_the_reward_is_the_advantage_in_units_of_its_spread_and_is_clipped():
    assert advantage_reward(0.03, 0.01, 0.0004) == pytest.approx(0.02 / math.sqrt(0.0004 + 1e-12), rel=1e-15)
    assert advantage_reward(0.01, 0.01, 0.0004) == 0.0  # progress at the usual pace earns nothing
    assert advantage_reward(1.0, 0.0, 0.01) == 3.0 and advantage_reward(-1.0, 0.0, 0.01) == -3.0


def test_the_state_separates_rising_slow_and_fast_falls_and_the_variance_trend():
    assert [improvement_bin(x, 0.02) for x in (-0.01, 0.0, 0.01, 0.02, 0.05)] == [0, 1, 1, 2, 2]
    assert advantage_state(-0.01, 0.02, -0.05) == 0
    assert advantage_state(0.01, 0.02, 0.0) == 4
    assert advantage_state(0.03, 0.02, 0.05) == 8


def test_a_greedy_move_needs_to_beat_hold_by_two_standard_errors():
    assert standard_error(4, 0.1) == 0.5 and standard_error(400, 0.1) == pytest.approx(math.sqrt(0.1 / 1.9))
    assert confident_action([1.0, 0.0, 0.2], [4, 10, 1], 0.1) == 1  # 1 − 2·0.5 = 0 ties hold: hold
    assert confident_action([1.1, 0.0, 0.2], [4, 10, 1], 0.1) == 0  # 1.1 − 1 > 0
    assert confident_action([9.0, 0.0, 9.0], [0, 3, 0], 0.1) == 1  # untried moves are never greedy


def test_three_windows_computed_by_hand():
    controller = AdvantageController(QConfig(q_lr=0.1, discount=0.9, q_interval=2), epsilon=0.0, seed=0)
    for loss in (4.0, 2.0):  # window 1: mean 3; no reward yet; state (ρ = 0 ≥ b = 0: "fast", flat) = 7
        controller.observe(loss, 1.0)
    assert controller.pending["state"] == 7 and controller.pending["actions"] == [1, 1, 1]
    for loss in (2.5, 2.5):  # window 2: ρ = 0.5/3 = 1/6 starts the baseline: b = 1/6, v = 1/36, r = 0
        controller.observe(loss, 1.0)
    assert controller.last_reward == 0.0
    assert controller.baseline == pytest.approx(1 / 6, rel=1e-15)
    assert controller.spread == pytest.approx(0.9 / 36, rel=1e-15)  # v ← 0.9·v + 0.1·0²
    assert controller.tables["lr_scale"][7][1] == 0.0 and controller.visits["lr_scale"][7][1] == 1
    for loss in (2.0, 2.0):  # window 3: ρ = 0.2 > b, σ² rose 10 %: state 2·3 + 2 = 8
        controller.observe(loss, 1.1)
    reward = (0.2 - 1 / 6) / math.sqrt(0.025 + 1e-12)
    assert controller.last_reward == pytest.approx(reward, rel=1e-13)
    # η = max(q_lr, 1/N) = 1/2 on the second visit; max Q(s'=8) = 0
    assert controller.tables["lr_scale"][7][1] == pytest.approx(0.5 * reward, rel=1e-13)
    assert controller.tables["momentum_scale"][7][1] == 0.0  # only lr_scale is learnt
    assert controller.baseline == pytest.approx(0.9 / 6 + 0.1 * 0.2, rel=1e-15)
    assert controller.spread == pytest.approx(0.9 * 0.025 + 0.1 * (1 / 30) ** 2, rel=1e-13)
    assert controller.pending["state"] == 8


def test_exploration_probes_for_one_window_and_greedy_moves_persist():
    controller = AdvantageController(QConfig(nudge=0.1, q_interval=1, epsilon_decay=1.0), epsilon=1.0, seed=3)
    moved = 0
    for step in range(30):
        controller.observe(1.0 / (step + 1), 1.0)
        assert controller.base_scales == {name: 1.0 for name in SCALE_NAMES}  # probes never compound
        assert controller.scales["lr_scale"] == pytest.approx(1 + 0.1 * controller.last_actions["lr_scale"])
        assert controller.scales["momentum_scale"] == controller.scales["grad_scale"] == 1.0  # not learnt
        moved += controller.last_actions["lr_scale"] != 0
    assert moved > 10
    greedy = AdvantageController(QConfig(nudge=0.1, q_interval=1), epsilon=0.0, seed=3)
    for name in SCALE_NAMES:
        greedy.tables[name][7] = [0.0, 0.0, 2.0]
        greedy.visits[name][7] = [0, 5, 4]  # grow beats hold: 2 − 2·(1/√4) > 0
    greedy.observe(1.0, 1.0)
    greedy.observe(1.0, 1.0)  # a flat loss keeps the state at 7 ("fast": ρ = 0 ≥ b = 0)
    assert greedy.base_scales["lr_scale"] == pytest.approx(1.21) and greedy.scales["lr_scale"] == pytest.approx(1.21)
    assert greedy.scales["momentum_scale"] == 1.0


def test_a_spike_of_the_window_mean_halves_the_rate_but_one_noisy_batch_does_not():
    controller = AdvantageController(QConfig(q_interval=5, spike_factor=1.5), epsilon=0.0, seed=0)
    for loss in [1.0] * 5 + [1.0, 1.0, 1.0, 1.0, 3.0]:  # a batch at 3× the mean: window mean 1.4 < 1.5
        controller.observe(loss, 1.0)
    assert controller.scales["lr_scale"] == 1.0
    for _ in range(5):  # a window at 2.0 > 1.5 · mean(1.0, 1.4)
        controller.observe(2.0, 1.0)
    assert controller.scales["lr_scale"] == 0.5 and controller.base_scales["lr_scale"] == 0.5
    controller.observe(float("inf"), 1.0)  # a non-finite loss halves at once and restarts the window
    assert controller.scales["lr_scale"] == 0.25 and controller.window_count == 0


def test_action_entropy_tells_a_stuck_policy_from_a_varied_one():
    assert action_entropy([1, 1, 1, 1]) == 0.0
    assert action_entropy([0, 1, 2]) == pytest.approx(math.log(3), rel=1e-15)
    assert action_entropy([0, 0, 2, 2]) == pytest.approx(math.log(2), rel=1e-15)
    assert action_entropy([]) == 0.0


def test_telemetry_reports_entropy_and_visits_for_both_controllers():
    for reward in ("advantage", "spec"):
        model, inputs, targets = make_regression_problem()
        opt = EnhancedSGD(model.parameters(), lr=0.05, reward=reward, q_interval=2, seed=1)
        for _ in range(40):
            opt.zero_grad()
            loss = regression_loss(model, inputs, targets)
            loss.backward()
            opt.step(loss=loss)
        telemetry = opt.telemetry()
        controller = opt.controller
        assert telemetry["entropy_lr_scale/g0"] == pytest.approx(action_entropy(list(controller.recent["lr_scale"])))
        assert 0 < telemetry["entropy_lr_scale/g0"] <= math.log(3)  # ε = 0.5 at the start: it explores
        visited = [sum(row) for row in controller.visits["lr_scale"] if sum(row)]
        assert telemetry["states_visited/g0"] == len(visited) >= 1
        assert telemetry["state_visits_min/g0"] == min(visited)
        assert telemetry["lr/g0"] == pytest.approx(opt.applied_lrs()[0]) == \
            pytest.approx(0.05 * controller.scales["lr_scale"])


def run(opt: EnhancedSGD, model, inputs, targets, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        opt.step(loss=loss)


def test_the_advantage_controller_continues_bit_for_bit_mid_window_after_a_state_dict():
    settings = {"lr": 0.05, "q_interval": 3, "noise_scale": 1e-3, "epsilon": 0.4, "seed": 5}
    model, inputs, targets = make_regression_problem()
    opt = EnhancedSGD(model.parameters(), **settings)
    run(opt, model, inputs, targets, 8)  # 8 = 2 windows + 2 steps of the third
    twin = copy.deepcopy(model)
    fresh = EnhancedSGD(twin.parameters(), **{**settings, "seed": 0, "q_interval": 7})
    fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert fresh.controller.config.q_interval == 3 and fresh.seed == 5
    run(opt, model, inputs, targets, 7)
    run(fresh, twin, inputs, targets, 7)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert opt.controller.state_dict().keys() == fresh.controller.state_dict().keys()
    assert opt.telemetry() == fresh.telemetry()


def test_a_spec_state_dict_brings_its_controller_kind_along():
    param = torch.nn.Parameter(torch.zeros(2))
    spec = EnhancedSGD([param], reward="spec")
    param.grad = torch.ones(2)
    spec.step(loss=1.0)
    fresh = EnhancedSGD([torch.nn.Parameter(torch.zeros(2))])
    fresh.load_state_dict(copy.deepcopy(spec.state_dict()))
    assert fresh.reward == "spec" and type(fresh.controller) is ScaleController


@pytest.mark.parametrize("kwargs,message", [
    ({"reward": "loss"}, r"Invalid reward value: 'loss' \(valid: 'advantage' or 'spec'\)"),
    ({"q_interval": 0}, r"Invalid q_interval value: 0 \(valid: an integer >= 1\)"),
    ({"q_interval": 2.5}, r"Invalid q_interval value: 2.5 \(valid: an integer >= 1\)"),
])
def test_bad_controller_settings_name_the_value_and_the_choices(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnhancedSGD([torch.nn.Parameter(torch.zeros(2))], **kwargs)
