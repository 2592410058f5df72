"""EnhancedSGD and its Q-learning controller: hand-made transitions, clamps, seeds, the momentum-SGD oracle."""

from __future__ import annotations

import copy
import io
import math
import warnings

import pytest
import torch

from gradretention.optim import EnhancedSGD, create_optimizer, kernels
from gradretention.optim.algorithms.enhanced_noise import StepNoise
from gradretention.optim.controllers.variance import gradient_moments, gradient_variance
from gradretention.optim.controllers.qlearning import (
    SCALE_BOUNDS,
    QConfig,
    ScaleController,
    choose_action,
    greedy_action,
    loss_reward,
    state_index,
    td_update,
)
from gradretention.optim.controllers.qlearning_advantage import AdvantageController
from tests.optim.conftest import make_regression_problem, regression_loss


def test_td_update_on_a_hand_made_transition():
    # Q = 0.5, r = 0.2, max Q(s') = 1.0: 0.5 + 0.1·(0.2 + 0.9·1.0 − 0.5) = 0.56
    assert td_update(0.5, 0.2, 1.0, q_lr=0.1, discount=0.9) == pytest.approx(0.56, abs=1e-15)


def test_controller_applies_the_q_update_to_the_pending_transition():
    controller = ScaleController(QConfig(q_lr=0.1, discount=0.9), epsilon=0.0, seed=0)
    controller.loss_ema, controller.variance = 2.0, 1.0
    controller.pending = {"state": 3, "actions": [0, 1, 2], "loss": 2.0}
    controller.tables["lr_scale"][3][0] = 0.4
    controller.tables["lr_scale"][1] = [0.0, 0.6, -0.1]
    controller.observe(1.5, 1.0)
    # EMA 0.9·2 + 0.1·1.5 = 1.95: change −2.5 % → "falling fast" (bin 0); variance flat (bin 1): s' = 0·3 + 1.
    # r = −(1.5 − 2)/2 = 0.25; Q ← 0.4 + 0.1·(0.25 + 0.9·0.6 − 0.4) = 0.439.
    assert controller.last_reward == pytest.approx(0.25, abs=1e-12)  # the 1e-12 in |L_t| + 1e-12
    assert controller.tables["lr_scale"][3][0] == pytest.approx(0.439, abs=1e-13)
    # The other tables saw the same reward on their own actions, with max Q(s') = 0.
    assert controller.tables["momentum_scale"][3][1] == pytest.approx(0.025, abs=1e-13)
    assert controller.tables["grad_scale"][3][2] == pytest.approx(0.025, abs=1e-13)
    assert controller.pending["state"] == 1


def test_state_index_bins_loss_and_variance_trends():
    assert state_index(-0.05, -0.05) == 0
    assert state_index(-0.005, 0.0) == 4
    assert state_index(0.0, 0.0) == 7
    assert state_index(0.01, 0.05) == 11


def test_epsilon_zero_picks_the_argmax_and_ties_hold():
    assert choose_action([0.1, -0.2, 0.7], epsilon=0.0, draw=0.0, random_action=0) == 2
    assert greedy_action([0.0, 0.0, 0.0]) == 1
    assert greedy_action([0.3, 0.1, 0.3]) == 0
    assert choose_action([0.1, -0.2, 0.7], epsilon=1.0, draw=0.999, random_action=0) == 0


def test_epsilon_zero_controller_follows_its_tables():
    controller = ScaleController(QConfig(nudge=0.05), epsilon=0.0, seed=0)
    for name in SCALE_BOUNDS:
        controller.tables[name][7] = [0.0, 0.0, 1.0]  # state 7: flat loss, flat variance → grow
    controller.observe(1.0, 1.0)
    assert controller.scales == {name: pytest.approx(1.05) for name in SCALE_BOUNDS}
    assert controller.last_actions == {name: 1.0 for name in SCALE_BOUNDS}


def test_falling_loss_gives_a_positive_reward():
    assert loss_reward(2.0, 1.5) > 0 > loss_reward(1.5, 2.0)
    controller = ScaleController(QConfig(), epsilon=0.5, seed=0)
    controller.observe(1.0, 1.0)
    controller.observe(0.8, 1.0)
    assert controller.last_reward == pytest.approx(0.2)


