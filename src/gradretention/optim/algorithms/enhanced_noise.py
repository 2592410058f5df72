"""EnhancedSGD's gradient noise: a seeded counter-based N(0, 1) stream, one Box–Muller pair per two entries.

Entry ``j`` of step ``t``'s noise (``j`` counts the entries that get noise, groups and params in
order, flattened; ``t`` counts the steps that drew noise, from 0) is a pure function of
``(seed, t, j)``. Entries come in blocks of 2B (B = :data:`PAIR_SPAN` = 2048); entry ``j`` is
half ``h`` of pair ``q``::

    h = ⌊j / B⌋ mod 2,   q = B·⌊j / 2B⌋ + (j mod B)                    (so j and j + B share q when h = 0)
    (k₀, k₁, k₂) = words of splitmix64 applied to (seed, t)              host, once per step
    a = mix(q_lo ⊕ k₀ ⊕ mix(q_hi ⊕ k₁)),   b = mix(a ⊕ k₂)             32-bit words
    u₁ = (⌊a / 2⁸⌋ + 1) · 2⁻²⁴ ∈ (0, 1],   u₂ = ⌊b / 2⁸⌋ · 2⁻²⁴ ∈ [0, 1)
    z = √(−2 ln u₁) · cos(2π (u₂ − h/4))                                 Box–Muller: cos θ, then sin θ

Both outputs of one Box–Muller transform are independent N(0, 1) draws, so a pair feeds two
entries and a draw costs half a hash chain (two 32-bit mixes per pair: ``mix(q_hi ⊕ k₁)`` is one
word per 2³² pairs), half a logarithm and half a sine–cosine pair. The
partners sit B entries apart rather than side by side so that the C++ pass
(:func:`gradretention.optim.native.enhanced_update`) reads and writes both halves with
contiguous vectors.
``mix`` is a 32-bit xorshift-multiply finaliser (``x ⊕= x ≫ 16; x ·= 0x21f0aaad; x ⊕= x ≫ 15;
x ·= 0x735a2d97; x ⊕= x ≫ 15``, a low-bias constant pair from Wellons' hash-prospector), a
bijection of 32-bit words; ``q_lo``/``q_hi`` are the low and high 32 bits of ``q``. This is the
counter-based design of Salmon et al. 2011 ("Parallel random numbers: as easy as 1, 2, 3",
SC'11): no sequential state, so every entry's draw is computed where it is used — in the C++
pass or the compiled update pass (Inductor fuses the integer mixing and the Box–Muller
transform into the kernel) or block by block on the eager paths — and a step costs arithmetic,
not a serial walk of torch's CPU generator (which alone cost ~5–10 fused Adam steps at 10 M
parameters).

Words are held in ``int32`` with wrap-around products and masked (logical) shifts when
``j < 2³¹`` — native 32-bit vector multiplies — and in ``int64`` masked to 32 bits otherwise;
both give the same words, so the stream does not depend on the path. The floats are computed
in the params' dtype (float32 for half precision): a float64 run (the reference loop) is the
oracle of the same stream, a float32 run equals it to float32 rounding (both uniforms and
``u₂ − 1/4`` are exact in float32; the C++ pass's polynomial ``ln`` and ``sin``/``cos`` stay
within a few float32 ulps). 24-bit uniforms bound |z| by √(2·ln 2²⁴) ≈ 5.77 (a N(0, 1) draw
exceeds it with probability 8·10⁻⁹).

.. note:: Stream history: the first counter stream (one pair per entry, ``z = √(−2 ln u₁)·cos 2πu₂``
   with ``q = j`` and ``a = mix(mix(j_lo ⊕ k₀) ⊕ (j_hi ⊕ k₁))``) was replaced by this paired one, which
   halves the transcendental work and hashes with two mixes per pair instead of three; same
   distribution, different numbers.
"""

from __future__ import annotations

