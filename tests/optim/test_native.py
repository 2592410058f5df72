"""RescaledSGD's hand-written first pass equals the reference arithmetic, and a failed build falls back."""

from __future__ import annotations

import math
import warnings

import pytest
import torch

from gradretention.optim import native

pytestmark = pytest.mark.xdist_group("compiled")  # one worker builds the extension once


def tensors(dtype: torch.dtype, sizes=(70_000, 3, 1)) -> tuple[list, list, list]:
    generator = torch.Generator().manual_seed(0)
    make = lambda: [torch.randn(n, generator=generator, dtype=dtype) for n in sizes]  # noqa: E731
    return make(), make(), make()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_first_pass_is_the_reference_update_bit_for_bit_and_its_bounds(dtype):
    retained, grads, params = tensors(dtype)
    expected = [m.clone().mul_(0.9).add_(g) for m, g in zip(retained, grads)]
    bounds = native.retain_and_bounds(retained, grads, params, 0.9, 0.0, True)
    assert bounds is not None, "the C++ kernel did not build here"
    for got, want in zip(retained, expected):
        assert torch.equal(got, want)  # -ffp-contract=off: γ·m and + g round as mul_ and add_ do
    for row, want in zip(bounds, expected):
        low, high = torch.aminmax(want.abs())
        assert row.tolist() == [low.item(), high.item()]


def test_weight_decay_matches_the_reference_to_an_ulp_of_the_operands():
    retained, grads, params = tensors(torch.float32)
    expected = [m.clone().mul_(0.9).add_(g.add(p, alpha=0.05)) for m, g, p in zip(retained, grads, params)]
    native.retain_and_bounds(retained, grads, params, 0.9, 0.05, False)
    for got, want in zip(retained, expected):
        # Two float32 ulps of the operands (eager fuses wd·θ + g in one rounding, this loop rounds twice).
        torch.testing.assert_close(got, want, rtol=2.5e-7, atol=2.5e-7)


def test_a_nan_makes_both_bounds_nan_as_aminmax_does():
    retained, grads, params = tensors(torch.float32)
    grads[0][12_345] = float("nan")
    bounds = native.retain_and_bounds(retained, grads, params, 0.9, 0.0, True)
    assert math.isnan(bounds[0, 0]) and math.isnan(bounds[0, 1])
    assert not torch.isnan(bounds[1:]).any()


def test_ineligible_tensors_are_left_alone():
    retained, grads, params = tensors(torch.float32)
    strided = [torch.randn(4, 6).t()]
    assert native.retain_and_bounds(strided, [torch.randn(6, 4)], [torch.randn(6, 4)], 0.9, 0.0, True) is None
    halves = [t.bfloat16() for t in retained]
    before = [t.clone() for t in halves]
    assert native.retain_and_bounds(halves, [g.bfloat16() for g in grads], [p.bfloat16() for p in params],
                                    0.9, 0.0, True) is None
    assert all(torch.equal(a, b) for a, b in zip(halves, before))


def test_a_failed_build_warns_once_and_returns_none(monkeypatch, tmp_path):
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-compiler"))
    monkeypatch.setenv("TORCH_EXTENSIONS_DIR", str(tmp_path))
    monkeypatch.setattr(native, "NAME", "gradretention_native_broken_build")
    monkeypatch.setattr(native, "_STATE", {})
    retained, grads, params = tensors(torch.float32)
    before = [t.clone() for t in retained]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert native.retain_and_bounds(retained, grads, params, 0.9, 0.0, True) is None
        assert native.retain_and_bounds(retained, grads, params, 0.9, 0.0, True) is None
    messages = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len(messages) == 1 and "could not build its C++ kernel" in messages[0]
    assert all(torch.equal(a, b) for a, b in zip(retained, before))


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_hypergradient_equals_the_float64_formula(dtype, weight_decay):
    grads, params, exp_avgs = tensors(dtype)
    exp_avg_sqs = [g.square() * 0.5 + 1e-6 for g in tensors(dtype)[2]]
    constants = [(1e-8 * 0.7, 1.3), (2e-8, 0.9), (3e-8, 1.1)]
    got = native.adam_direction_dots(grads, params, exp_avgs, exp_avg_sqs, constants, weight_decay)
    assert got is not None, "the C++ kernel did not build here"
    want = sum(scale * ((g.double() + weight_decay * p.double()) * m.double()
                        / (v.double().sqrt() + eps)).sum()
               for (eps, scale), g, p, m, v in zip(constants, grads, params, exp_avgs, exp_avg_sqs))
    assert got.dtype == torch.float64 and got.ndim == 0
    # float32: each term rounds a few times in float32 before the float64 sums.
    tolerance = 1e-5 if dtype == torch.float32 else 1e-13
    assert float(got) == pytest.approx(float(want), rel=tolerance)