def test_scales_stay_inside_their_clamps_over_10000_random_steps():
    controller = ScaleController(QConfig(nudge=0.5, epsilon_decay=1.0), epsilon=1.0, seed=1, bayesian_init_std=5.0)
    generator = torch.Generator().manual_seed(2)
    losses = (torch.rand(10_000, generator=generator, dtype=torch.float64) * 10).tolist()
    variances = (torch.rand(10_000, generator=generator, dtype=torch.float64) * 5).tolist()
    for loss, variance in zip(losses, variances):
        controller.observe(loss, variance)
        for name, (low, high) in SCALE_BOUNDS.items():
            assert low <= controller.scales[name] <= high
    assert controller.scales["lr_scale"] != 1.0


def test_a_loss_spike_halves_lr_scale():
    controller = ScaleController(QConfig(spike_factor=1.5), epsilon=0.0, seed=0)
    for _ in range(5):
        controller.observe(1.0, 1.0)
    assert controller.scales["lr_scale"] == 1.0  # greedy on untrained rows holds
    controller.observe(10.0, 1.0)
    assert controller.scales["lr_scale"] == 0.5
    controller.observe(float("nan"), 1.0)  # a non-finite loss counts as a spike and teaches nothing
    assert controller.scales["lr_scale"] == 0.25 and controller.pending is None
    assert all(math.isfinite(q) for row in controller.tables["lr_scale"] for q in row)


def test_bayesian_init_draws_the_scales_from_the_seed():
    first = ScaleController(QConfig(), epsilon=0.5, seed=4, bayesian_init_std=0.1)
    again = ScaleController(QConfig(), epsilon=0.5, seed=4, bayesian_init_std=0.1)
    assert first.scales == again.scales and first.scales["lr_scale"] != 1.0


def train(opt: EnhancedSGD, model: torch.nn.Module, inputs, targets, steps: int, with_loss: bool = True) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        opt.step(loss=loss) if with_loss else opt.step()


def trajectory(seed: int, steps: int = 15) -> tuple[list[torch.Tensor], dict[str, float]]:
    model, inputs, targets = make_regression_problem()
    opt = EnhancedSGD(model.parameters(), lr=0.05, seed=seed, noise_scale=1e-3, bayesian_init_std=0.05)
    train(opt, model, inputs, targets, steps)
    return [p.detach().clone() for p in model.parameters()], opt.telemetry()


def test_same_seed_same_trajectory_and_different_seeds_differ():
    params, telemetry = trajectory(0)
    again, telemetry_again = trajectory(0)
    other, _ = trajectory(1)
    assert all(torch.equal(a, b) for a, b in zip(params, again)) and telemetry == telemetry_again
    assert not all(torch.equal(a, b) for a, b in zip(params, other))


@pytest.mark.parametrize("fused", [False, None], ids=["reference", "auto"])
def test_without_a_loss_it_warns_once_and_is_momentum_sgd(fused):
    model, inputs, targets = make_regression_problem()
    twin = copy.deepcopy(model)
    ours = EnhancedSGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01, noise_scale=0.0,
                       centering=False, clip_factor=None, fused=fused)
    theirs = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9, weight_decay=0.01)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        train(ours, model, inputs, targets, 25, with_loss=False)
    train(theirs, twin, inputs, targets, 25, with_loss=False)
    assert [str(w.message)[:40] for w in caught] == ["EnhancedSGD.step() got neither a closure"]
    for a, b in zip(model.parameters(), twin.parameters()):
        if fused is False:
            assert torch.equal(a, b)
        else:  # torch's fused SGD kernel may round a tensor's scalar tail differently (FMA)
            torch.testing.assert_close(a, b, rtol=1e-13, atol=1e-15)


def one_step(grad: list[list[float]] | list[float], **kwargs) -> tuple[torch.Tensor, torch.Tensor]:
    param = torch.nn.Parameter(torch.zeros(torch.tensor(grad).shape, dtype=torch.float64))
    opt = EnhancedSGD([param], lr=1.0, momentum=0.0, noise_scale=0.0, epsilon=0.0, **kwargs)  # greedy: scales hold
    param.grad = torch.tensor(grad, dtype=torch.float64)
    opt.step(loss=1.0)
    return param.detach(), param.grad


def test_outliers_are_clipped_at_clip_factor_sigma():
    grad = [0.0] * 9 + [100.0]
    # Var = (9·10² + 90²)/9 = 1000, so 3σ = 3·√1000 ≈ 94.87 caps the outlier.
    theta, _ = one_step(grad, centering=False)
    assert theta.tolist() == pytest.approx([0.0] * 9 + [-3 * math.sqrt(1000.0)], abs=1e-12)