import math
from functools import reduce

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
MASK64 = 0xFFFFFFFFFFFFFFFF
MIX_MULTIPLIERS = (0x21F0AAAD, 0x735A2D97)
"""Both below 2³¹: an int64 product of a 32-bit word and either never overflows."""
UNIFORM_BITS = 24
INT32_LIMIT = 1 << 31
"""Entry indices below this run the int32 arithmetic (they fit a non-negative int32)."""
PAIR_SPAN_BITS = 11
PAIR_SPAN = 1 << PAIR_SPAN_BITS
"""B: the two entries of a Box–Muller pair sit B apart, in aligned blocks of 2B entries."""


def splitmix64(value: int) -> int:
    """Steele, Lea & Flood's SplitMix64 output function of ``value + γ`` (Python ints, exact)."""
    z = (value + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def step_keys(seed: int, draw: int) -> tuple[int, int, int]:
    """The three 32-bit key words ``(k₀, k₁, k₂)`` of noise draw ``draw`` (unsigned, as Python ints)."""
    first = splitmix64(splitmix64(seed) ^ draw)
    second = splitmix64(first)
    return first & MASK32, first >> 32, second & MASK32


def keys_tensor(keys: tuple[int, int, int], wide: bool, device: torch.device) -> Tensor:
    """The key words as an int64 tensor (``wide``) or as int32 (two's complement of each word)."""
    if wide:
        return torch.tensor(keys, dtype=torch.int64, device=device)
    return torch.tensor([k - (1 << 32) if k >= INT32_LIMIT else k for k in keys], dtype=torch.int32, device=device)


def mix(word: Tensor) -> Tensor:
    """The 32-bit finaliser on int32 (wrapping) or int64 (words in [0, 2³²)) tensors; same words either way."""
    wide = word.dtype == torch.int64
    first, second = MIX_MULTIPLIERS
    # (x >> s) & mask is the logical shift of a 32-bit word also when int32 holds it as a negative number.
    word = word ^ ((word >> 16) & 0xFFFF)
    word = word * first
    word = (word & MASK32) if wide else word
    word = word ^ ((word >> 15) & 0x1FFFF)
    word = word * second
    word = (word & MASK32) if wide else word
    return word ^ ((word >> 15) & 0x1FFFF)


def pair_and_half(index: Tensor) -> tuple[Tensor, Tensor]:
    """The pair ``q = B·⌊j/2B⌋ + (j mod B)`` of each entry index ``j`` and its half ``h = ⌊j/B⌋ mod 2``."""
    half = (index >> PAIR_SPAN_BITS) & 1
    pair = ((index >> (PAIR_SPAN_BITS + 1)) << PAIR_SPAN_BITS) | (index & (PAIR_SPAN - 1))
    return pair, half


def normals(index: Tensor, keys: Tensor, dtype: torch.dtype) -> Tensor:
    """z(seed, t, j) for the entry indices ``index`` (int32 below 2³¹, else int64) under ``keys``."""
    pair, half = pair_and_half(index)
    if pair.dtype == torch.int64:
        first = mix((pair & MASK32) ^ keys[0] ^ mix((pair >> 32) ^ keys[1]))
    else:  # q_hi = 0: mix(k₁) is one word for the whole step
        first = mix(pair ^ keys[0] ^ mix(keys[1]))
    second = mix(first ^ keys[2])
    wanted, dtype = dtype, torch.promote_types(dtype, torch.float32)  # 2²⁴ overflows float16
    scale = 2.0 ** -UNIFORM_BITS
    shift, mask = 32 - UNIFORM_BITS, (1 << UNIFORM_BITS) - 1
    radius_uniform = (((first >> shift) & mask).to(dtype) + 1.0) * scale
    # The odd half's sin θ as cos(θ − π/2): u₂ − 1/4 is exact, and one cos serves both halves.
    angle_uniform = ((second >> shift) & mask).to(dtype) * scale - 0.25 * half.to(dtype)
    return (torch.sqrt(-2.0 * torch.log(radius_uniform)) * torch.cos((2 * math.pi) * angle_uniform)).to(wanted)


def index_dtype(end: int) -> torch.dtype:
    """int32 when every index below ``end`` fits it, else int64."""
    return torch.int32 if end <= INT32_LIMIT else torch.int64


def normals_range(start: int, count: int, keys: tuple[int, int, int], dtype: torch.dtype,
                  device: torch.device | str = "cpu") -> Tensor:
    """Entries ``start … start + count − 1`` of the draw with ``keys`` (eager), a 1-D tensor."""
    wide = index_dtype(start + count) == torch.int64
    index = torch.arange(start, start + count, dtype=torch.int64 if wide else torch.int32, device=device)
    return normals(index, keys_tensor(keys, wide, torch.device(device)), dtype)


def add_periodic_(target: Tensor, pool: Tensor, start: int, scale: float) -> None:
    """``target[j] += scale · pool[(start + j) mod P]`` for a 1-D contiguous ``target``, in ≤ 3 adds."""
    size, count = pool.numel(), target.numel()
    head = min(count, size - start)
    target[:head].add_(pool[start:start + head], alpha=scale)
    rows = (count - head) // size
    if rows:
        # A stride-0 view repeats the pool without materialising the repetition.
        target[head:head + rows * size].view(rows, size).add_(pool.expand(rows, size), alpha=scale)
    done = head + rows * size
    if done < count:
        target[done:].add_(pool[:count - done], alpha=scale)


class StepNoise:
    """One step's noise, read over the entries in order (:mod:`.enhanced_noise`'s stream).

    Without ``pool``, entry ``j`` takes the stream's draw ``z(seed, t, j)`` under ``keys``;
    with a ``pool`` of P values (``noise_pool=P`` below the entry count: the stream's first P
    draws), entry ``j`` takes ``pool[j mod P]``.
    """

    def __init__(self, keys: tuple[int, int, int], pool: Tensor | None = None) -> None:
        self.keys = keys
        self.pool = pool
        self.position = 0

    def like(self, tensor: Tensor) -> Tensor:
        """The next ``tensor.numel()`` draws, shaped like ``tensor`` (the reference path)."""
        count = tensor.numel()
        if self.pool is None:
            values = normals_range(self.position, count, self.keys, tensor.dtype, tensor.device)
            self.position += count
            return values.view(tensor.shape)
        size = self.pool.numel()
        index = torch.arange(self.position, self.position + count, device=self.pool.device) % size
        self.position = (self.position + count) % size
        return self.pool[index].view(tensor.shape).to(tensor)

    def add_to_(self, target: Tensor, scale: float) -> None:
        """``target += scale · like(target)`` for a 1-D contiguous ``target``, without the gather."""
        if self.pool is None:
            target.add_(normals_range(self.position, target.numel(), self.keys, target.dtype, target.device),
                        alpha=scale)
            self.position += target.numel()
            return
        pool = self.pool.to(target)
        add_periodic_(target, pool, self.position, scale)
        self.position = (self.position + target.numel()) % pool.numel()

    def advance(self, count: int) -> None:
        """Skip ``count`` entries (a compiled pass consumed them)."""
        self.position = self.position + count if self.pool is None else (self.position + count) % self.pool.numel()


def step_noise(seed: int, draw: int, grads: list[Tensor], pool: int | None, whole_below: int) -> StepNoise | None:
    """Draw ``draw``'s noise for the entries of ``grads`` (None when there are none).

    ``pool`` below the entry count gives the periodic pool of its first ``pool`` draws; a step
    of at most ``whole_below`` entries gets all its draws in one call (a small model's eager
    step would pay ~20 small ops per tensor); larger steps compute draws where they are used.
    """
    total = sum(grad.numel() for grad in grads)
    if total == 0:
        return None
    keys = step_keys(seed, draw)
    dtype = reduce(torch.promote_types, (grad.dtype for grad in grads))
    if pool is not None and pool < total:
        return StepNoise(keys, normals_range(0, pool, keys, dtype, grads[0].device))
    if total <= whole_below:
        return StepNoise(keys, normals_range(0, total, keys, dtype, grads[0].device))
    return StepNoise(keys)
