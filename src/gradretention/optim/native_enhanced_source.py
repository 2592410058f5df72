"""The C++ of EnhancedSGD's update pass (:func:`gradretention.optim.native.enhanced_update`).

Built into the same extension as :mod:`~gradretention.optim.native_source`. The stream is the one
:mod:`gradretention.optim.algorithms.enhanced_noise` defines: pair ``q`` hashes to two 24-bit
uniforms, its ``r·cos θ`` goes to entry ``j`` and its ``r·sin θ`` to entry ``j + B`` of the same
aligned block of 2B entries (B = 2048). A whole block inside a tensor is one loop over its B
pairs that updates both entries of each pair with contiguous vectors, so the arithmetic of the
draws overlaps the memory traffic of the update; a tensor's ragged ends make the block's draws
into a buffer first. In float32, one hash chain (two ``mix`` rounds), one logarithm, one square
root and one sine–cosine pair serve two entries; the transcendentals are branch-free polynomials
that the compiler vectorises:

- ``ln u₁`` (u₁ ∈ (0, 1]): Moshier's Cephes ``logf`` (degree-8 polynomial in ``f − 1``,
  ``f ∈ [√½, √2)``, ``e·ln 2`` split in two; ``2⁻²⁴`` enters as the exponent), within about
  one float32 ulp;
- ``θ = 2π u₂``: the 24-bit integer of ``u₂`` picks the nearest quarter turn ``n`` exactly and
  leaves ``x ∈ [−π/4, π/4]`` (one rounding); Cephes ``sinf``/``cosf`` polynomials on ``x``,
  rotated by ``n``;
- ``noise_scale`` rides inside the square root (``√(−2·scale²·ln u₁)``): one multiply per pair.

So a float32 draw equals the float64 oracle's to a few float32 ulps (|Δ| ≤ 2·10⁻⁶ over 2²⁰ draws,
``tests/optim/test_enhanced_native.py``). float64 params use ``std::log``/``std::sin``/``std::cos``
(scalar libm) and multiply by ``noise_scale`` as the reference loop does. The update's
arithmetic is the reference's: ``e = g (+ wd·θ)``, ``− mean``, clamp, ``× grad_scale``, ``+ noise``,
``b ← μ b + e``, ``θ ← θ − α b``, each rounded on its own (``-ffp-contract=off``; the polynomials
use explicit ``fma``); neutral values (mean 0, clip ∞) stand for the parts a group switches off,
which leave every entry unchanged, and each combination of weight decay, ``grad_scale ≠ 1`` and
noise is its own loop.
"""