def test_matrices_are_centred_and_grad_is_left_alone():
    grad = [[1.0, 2.0], [3.0, 6.0]]  # mean 3: centred [[-2, -1], [0, 3]], well inside 3σ
    theta, raw = one_step(grad, clip_factor=None, centering=True)
    assert theta.tolist() == [[2.0, 1.0], [0.0, -3.0]]
    assert raw.tolist() == grad
    assert one_step(grad, clip_factor=None)[0].tolist() == [[-1.0, -2.0], [-3.0, -6.0]]  # the default: no centring


def test_enhanced_sgd_spec_is_the_seeds_algorithm_and_enhanced_sgd_the_issue_19_defaults():
    param = torch.nn.Parameter(torch.zeros(3))
    seed_form, default = create_optimizer("enhanced_sgd_spec", [param]), create_optimizer("enhanced_sgd", [param])
    assert (seed_form.reward, seed_form.defaults["centering"]) == ("spec", True)
    assert (default.reward, default.defaults["centering"]) == ("advantage", False)
    assert isinstance(seed_form.controller, ScaleController) and isinstance(default.controller, AdvantageController)
    same = {"lr", "momentum", "variance_smoothing", "clip_factor", "noise_scale", "weight_decay"}
    assert {k: seed_form.defaults[k] for k in same} == {k: default.defaults[k] for k in same}


def test_first_step_scales_hold_and_the_loss_is_returned_from_the_closure():
    model, inputs, targets = make_regression_problem()
    opt = EnhancedSGD(model.parameters(), epsilon=0.0)

    def closure():
        opt.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        return loss

    assert opt.step(closure).ndim == 0
    telemetry = opt.telemetry()
    for key in ("lr", "momentum", "grad_scale", "grad_variance", "epsilon", "action_lr_scale", "reward"):
        assert type(telemetry[f"{key}/g0"]) is float
    assert telemetry["lr/g0"] == 0.01 and telemetry["momentum/g0"] == 0.9
    assert telemetry["epsilon/g0"] == 0.0  # ε decays towards ε_min but never rises: a greedy controller stays greedy


def test_state_dict_survives_a_safe_torch_save_and_continues_bit_for_bit():
    model, inputs, targets = make_regression_problem()
    opt = EnhancedSGD(model.parameters(), lr=0.05, noise_scale=1e-3, bayesian_init_std=0.1, seed=7)
    train(opt, model, inputs, targets, 8)
    buffer = io.BytesIO()
    torch.save(opt.state_dict(), buffer)
    buffer.seek(0)
    twin = copy.deepcopy(model)
    fresh = EnhancedSGD(twin.parameters(), lr=0.05, noise_scale=1e-3, bayesian_init_std=0.1, seed=7)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    train(opt, model, inputs, targets, 8)
    train(fresh, twin, inputs, targets, 8)
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), twin.parameters()))
    assert opt.telemetry() == fresh.telemetry()
    assert opt.controller.tables == fresh.controller.tables and list(opt.controller.history) == \
        list(fresh.controller.history)


ERRORS = [
    ({"epsilon": 1.5}, r"Invalid epsilon value: 1.5 \(valid: in \[0, 1\]\)"),
    ({"clip_factor": 0.0}, r"Invalid clip_factor value: 0.0 \(valid: None \(no clipping\) or > 0\)"),
    ({"seed": -1}, r"Invalid seed value: -1 \(valid: an integer >= 0\)"),
    ({"nudge": 1.0}, r"Invalid nudge value: 1.0"),
    ({"spike_factor": 0.5}, r"Invalid spike_factor value: 0.5 \(valid: >= 1\)"),
]


@pytest.mark.parametrize("kwargs,message", ERRORS, ids=[next(iter(k)) for k, _ in ERRORS])
def test_bad_hyperparameters_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        EnhancedSGD([torch.nn.Parameter(torch.zeros(2))], **kwargs)


def test_controller_hyperparameters_cannot_differ_per_group():
    with pytest.raises(ValueError, match=r"q_lr cannot be set per param group .*per-group keys: .*clip_factor"):
        EnhancedSGD([{"params": [torch.nn.Parameter(torch.zeros(2))], "q_lr": 0.5}])


