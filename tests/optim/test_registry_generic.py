"""Generic tests over the whole registry table: every optimizer, the same behaviours."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch

from gradretention.optim import available_optimizers, create_optimizer, optimizer_info
from tests.optim.conftest import make_regression_problem, regression_loss

NAMES = available_optimizers()
OURS = [n for n in NAMES if optimizer_info(n)["family"] != "baseline"]
ADAPTIVE = [n for n in NAMES if optimizer_info(n)["capabilities"].device_lr]  # a controller adapts α
HYPERGRADIENT = [n for n in NAMES if "multiplicative" in optimizer_info(n)["defaults"]]  # the additive HD laws


def quiet_step(opt, loss=None):
    # EnhancedSGD warns once without a loss; these generic tests pass the loss where they can.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return opt.step(loss=loss) if loss is not None and _accepts_loss(opt) else opt.step()


def _accepts_loss(opt) -> bool:
    import inspect
    return "loss" in inspect.signature(opt.step).parameters


def rosenbrock(xy: torch.Tensor) -> torch.Tensor:
    x, y = xy[0], xy[1]
    return (1 - x) ** 2 + 100 * (y - x**2) ** 2


def rosenbrock_settings(name: str) -> dict:
    """Rosenbrock's gradients reach 1e3: SGD-like rules need a small α, and HD on them a small β."""
    sgd_like = name.startswith(("sgd", "momentum", "nesterov", "enhanced", "rescaled"))
    settings = {"lr": 1e-3 if sgd_like else 1e-2}
    if name.startswith(("sgd_hd", "sgdn_hd")) and not name.endswith("_adam"):
        settings["hypergrad_lr"] = 1e-12
    return settings


@pytest.mark.parametrize("name", NAMES)
def test_loss_falls_on_rosenbrock(name):
    xy = torch.tensor([-1.5, 2.0], dtype=torch.float64, requires_grad=True)
    opt = create_optimizer(name, [xy], **rosenbrock_settings(name))
    start = float(rosenbrock(xy.detach()))
    for _ in range(300):
        opt.zero_grad()
        loss = rosenbrock(xy)
        loss.backward()
        quiet_step(opt, loss)
    assert torch.isfinite(xy).all()
    assert float(rosenbrock(xy)) < 0.5 * start


def logistic_regression_losses(name: str, steps: int = 200) -> tuple[float, float]:
    generator = torch.Generator().manual_seed(0)
    inputs = torch.randn(256, 10, generator=generator)
    labels = (inputs @ torch.randn(10, generator=generator) > 0).long()
    torch.manual_seed(0)
    model = torch.nn.Linear(10, 2)
    # One α for all, so the check compares optimizers rather than their default α.
    opt = create_optimizer(name, model.parameters(), lr=1e-2)
    start = float(torch.nn.functional.cross_entropy(model(inputs), labels))
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(model(inputs), labels)
        loss.backward()
        quiet_step(opt, loss)
    return start, float(torch.nn.functional.cross_entropy(model(inputs), labels))


@pytest.mark.parametrize("name", NAMES)
def test_logistic_regression_converges_with_registry_defaults(name):
    start, final = logistic_regression_losses(name)
    assert final < 0.6 * start


def train_steps(model, opt, inputs, targets, steps):
    for _ in range(steps):
        opt.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        quiet_step(opt, loss)


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_bit_for_bit(name):
    model, inputs, targets = make_regression_problem(torch.float32)
    opt = create_optimizer(name, model.parameters())
    train_steps(model, opt, inputs, targets, 5)
    twin = copy.deepcopy(model)
    fresh = create_optimizer(name, twin.parameters())
    fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    train_steps(model, opt, inputs, targets, 5)
    train_steps(twin, fresh, inputs, targets, 5)
    for a, b in zip(model.parameters(), twin.parameters()):
        assert torch.equal(a, b)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in fresh.param_groups]


@pytest.mark.parametrize("name", NAMES)
def test_params_without_grad_are_untouched(name):
    model, inputs, targets = make_regression_problem()
    frozen = torch.nn.Parameter(torch.ones(3, dtype=torch.float64))
    opt = create_optimizer(name, list(model.parameters()) + [frozen])
    train_steps(model, opt, inputs, targets, 3)
    assert torch.equal(frozen, torch.ones(3, dtype=torch.float64))
    if not isinstance(opt, torch.optim.Adagrad):  # torch's Adagrad fills its state at construction
        assert frozen not in opt.state or not opt.state[frozen]


@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_the_loss(name):
    model, inputs, targets = make_regression_problem()
    opt = create_optimizer(name, model.parameters())

    def closure():
        opt.zero_grad()
        loss = regression_loss(model, inputs, targets)
        loss.backward()
        return loss

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        returned = opt.step(closure)
    assert isinstance(returned, torch.Tensor) and returned.ndim == 0


@pytest.mark.parametrize("name", ADAPTIVE)
def test_two_param_groups_keep_separate_lrs_and_controller_state(name):
    model, inputs, targets = make_regression_problem()
    first, second = model[0], model[2]
    opt = create_optimizer(name, [{"params": first.parameters(), "lr": 1e-3},
                                  {"params": second.parameters(), "lr": 1e-2}])
    train_steps(model, opt, inputs, targets, 6)
    lrs = [group["lr"] for group in opt.param_groups]
    assert lrs[0] != lrs[1]
    assert lrs[0] != 1e-3 or lrs[1] != 1e-2  # the controller moved at least one α


@pytest.mark.parametrize("name", HYPERGRADIENT)
def test_lr_scheduler_scales_the_controlled_lr(name):
    model, inputs, targets = make_regression_problem()
    opt = create_optimizer(name, model.parameters(), hypergrad_lr=0.0)
    scheduler = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    start = float(opt.param_groups[0]["lr"])  # α may be a device scalar that the scheduler fills in place
    for _ in range(3):
        train_steps(model, opt, inputs, targets, 1)
        scheduler.step()
    assert opt.param_groups[0]["lr"] == pytest.approx(start * 0.125)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
@pytest.mark.parametrize("name", OURS)
def test_float_dtypes_step_and_stay_finite(name, dtype):
    model, inputs, targets = make_regression_problem(dtype)
    opt = create_optimizer(name, model.parameters())
    train_steps(model, opt, inputs, targets, 3)
    for param in model.parameters():
        assert param.dtype == dtype and torch.isfinite(param.float()).all()
    # α is a Python float, or (adapted on the device, no host sync per step) a float64 0-dim tensor.
    assert all(isinstance(group["lr"], float) or (group["lr"].ndim == 0 and group["lr"].dtype == torch.float64)
               for group in opt.param_groups)


@pytest.mark.parametrize("name", OURS)
def test_sparse_gradients_are_rejected_with_a_clear_error(name):
    embedding = torch.nn.Embedding(10, 3, sparse=True)
    opt = create_optimizer(name, embedding.parameters())
    embedding(torch.tensor([1, 2])).sum().backward()
    with pytest.raises(RuntimeError, match="sparse"):
        quiet_step(opt)


@pytest.mark.parametrize("name", OURS)
def test_telemetry_is_plain_floats_per_group(name):
    model, inputs, targets = make_regression_problem()
    opt = create_optimizer(name, model.parameters())
    train_steps(model, opt, inputs, targets, 2)
    telemetry = opt.telemetry()
    assert telemetry and all(type(value) is float for value in telemetry.values())
    assert any(key.endswith("/g0") for key in telemetry)