ENHANCED_SOURCE = r"""
#include <cstdint>

namespace enhanced {

constexpr int64_t kHalf = 2048;  // the stream's pairing: cos of pair q at entry 2B⌊q/B⌋ + q mod B, sin B entries on
constexpr int64_t kBlock = 2 * kHalf;

static inline uint32_t mix(uint32_t x) {
  x ^= x >> 16;
  x *= 0x21f0aaadu;
  x ^= x >> 15;
  x *= 0x735a2d97u;
  x ^= x >> 15;
  return x;
}

// ln(m·2⁻²⁴) for an integer m in [1, 2²⁴] (Cephes logf, S. L. Moshier, with its terms regrouped into
// fused multiply-adds): branch-free, so the pair loop vectorises; 2⁻²⁴ enters as an exponent.
static inline float log_uniform(uint32_t m) {
  const int32_t bits = __builtin_bit_cast(int32_t, static_cast<float>(m));  // exact: m ≤ 2²⁴
  int32_t exponent = (bits >> 23) - 150;  // m·2⁻²⁴ = f · 2^exponent, f in [0.5, 1)
  float f = __builtin_bit_cast(float, (bits & 0x007fffff) | 0x3f000000);
  const bool low = f < 0.70710678118654752440f;
  exponent -= low ? 1 : 0;
  f = (low ? f + f : f) - 1.0f;  // exact (Sterbenz); ln(1 + f) = f − f²/2 + f³·P(f)
  float y = 7.0376836292e-2f;
  y = __builtin_fmaf(y, f, -1.1514610310e-1f);
  y = __builtin_fmaf(y, f, 1.1676998740e-1f);
  y = __builtin_fmaf(y, f, -1.2420140846e-1f);
  y = __builtin_fmaf(y, f, 1.4249322787e-1f);
  y = __builtin_fmaf(y, f, -1.6668057665e-1f);
  y = __builtin_fmaf(y, f, 2.0000714765e-1f);
  y = __builtin_fmaf(y, f, -2.4999993993e-1f);
  y = __builtin_fmaf(y, f, 3.3333331174e-1f);
  y = __builtin_fmaf(f * f, __builtin_fmaf(y, f, -0.5f), f);
  const float e = static_cast<float>(exponent);
  return __builtin_fmaf(e, 0.693359375f, __builtin_fmaf(e, -2.12194440e-4f, y));  // ln 2 in two parts
}

// scale·(r cos θ, r sin θ) of the words (a, b): u1 = (⌊a/2⁸⌋ + 1)·2⁻²⁴, u2 = ⌊b/2⁸⌋·2⁻²⁴, θ = 2π u2, r = √(−2 ln u1).
// `square_scale` = −2·scale²: the scale rides inside the square root (one multiply per pair, none per entry).
static inline void normal_pair(uint32_t a, uint32_t b, float square_scale, float& even, float& odd) {
  const float r = std::sqrt(square_scale * log_uniform((a >> 8) + 1));
  const int32_t turn = static_cast<int32_t>(b >> 8);          // θ = 2π turn / 2²⁴
  const int32_t quarter = (turn + (1 << 21)) >> 22;            // nearest quarter turn, 0..4
  const float x = static_cast<float>(turn - (quarter << 22)) * 0x1.921fb6p-22f;  // 2π/2²⁴; |x| ≤ π/4
  const float z = x * x;
  float s = __builtin_fmaf(-1.9515295891e-4f, z, 8.3321608736e-3f);
  s = __builtin_fmaf(s, z, -1.6666654611e-1f);
  s = __builtin_fmaf(s * z, x, x);
  float c = __builtin_fmaf(2.443315711809948e-5f, z, -1.388731625493765e-3f);
  c = __builtin_fmaf(c, z, 4.166664568298827e-2f);
  c = __builtin_fmaf(c * z, z, __builtin_fmaf(-0.5f, z, 1.0f));
  const int32_t n = quarter & 3;  // cos(nπ/2 + x), sin(nπ/2 + x) from c, s
  const float cosine = (n & 1) ? s : c, sine = (n & 1) ? c : s;
  even = r * (((n + 1) & 2) ? -cosine : cosine);
  odd = r * ((n & 2) ? -sine : sine);
}

// float64: libm's log, sqrt, cos and sin; the scale multiplies each draw, as the reference loop does.
static inline void normal_pair(uint32_t a, uint32_t b, double scale, double& even, double& odd) {
  const double r = std::sqrt(-2.0 * std::log(static_cast<double>((a >> 8) + 1) * 0x1p-24));
  const double theta = 6.283185307179586476925286766559 * (static_cast<double>(b >> 8) * 0x1p-24);
  even = scale * (r * std::cos(theta));
  odd = scale * (r * std::sin(theta));
}

template <typename T>
static inline T pair_scale(T noise_scale) {  // what normal_pair takes: −2·scale² (float), scale (double)
  return sizeof(T) == 4 ? -2 * noise_scale * noise_scale : noise_scale;
}

struct Keys {
  uint32_t k0, k1, k2;
};

// k₀ ⊕ mix(q_hi ⊕ k₁): what the low word of every pair q with this high word is xored with.
static inline uint32_t high_key(const Keys& keys, uint64_t pair) {
  return keys.k0 ^ mix(static_cast<uint32_t>(pair >> 32) ^ keys.k1);
}

// The words of pair first + k, for pairs that share first's high 32 bits (high = high_key(first)).
static inline void words(const Keys& keys, uint32_t low, uint32_t high, int64_t k, uint32_t& a, uint32_t& b) {
  a = mix((low + static_cast<uint32_t>(k)) ^ high);
  b = mix(a ^ keys.k2);
}

template <typename T>
struct Step {
  T alpha, momentum, clip, grad_scale, noise_scale, weight_decay, mean;
};

// e = g (+ wd·θ) − mean, clamp (× grad_scale) (+ noise, already × noise_scale); b ← μ b + e; θ ← θ − α b;
// each op rounded alone.
template <typename T, bool Decayed, bool Scaled, bool Noisy>
static inline void update(T* p, const T* g, T* b, int64_t i, T noise, const Step<T>& s) {
  T e = g[i];
  if (Decayed) {
    const T decay = s.weight_decay * p[i];
    e = e + decay;
  }
  e = e - s.mean;
  e = std::min(std::max(e, -s.clip), s.clip);
  if (Scaled) e = e * s.grad_scale;
  if (Noisy) e = e + noise;
  const T kept = s.momentum * b[i];
  const T buffer = kept + e;
  b[i] = buffer;
  const T move = s.alpha * buffer;
  p[i] = p[i] - move;
}

// A whole block of the stream inside one tensor (p, g, b point at its first entry): each pair's draws
// are made where its two entries are updated, so the arithmetic overlaps the memory traffic.
template <typename T, bool Decayed, bool Scaled>
static void noisy_block(T* p, const T* g, T* b, uint64_t first_pair, const Step<T>& s, const Keys& keys) {
  const uint32_t low = static_cast<uint32_t>(first_pair), high = high_key(keys, first_pair);
  const T scale = pair_scale(s.noise_scale);
  constexpr int64_t line = 64 / sizeof(T), ahead = 256;  // a cache line per stream per vector; 1 KiB ahead
  for (int64_t first = 0; first < kHalf; first += line) {
    __builtin_prefetch(g + first + ahead, 0, 3);
    __builtin_prefetch(g + first + ahead + kHalf, 0, 3);
    __builtin_prefetch(p + first + ahead, 1, 3);
    __builtin_prefetch(p + first + ahead + kHalf, 1, 3);
    __builtin_prefetch(b + first + ahead, 1, 3);
    __builtin_prefetch(b + first + ahead + kHalf, 1, 3);
    #pragma omp simd
    for (int64_t k = first; k < first + line; ++k) {
      uint32_t wa, wb;
      words(keys, low, high, k, wa, wb);
      T even, odd;
      normal_pair(wa, wb, scale, even, odd);
      update<T, Decayed, Scaled, true>(p, g, b, k, even, s);
      update<T, Decayed, Scaled, true>(p, g, b, k + kHalf, odd, s);
    }
  }
}

// Entries lo … hi − 1 of the block starting at entry `base` (a tensor's ragged ends): the block's draws first.
template <typename T, bool Decayed, bool Scaled>
static void noisy_part(T* p, const T* g, T* b, int64_t base, int64_t lo, int64_t hi, const Step<T>& s,
                       const Keys& keys) {
  alignas(64) T z[kBlock];
  const uint64_t first_pair = static_cast<uint64_t>(base / 2);
  const uint32_t low = static_cast<uint32_t>(first_pair), high = high_key(keys, first_pair);
  const T scale = pair_scale(s.noise_scale);
  #pragma omp simd
  for (int64_t k = 0; k < kHalf; ++k) {
    uint32_t wa, wb;
    words(keys, low, high, k, wa, wb);
    normal_pair(wa, wb, scale, z[k], z[k + kHalf]);
  }
  #pragma omp simd
  for (int64_t i = lo - base; i < hi - base; ++i) update<T, Decayed, Scaled, true>(p, g, b, i, z[i], s);
}

// One tensor: entries start … start + n − 1 of the stream (p, g, b point at entry `start`), block by block.
template <typename T, bool Decayed, bool Scaled, bool Noisy>
static void update_tensor(T* p, const T* g, T* b, int64_t n, int64_t start, const Step<T>& s, const Keys& keys) {
  const int64_t first = start / kBlock, last = (start + n + kBlock - 1) / kBlock;
  at::parallel_for(first, last, 1, [&](int64_t block_begin, int64_t block_end) {
    for (int64_t block = block_begin; block < block_end; ++block) {
      const int64_t base = block * kBlock, lo = std::max(start, base), hi = std::min(start + n, base + kBlock);
      T* pb = p + (base - start);  // may point before the tensor: only entries lo … hi − 1 are touched
      const T* gb = g + (base - start);
      T* bb = b + (base - start);
      if (!Noisy) {
        #pragma omp simd
        for (int64_t i = lo - base; i < hi - base; ++i) update<T, Decayed, Scaled, false>(pb, gb, bb, i, T(0), s);
      } else if (lo == base && hi == base + kBlock) {
        noisy_block<T, Decayed, Scaled>(pb, gb, bb, static_cast<uint64_t>(base / 2), s, keys);
      } else {
        noisy_part<T, Decayed, Scaled>(pb, gb, bb, base, lo, hi, s, keys);
      }
    }
  });
}

}  // namespace enhanced

void enhanced_update(std::vector<torch::Tensor> params, std::vector<torch::Tensor> grads,
                     std::vector<torch::Tensor> buffers, torch::Tensor means, std::vector<int64_t> starts,
                     std::vector<int64_t> keys, double alpha, double momentum, double clip, double grad_scale,
                     double noise_scale, double weight_decay, bool noisy) {
  const enhanced::Keys words{static_cast<uint32_t>(keys[0]), static_cast<uint32_t>(keys[1]),
                             static_cast<uint32_t>(keys[2])};
  AT_DISPATCH_FLOATING_TYPES(params[0].scalar_type(), "enhanced_update", [&] {
    for (size_t i = 0; i < params.size(); ++i) {
      // 0 for a tensor that is not centred; clip ∞ and grad_scale 1 when those parts are off.
      const enhanced::Step<scalar_t> s{static_cast<scalar_t>(alpha), static_cast<scalar_t>(momentum),
                                       static_cast<scalar_t>(clip), static_cast<scalar_t>(grad_scale),
                                       static_cast<scalar_t>(noise_scale), static_cast<scalar_t>(weight_decay),
                                       means.data_ptr<scalar_t>()[i]};
      scalar_t* p = params[i].data_ptr<scalar_t>();
      const scalar_t* g = grads[i].data_ptr<scalar_t>();
      scalar_t* b = buffers[i].data_ptr<scalar_t>();
      const int64_t n = params[i].numel();
      const int flags = (weight_decay != 0 ? 4 : 0) | (grad_scale != 1 ? 2 : 0) | (noisy ? 1 : 0);
      switch (flags) {  // each combination its own loop: no branch and no dead multiply inside
        case 0: enhanced::update_tensor<scalar_t, false, false, false>(p, g, b, n, starts[i], s, words); break;
        case 1: enhanced::update_tensor<scalar_t, false, false, true>(p, g, b, n, starts[i], s, words); break;
        case 2: enhanced::update_tensor<scalar_t, false, true, false>(p, g, b, n, starts[i], s, words); break;
        case 3: enhanced::update_tensor<scalar_t, false, true, true>(p, g, b, n, starts[i], s, words); break;
        case 4: enhanced::update_tensor<scalar_t, true, false, false>(p, g, b, n, starts[i], s, words); break;
        case 5: enhanced::update_tensor<scalar_t, true, false, true>(p, g, b, n, starts[i], s, words); break;
        case 6: enhanced::update_tensor<scalar_t, true, true, false>(p, g, b, n, starts[i], s, words); break;
        default: enhanced::update_tensor<scalar_t, true, true, true>(p, g, b, n, starts[i], s, words);
      }
    }
  });
}
"""