def test_loading_a_foreign_state_dict_is_a_clear_error():
    param = torch.nn.Parameter(torch.zeros(2))
    with pytest.raises(ValueError, match="no 'controller' entry"):
        EnhancedSGD([param]).load_state_dict(torch.optim.SGD([param], lr=0.1).state_dict())


def test_the_no_loss_warning_points_at_the_callers_line():
    param = torch.nn.Parameter(torch.zeros(2))
    param.grad = torch.ones(2)
    opt = EnhancedSGD([param])
    with pytest.warns(UserWarning, match="neither a closure nor loss") as caught:
        opt.step()
    assert caught[0].filename == __file__


def test_a_scheduler_scales_alpha_through_the_group_lr():
    param = torch.nn.Parameter(torch.zeros(2))
    opt = EnhancedSGD([param], lr=0.1, epsilon=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    for _ in range(2):
        param.grad = torch.tensor([1.0, -1.0])
        opt.step(loss=1.0)
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(0.025)
    assert opt.telemetry()["lr/g0"] == pytest.approx(0.025 * opt.controller.scales["lr_scale"])


# --- The fast path (moments from Σg and Σg², in-place blocks, torch's fused SGD kernel) equals the reference. ---
# Tolerance: float32 params rtol 1e-5 / atol 1e-6 after 15 steps (σ² comes from sums instead of
# Welford's update, so the clip threshold differs in the last bits); float64 rtol 1e-12 / atol 1e-14.

FAST_SETTINGS = [
    {},
    {"noise_scale": 1e-2, "noise_pool": 37},  # a pool shorter than the tensors: the noise wraps inside them
    {"noise_scale": 1e-2, "noise_pool": None, "weight_decay": 0.05},
    {"centering": False, "clip_factor": 0.5},  # clipping bites
    {"momentum": 0.0, "bayesian_init_std": 0.2},  # grad_scale != 1; no momentum
]


def fast_problem(dtype: torch.dtype):
    generator = torch.Generator().manual_seed(5)
    inputs = torch.randn(64, 30, generator=generator, dtype=dtype)
    targets = torch.randn(64, 3, generator=generator, dtype=dtype)
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.Tanh(), torch.nn.Linear(20, 3)).to(dtype)
    return model, inputs, targets


def make_enhanced(model: torch.nn.Module, fused: bool | None, settings: dict) -> EnhancedSGD:
    """Two groups (the second without noise, its own lr), seed 2, some exploration."""
    return EnhancedSGD([{"params": list(model[0].parameters())},
                        {"params": list(model[2].parameters()), "lr": 0.02, "noise_scale": 0.0}],
                       lr=0.05, seed=2, epsilon=0.3, fused=fused, **settings)


def train_with_loss(model: torch.nn.Module, opt: EnhancedSGD, inputs, targets, steps: int) -> None:
    for _ in range(steps):
        opt.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        opt.step(loss=loss)


def run_enhanced(fused: bool | None, settings: dict, dtype: torch.dtype, steps: int = 15) -> tuple:
    model, inputs, targets = fast_problem(dtype)
    opt = make_enhanced(model, fused, settings)
    train_with_loss(model, opt, inputs, targets, steps)
    return [p.detach().clone() for p in model.parameters()], opt


@pytest.mark.parametrize("block", [None, 50], ids=["one-block", "many-blocks"])
@pytest.mark.parametrize("settings", FAST_SETTINGS, ids=lambda s: ",".join(f"{k}={v}" for k, v in s.items()) or "default")
def test_fast_path_equals_reference_in_float32(settings, block, monkeypatch):
    if block is not None:
        monkeypatch.setattr(kernels, "BLOCK", block)
    fast, fast_opt = run_enhanced(None, settings, torch.float32)
    reference, reference_opt = run_enhanced(False, settings, torch.float32)
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    assert fast_opt.controller.scales == pytest.approx(reference_opt.controller.scales, rel=1e-12)
    assert fast_opt.param_groups[0]["grad_variance"] == pytest.approx(reference_opt.param_groups[0]["grad_variance"],
                                                                      rel=1e-5)


