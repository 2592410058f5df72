"""EnhancedSGD's C++ update pass: the float64 oracle's stream, float32 polynomials to rounding, the reference's update."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch

from gradretention.optim import EnhancedSGD, kernels, native
from gradretention.optim.algorithms.enhanced_noise import PAIR_SPAN, normals_range, step_keys

pytestmark = pytest.mark.skipif(native.load() is None, reason="the C++ extension does not build here")

NO_PREPROCESSING = {"alpha": 1.0, "momentum": 0.0, "clip": float("inf"), "grad_scale": 1.0, "weight_decay": 0.0}


def native_noise(sizes: list[int], start: int, keys: tuple[int, int, int], dtype: torch.dtype,
                 noise_scale: float = 1.0) -> torch.Tensor:
    """``noise_scale·z`` over entries start … start + Σsizes − 1, read back from θ = 0 − 1·(0·b + 0 + noise)."""
    params = [torch.zeros(size, dtype=dtype) for size in sizes]
    starts = list(np.cumsum([start, *sizes[:-1]]))
    done = native.enhanced_update(params, [torch.zeros_like(p) for p in params], [torch.zeros_like(p) for p in params],
                                  torch.zeros(len(sizes), dtype=dtype), starts, keys,
                                  {**NO_PREPROCESSING, "noise_scale": noise_scale})
    assert done
    return -torch.cat(params)


# Ragged: a tensor inside one block, one across several blocks starting on an odd entry, one ending mid-block.
SIZES, START = [5, 3 * PAIR_SPAN + 1001, 2 * PAIR_SPAN + 3], 2 * PAIR_SPAN - 2


def test_float64_draws_are_the_oracle_stream_over_ragged_tensors():
    keys = step_keys(11, 7)
    expected = normals_range(START, sum(SIZES), keys, torch.float64)
    torch.testing.assert_close(native_noise(SIZES, START, keys, torch.float64), expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("noise_scale", [1.0, 1e-4])
def test_float32_draws_equal_the_oracle_to_float32_rounding(noise_scale):
    keys = step_keys(3, 0)
    count = 1 << 20
    got = native_noise([count], 0, keys, torch.float32, noise_scale).double()
    expected = noise_scale * normals_range(0, count, keys, torch.float64)
    # A few float32 ulps of the largest draws (|z| ≤ 5.77): the polynomials' ln, sin, cos and √ each round.
    assert (got - expected).abs().max() <= 2e-6 * noise_scale
    ragged = native_noise(SIZES, START, keys, torch.float32).double()
    torch.testing.assert_close(ragged, normals_range(START, sum(SIZES), keys, torch.float64), rtol=0, atol=2e-6)


def test_float32_draws_are_standard_normal_and_partners_independent():
    count = 1 << 21
    z = native_noise([count], 0, step_keys(0, 1), torch.float32).double().numpy()
    assert abs(z.mean()) < 4 / np.sqrt(count) and abs(z.var() - 1) < 4 * np.sqrt(2 / count)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    blocks = z.reshape(-1, 2, PAIR_SPAN)
    cosines, sines = blocks[:, 0].ravel(), blocks[:, 1].ravel()
    assert abs(np.corrcoef(cosines ** 2, sines ** 2)[0, 1]) < 4 / np.sqrt(cosines.size)


SETTINGS = [
    {"noise_scale": 1e-2, "weight_decay": 0.05},
    {"centering": False, "clip_factor": 0.5, "noise_scale": 0.0},  # clipping bites; no noise
    {"momentum": 0.0, "bayesian_init_std": 0.2, "noise_scale": 1e-2},  # grad_scale != 1; no momentum
]


def train(settings: dict, compiled: bool, dtype: torch.dtype, steps: int = 6) -> list[torch.Tensor]:
    generator = torch.Generator().manual_seed(5)
    inputs, targets = torch.randn(64, 30, generator=generator, dtype=dtype), torch.randn(64, 3, generator=generator,
                                                                                       dtype=dtype)
    torch.manual_seed(5)
    model = torch.nn.Sequential(torch.nn.Linear(30, 20), torch.nn.Tanh(), torch.nn.Linear(20, 3)).to(dtype)
    opt = EnhancedSGD([{"params": list(model[0].parameters())},
                       {"params": list(model[2].parameters()), "lr": 0.02, "noise_scale": 0.0}],
                      lr=0.05, seed=2, epsilon=0.3, compiled=compiled, fused=None if compiled else False, **settings)
    for _ in range(steps):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(model(inputs), targets)
        loss.backward()
        opt.step(loss=loss)
    return [p.detach().clone() for p in model.parameters()]


@pytest.mark.parametrize("settings", SETTINGS, ids=["noise-wd", "clip-no-noise", "grad-scale-no-momentum"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_the_cpp_pass_equals_the_reference_loop(settings, dtype, monkeypatch):
    monkeypatch.setattr(kernels, "COMPILE_AFTER_STEPS", 0)
    calls = kernels.CALLS["enhanced_update_native"]
    fast, reference = train(settings, True, dtype), train(settings, False, dtype)
    assert kernels.CALLS["enhanced_update_native"] == calls + 2 * 5  # two groups, steps 2-6
    tolerance = {"rtol": 1e-12, "atol": 1e-14} if dtype == torch.float64 else {"rtol": 1e-5, "atol": 1e-6}
    for a, b in zip(fast, reference):
        torch.testing.assert_close(a, b, **tolerance)


def test_ineligible_tensors_are_refused_untouched():
    param = torch.zeros(10, dtype=torch.float32)
    assert not native.enhanced_update([param], [torch.zeros(10, dtype=torch.float64)], [torch.zeros(10)],
                                      torch.zeros(1), None, (0, 0, 0), {**NO_PREPROCESSING, "noise_scale": 0.0})
    assert not native.enhanced_update([torch.zeros(4, 4).t()], [torch.zeros(4, 4)], [torch.zeros(4, 4)],
                                      torch.zeros(1), None, (0, 0, 0), {**NO_PREPROCESSING, "noise_scale": 0.0})
    assert torch.equal(param, torch.zeros(10))
