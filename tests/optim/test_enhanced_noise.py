"""EnhancedSGD's counter-based noise: exact words, N(0, 1) draws, independence, one stream on every path."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import scipy.stats
import torch

from gradretention.optim import EnhancedSGD, kernels, native
from gradretention.optim.algorithms.enhanced_noise import (
    MASK32,
    PAIR_SPAN,
    keys_tensor,
    mix,
    normals,
    normals_range,
    splitmix64,
    step_keys,
)


def python_mix(word: int) -> int:
    """The finaliser in exact integer arithmetic, the oracle of the tensor versions."""
    word ^= word >> 16
    word = (word * 0x21F0AAAD) & MASK32
    word ^= word >> 15
    word = (word * 0x735A2D97) & MASK32
    return word ^ (word >> 15)


WORDS = [0, 1, 2, 12345, 0x7FFFFFFF, 0x80000000, 0xDEADBEEF, 0xFFFFFFFF]


def test_mix_equals_exact_integer_arithmetic_in_int32_and_int64():
    signed = torch.tensor([w - (1 << 32) if w >= 1 << 31 else w for w in WORDS], dtype=torch.int32)
    assert [int(v) & MASK32 for v in mix(signed)] == [python_mix(w) for w in WORDS]
    assert mix(torch.tensor(WORDS, dtype=torch.int64)).tolist() == [python_mix(w) for w in WORDS]


def test_splitmix64_matches_the_published_first_outputs():
    # SplitMix64 seeded with 0 (state += γ before mixing): Vigna's reference values.
    assert splitmix64(0) == 0xE220A8397B1DCDAF
    assert splitmix64(0x9E3779B97F4A7C15) == 0x6E789E6AA1B965F4


def hand_draw(seed: int, draw: int, entry: int) -> float:
    """The module docstring's formula in exact integer arithmetic and numpy float64."""
    k0, k1, k2 = step_keys(seed, draw)
    half, pair = (entry >> 11) & 1, 2048 * (entry // 4096) + entry % 2048
    first = python_mix((pair & MASK32) ^ k0 ^ python_mix((pair >> 32) ^ k1))
    second = python_mix(first ^ k2)
    u1, u2 = ((first >> 8) + 1) * 2.0 ** -24, (second >> 8) * 2.0 ** -24
    radius = np.sqrt(-2 * np.log(u1))
    return radius * (np.sin(2 * np.pi * u2) if half else np.cos(2 * np.pi * u2))


@pytest.mark.parametrize("entry", [17, 17 + 2048, 4096 + 5, (1 << 34) + 2048 + 3], ids=["cos", "sin", "2nd-block", "q_hi"])
def test_a_draw_is_the_documented_formula_computed_by_hand(entry):
    assert PAIR_SPAN == 2048
    got = float(normals_range(entry, 1, step_keys(3, 5), torch.float64)[0])
    assert got == pytest.approx(hand_draw(3, 5, entry), rel=1e-14, abs=1e-14)


def test_partners_sit_a_pair_span_apart_and_share_their_radius():
    k0, k1, _ = step_keys(1, 2)
    z = normals_range(0, 2 * PAIR_SPAN, (k0, k1, step_keys(1, 2)[2]), torch.float64)
    cosines, sines = z[:PAIR_SPAN], z[PAIR_SPAN:]
    uniforms = [((python_mix(q ^ k0 ^ python_mix(k1)) >> 8) + 1) * 2.0 ** -24 for q in range(PAIR_SPAN)]
    torch.testing.assert_close(cosines ** 2 + sines ** 2, torch.tensor(-2 * np.log(uniforms)), rtol=1e-12, atol=1e-12)


def test_int64_indices_give_the_same_draws_as_int32_and_reach_past_two_to_the_32_pairs():
    keys = step_keys(0, 0)
    narrow = normals(torch.arange(5000, dtype=torch.int32), keys_tensor(keys, False, torch.device("cpu")), torch.float64)
    wide = normals(torch.arange(5000, dtype=torch.int64), keys_tensor(keys, True, torch.device("cpu")), torch.float64)
    assert torch.equal(narrow, wide)
    far = normals_range(1 << 34, 3, keys, torch.float64)  # pair 2³³: q_lo = 0, q_hi = 2
    assert not torch.equal(far, normals_range(0, 3, keys, torch.float64))  # the high word enters the hash


def test_draws_are_standard_normal_and_independent_across_entries_and_steps():
    count = 200_000
    draws = [normals_range(0, count, step_keys(0, t), torch.float64).numpy() for t in range(2)]
    z = draws[0]
    assert abs(z.mean()) < 4 / np.sqrt(count) and abs(z.var() - 1) < 4 * np.sqrt(2 / count)
    assert scipy.stats.kstest(z, "norm").pvalue > 1e-3
    bound = 4 / np.sqrt(count)  # |correlation| of independent samples: sd 1/√n
    assert abs(np.corrcoef(z[:-1], z[1:])[0, 1]) < bound  # neighbouring entries
    assert abs(np.corrcoef(draws[0], draws[1])[0, 1]) < bound  # the same entry at consecutive steps
    assert abs(np.corrcoef(draws[0] ** 2, draws[1] ** 2)[0, 1]) < bound  # magnitudes too
    # Pairs of neighbours fill the plane as independent normals do: χ² over the 4 sign quadrants.
    quadrants = np.bincount(2 * (z[0::2] > 0) + (z[1::2] > 0), minlength=4)
    assert scipy.stats.chisquare(quadrants).pvalue > 1e-3
    # A Box–Muller pair's two draws (entries j and j + B of each block of 2B) are independent too.
    blocks = z[:count - count % (2 * PAIR_SPAN)].reshape(-1, 2, PAIR_SPAN)
    cosines, sines = blocks[:, 0].ravel(), blocks[:, 1].ravel()
    pair_bound = 4 / np.sqrt(cosines.size)
    assert abs(np.corrcoef(cosines, sines)[0, 1]) < pair_bound
    assert abs(np.corrcoef(cosines ** 2, sines ** 2)[0, 1]) < pair_bound
    pair_quadrants = np.bincount(2 * (cosines > 0) + (sines > 0), minlength=4)
    assert scipy.stats.chisquare(pair_quadrants).pvalue > 1e-3


@pytest.mark.parametrize("kernel", ["enhanced_update_native", "enhanced_update"], ids=["c++", "inductor"])
@pytest.mark.parametrize("block", [8, None], ids=["counter-in-the-pass", "one-call-pool"])
def test_the_compiled_pass_draws_the_same_stream_as_the_reference_loop(block, kernel, monkeypatch):
    if not kernels.available(torch.device("cpu")):
        pytest.skip("no C++ compiler for Inductor")
    if kernel == "enhanced_update":  # the C++ loop steps aside: Inductor's pass runs
        monkeypatch.setattr(native, "enhanced_update", lambda *args: False)
    elif native.load() is None:
        pytest.skip("the C++ extension does not build here")
    monkeypatch.setattr(kernels, "COMPILE_AFTER_STEPS", 0)
    if block is not None:  # 30 entries > BLOCK: the pass computes each entry's draw from its index
        monkeypatch.setattr(kernels, "BLOCK", block)
    results, calls = [], kernels.CALLS[kernel]
    for compiled in (True, False):
        # 4100 + 7 + 8 entries: whole and ragged blocks of 2B, and partners across tensors.
        params = [torch.nn.Parameter(torch.zeros(shape, dtype=torch.float64)) for shape in ((4, 1025), (7,), (2, 2, 2))]
        opt = EnhancedSGD(params, lr=1.0, momentum=0.0, clip_factor=None, centering=False, noise_scale=1.0,
                          epsilon=0.0, seed=4, compiled=compiled, fused=None if compiled else False)
        for _ in range(3):  # the first step is eager; steps 2 and 3 run the compiled pass
            for param in params:
                param.grad = torch.zeros_like(param)
            opt.step(loss=1.0)
        results.append(torch.cat([p.detach().view(-1) for p in params]))
    assert kernels.CALLS[kernel] == calls + 2  # steps 2 and 3 of the compiled run
    torch.testing.assert_close(results[0], results[1], rtol=1e-13, atol=1e-13)
    expected = -sum(normals_range(0, 4115, step_keys(9, t), torch.float64) for t in range(3))  # 2·seed + 1 = 9
    torch.testing.assert_close(results[1], expected, rtol=1e-15, atol=1e-15)


def test_a_state_dict_continues_the_noise_stream_bit_for_bit():
    def make(param):
        return EnhancedSGD([param], lr=0.1, noise_scale=1.0, seed=3, epsilon=0.0)

    param = torch.nn.Parameter(torch.zeros(50, dtype=torch.float64))
    opt = make(param)
    for _ in range(2):
        param.grad = torch.ones_like(param)
        opt.step(loss=1.0)
    twin = torch.nn.Parameter(param.detach().clone())
    fresh = make(twin)
    fresh.load_state_dict(copy.deepcopy(opt.state_dict()))
    assert fresh.noise_draws == opt.noise_draws == 2
    for _ in range(3):
        for p, o in ((param, opt), (twin, fresh)):
            p.grad = torch.ones_like(p)
            o.step(loss=1.0)
    assert torch.equal(param, twin)