@pytest.mark.parametrize("settings", FAST_SETTINGS[:3], ids=["default", "short-pool", "iid-noise-wd"])
def test_fast_path_equals_reference_in_float64(settings, monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK", 64)
    fast, fast_opt = run_enhanced(True, settings, torch.float64)
    reference, reference_opt = run_enhanced(False, settings, torch.float64)
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)
    for param_fast, param_ref in zip(fast_opt.state, reference_opt.state):
        torch.testing.assert_close(fast_opt.state[param_fast]["momentum_buffer"],
                                   reference_opt.state[param_ref]["momentum_buffer"], rtol=1e-12, atol=1e-14)


def test_fast_and_reference_state_dicts_are_interchangeable():
    settings = {"noise_scale": 1e-2}
    model, inputs, targets = fast_problem(torch.float64)
    fast = make_enhanced(model, True, settings)
    train_with_loss(model, fast, inputs, targets, 4)
    twin = copy.deepcopy(model)
    reference = make_enhanced(twin, False, settings)
    state = copy.deepcopy(fast.state_dict())  # load_state_dict would share the buffers
    for group in state["param_groups"]:
        group["fused"] = False
    reference.load_state_dict(state)
    train_with_loss(model, fast, inputs, targets, 3)
    train_with_loss(twin, reference, inputs, targets, 3)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_gradient_moments_equal_the_welford_variance_and_torch_means():
    generator = torch.Generator().manual_seed(0)
    grads = [torch.randn(shape, generator=generator, dtype=torch.float64) * scale + shift
             for shape, scale, shift in [((7, 5), 0.1, 3.0), ((11,), 2.0, -1.0), ((1,), 1.0, 0.5), ((300,), 1e-3, 0.0)]]
    means, variance = gradient_moments(grads)
    assert float(variance) == pytest.approx(float(gradient_variance(grads)), rel=1e-12)
    assert float(variance) == pytest.approx(float(torch.cat([g.view(-1) for g in grads]).var()), rel=1e-12)
    assert means.tolist() == pytest.approx([float(g.mean()) for g in grads], rel=1e-14)
    assert float(gradient_moments([torch.tensor([4.0])])[1]) == 0.0  # one entry has no spread


def test_step_noise_repeats_its_pool_cyclically_across_tensors():
    pool = torch.tensor([0.0, 1.0, 2.0, 3.0, 4.0])
    reference, fast = StepNoise((0, 0, 0), pool), StepNoise((0, 0, 0), pool)
    first = reference.like(torch.empty(3))
    second = reference.like(torch.empty(2, 6))
    assert first.tolist() == [0.0, 1.0, 2.0]
    assert second.view(-1).tolist() == [3.0, 4.0, 0.0, 1.0, 2.0, 3.0, 4.0, 0.0, 1.0, 2.0, 3.0, 4.0]
    assert reference.position == 0  # 15 entries, period 5
    targets = [torch.zeros(3), torch.zeros(12)]
    for target in targets:
        fast.add_to_(target, 2.0)
    assert targets[0].tolist() == (2 * first).tolist() and targets[1].tolist() == (2 * second.view(-1)).tolist()


@pytest.mark.parametrize("pool", [5, None])
def test_noise_pool_sets_the_period_of_the_noise(pool):
    param = torch.nn.Parameter(torch.zeros(12, dtype=torch.float64))
    opt = EnhancedSGD([param], lr=1.0, momentum=0.0, clip_factor=None, centering=False, noise_scale=1.0,
                      epsilon=0.0, noise_pool=pool)
    param.grad = torch.zeros(12, dtype=torch.float64)
    opt.step(loss=1.0)
    noise = (-param.detach()).tolist()  # θ = −α·(0 + 1·z)
    if pool == 5:
        assert noise[:7] == noise[5:12] and len(set(noise[:5])) == 5
    else:
        assert len(set(noise)) == 12


@pytest.mark.parametrize("value", [0, -3, True, 2.5])
def test_bad_noise_pool_is_a_value_error(value):
    with pytest.raises(ValueError, match=rf"Invalid noise_pool value: {value!r} \(valid: None or an integer >= 1\)"):
        EnhancedSGD([torch.nn.Parameter(torch.zeros(2))], noise_pool=value)


def test_fused_true_refuses_a_non_contiguous_param():
    weight = torch.nn.Parameter(torch.randn(4, 3).t())
    weight.grad = torch.ones(3, 4)
    with pytest.raises(RuntimeError, match="fused=True needs dense, contiguous"):
        EnhancedSGD([weight], fused=True).step(loss=1.0)