def test_adam_hypergradient_refuses_ineligible_tensors():
    strided = [torch.randn(4, 6).t()]
    assert native.adam_direction_dots(strided, strided, strided, strided, [(1e-8, 1.0)], 0.0) is None
    halves = [torch.randn(8).bfloat16()]
    assert native.adam_direction_dots(halves, halves, halves, halves, [(1e-8, 1.0)], 0.0) is None


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_sums_and_squares_equal_the_float64_sums_in_the_tensors_dtype(dtype):
    grads = tensors(dtype)[0]
    grads[0].add_(0.25)  # a mean away from 0, so Σg is not a sum of cancelling terms
    got = native.sums_and_squares(grads)
    assert got is not None, "the C++ kernel did not build here"
    want = torch.tensor([[g.double().sum(), g.double().square().sum()] for g in grads], dtype=torch.float64)
    assert got.dtype == dtype and got.shape == (3, 2)
    # The float32 lanes round each partial sum; float64 sums across 16 K blocks.
    torch.testing.assert_close(got.double(), want, rtol=1e-6 if dtype == torch.float32 else 1e-13, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_adam_terms_equal_the_hypergradient_and_both_norms_in_float64(dtype):
    grads, params, exp_avgs = tensors(dtype)
    exp_avg_sqs = [g.square() * 0.5 + 1e-6 for g in tensors(dtype)[2]]
    constants, weight_decay = [(1e-8 * 0.7, 1.3), (2e-8, 0.9), (3e-8, 1.1)], 0.05
    got = native.adam_direction_terms(grads, params, exp_avgs, exp_avg_sqs, constants, weight_decay)
    assert got is not None, "the C++ kernel did not build here"
    effective = [g.double() + weight_decay * p.double() for g, p in zip(grads, params)]
    directions = [scale * m.double() / (v.double().sqrt() + eps)
                  for (eps, scale), m, v in zip(constants, exp_avgs, exp_avg_sqs)]
    want = torch.stack([sum((e * d).sum() for e, d in zip(effective, directions)),
                        sum(e.square().sum() for e in effective), sum(d.square().sum() for d in directions)])
    assert got.dtype == torch.float64 and got.shape == (3,)
    torch.testing.assert_close(got, want, rtol=1e-5 if dtype == torch.float32 else 1e-13, atol=0)


@pytest.mark.parametrize("weight_decay", [0.0, 0.05])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_stored_terms_equal_the_dot_and_both_norms_in_float64(dtype, weight_decay):
    grads, params, directions = tensors(dtype)
    got = native.stored_direction_terms(grads, params, directions, weight_decay)
    assert got is not None, "the C++ kernel did not build here"
    effective = [g.double() + weight_decay * p.double() for g, p in zip(grads, params)]
    want = torch.stack([sum((e * d.double()).sum() for e, d in zip(effective, directions)),
                        sum(e.square().sum() for e in effective), sum(d.double().square().sum() for d in directions)])
    torch.testing.assert_close(got, want, rtol=1e-5 if dtype == torch.float32 else 1e-13, atol=0)
