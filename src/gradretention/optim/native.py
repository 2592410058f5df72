"""Hand-written C++ loops for the passes Inductor does not do well.

- RescaledSGD's first pass: ``m ← γ m + (g + wd·θ)`` and the min and max of ``|m|`` want one
  loop that stores m and reduces over the stored values in registers (12 B/param). Inductor
  emits a store loop and a second loop that reads m again (16 B/param), which keeps
  ``rescaled_sgd`` near 1.45× a fused Adam step.
- Adam-HD's hypergradient ``Σ_i c_i Σ (g + wd·θ)·m/(√v + ε_i)`` (:func:`adam_direction_dots`):
  Inductor's reduction is right but reads g, m, v at about 0.8× the time of a whole fused
  Adam step on one thread; this loop (16 independent accumulators per cache block, vector
  sqrt and divide) takes about 0.6× (``benchmarks/optimizer_step.py --threads 1 --clock cpu``).
  With the norms a normalised controller needs (HDM, log-α, Rprop on log α), the same pass
  also sums ``Σ(g + wd·θ)²`` and ``Σ d²`` (:func:`adam_direction_terms`), where the eager path
  rebuilds each d_{t-1} as a tensor.
- The variance controller's per-tensor ``[Σg, Σg²]`` (:func:`sums_and_squares`): eager torch
  reads g twice (``sum``, ``dot``: ~0.45× a fused Adam step) and Inductor's two-output
  reduction is slower still (~0.6×); this loop reads g once.

This module builds them with ``torch.utils.cpp_extension.load_inline`` (a C++ compiler and
ninja; about 30–60 s once per machine and instruction set, then the build folder under
``TORCH_EXTENSIONS_DIR`` is reused) and calls them through torch's own ops.

Arithmetic: compiled with ``-ffp-contract=off``, so ``γ·m`` and ``+ e`` round separately
as the reference's ``mul_`` and ``add_`` do; ``e = g + wd·θ`` rounds twice, where eager's
``add(…, alpha=wd)`` may fuse (a float32 ulp, only with weight decay). A NaN anywhere makes
both bounds NaN, as ``torch.aminmax`` does. The reduction sums in the params' dtype within a
block and in float64 across blocks (another order than the reference's, so a few ulps).
``-fno-math-errno`` lets ``sqrt`` vectorise (nothing here reads errno); the vector flags
follow torch's detected CPU capability, which is part of the build's name. It runs only where
:mod:`gradretention.optim.kernels` says kernels run (the ``compiled`` option), on contiguous
float32/float64 CPU tensors; when the build fails, a warning says why once and the Inductor
kernel takes over.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch
from torch import Tensor

SOURCE = r"""
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <array>
#include <cmath>
#include <limits>
#include <vector>

template <typename T, bool Decayed, bool Bounds>
static void retain_range(T* m, const T* g, const T* p, int64_t begin, int64_t end, T decay, T wd, T* low_out,
                         T* high_out, char* nan_out) {
  T low = std::numeric_limits<T>::infinity(), high = -std::numeric_limits<T>::infinity();
  int nan = 0;
  #pragma omp simd reduction(min : low) reduction(max : high) reduction(| : nan)
  for (int64_t i = begin; i < end; ++i) {
    T effective = g[i];
    if (Decayed) {
      T decay_term = wd * p[i];
      effective = effective + decay_term;
    }
    T scaled = m[i] * decay;
    T value = scaled + effective;
    m[i] = value;
    if (Bounds) {
      T magnitude = std::abs(value);
      low = std::min(low, magnitude);
      high = std::max(high, magnitude);
      nan |= (value != value);
    }
  }
  *low_out = low;
  *high_out = high;
  *nan_out = static_cast<char>(nan);
}

template <typename T, bool Decayed, bool Bounds>
static void retain_one(T* m, const T* g, const T* p, int64_t n, T decay, T wd, T* out) {
  const int64_t grain = 1 << 16;
  const int64_t chunks = (n + grain - 1) / grain;
  std::vector<T> lows(chunks), highs(chunks);
  std::vector<char> nans(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t chunk = first; chunk < last; ++chunk) {
      const int64_t begin = chunk * grain, end = std::min(n, begin + grain);
      retain_range<T, Decayed, Bounds>(m, g, p, begin, end, decay, wd, &lows[chunk], &highs[chunk], &nans[chunk]);
    }
  });
  if (!Bounds) return;
  T low = std::numeric_limits<T>::infinity(), high = -std::numeric_limits<T>::infinity();
  bool nan = false;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    low = std::min(low, lows[chunk]);
    high = std::max(high, highs[chunk]);
    nan = nan || nans[chunk];
  }
  if (nan) low = high = std::numeric_limits<T>::quiet_NaN();
  out[0] = low;
  out[1] = high;
}

template <typename T>
static void retain_dispatch(T* m, const T* g, const T* p, int64_t n, T decay, T wd, bool decayed, bool bounds,
                            T* out) {
  if (decayed && bounds) retain_one<T, true, true>(m, g, p, n, decay, wd, out);
  else if (decayed) retain_one<T, true, false>(m, g, p, n, decay, wd, out);
  else if (bounds) retain_one<T, false, true>(m, g, p, n, decay, wd, out);
  else retain_one<T, false, false>(m, g, p, n, decay, wd, out);
}

template <typename T, bool Decayed>
static double adam_dots_one(const T* g, const T* p, const T* m, const T* v, int64_t n, T eps, T wd) {
  // 16 (float) or 8 (double) independent lanes per block: the divides pipeline and vectorise.
  constexpr int lanes = 64 / sizeof(T);
  const int64_t grain = 1 << 14;
  const int64_t chunks = (n + grain - 1) / grain;
  std::vector<double> parts(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t chunk = first; chunk < last; ++chunk) {
      const int64_t begin = chunk * grain, end = std::min(n, begin + grain);
      T acc[lanes] = {};
      int64_t i = begin;
      for (; i + lanes <= end; i += lanes) {
        #pragma omp simd
        for (int k = 0; k < lanes; ++k) {
          T effective = g[i + k];
          if (Decayed) {
            T decay_term = wd * p[i + k];
            effective = effective + decay_term;
          }
          T numerator = effective * m[i + k];
          acc[k] += numerator / (std::sqrt(v[i + k]) + eps);
        }
      }
      double sum = 0;
      for (; i < end; ++i) {
        T effective = g[i];
        if (Decayed) {
          T decay_term = wd * p[i];
          effective = effective + decay_term;
        }
        T numerator = effective * m[i];
        sum += numerator / (std::sqrt(v[i]) + eps);
      }
      for (int k = 0; k < lanes; ++k) sum += acc[k];
      parts[chunk] = sum;
    }
  });
  double total = 0;
  for (double part : parts) total += part;
  return total;
}

template <typename T, bool Decayed>
static std::array<double, 3> adam_terms_one(const T* g, const T* p, const T* m, const T* v, int64_t n, T eps, T wd) {
  // As adam_dots_one, with q = m/(√v + ε) formed once: Σ e·q, Σ e², Σ q² (e = g + wd·θ).
  constexpr int lanes = 64 / sizeof(T);
  const int64_t grain = 1 << 14;
  const int64_t chunks = (n + grain - 1) / grain;
  std::vector<std::array<double, 3>> parts(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t chunk = first; chunk < last; ++chunk) {
      const int64_t begin = chunk * grain, end = std::min(n, begin + grain);
      T dots[lanes] = {}, grads[lanes] = {}, directions[lanes] = {};
      int64_t i = begin;
      for (; i + lanes <= end; i += lanes) {
        #pragma omp simd
        for (int k = 0; k < lanes; ++k) {
          T effective = g[i + k];
          if (Decayed) {
            T decay_term = wd * p[i + k];
            effective = effective + decay_term;
          }
          T q = m[i + k] / (std::sqrt(v[i + k]) + eps);
          T dot = effective * q, grad_sq = effective * effective, direction_sq = q * q;
          dots[k] += dot;
          grads[k] += grad_sq;
          directions[k] += direction_sq;
        }
      }
      std::array<double, 3> sum = {0, 0, 0};
      for (; i < end; ++i) {
        T effective = g[i];
        if (Decayed) {
          T decay_term = wd * p[i];
          effective = effective + decay_term;
        }
        T q = m[i] / (std::sqrt(v[i]) + eps);
        T dot = effective * q, grad_sq = effective * effective, direction_sq = q * q;
        sum[0] += dot;
        sum[1] += grad_sq;
        sum[2] += direction_sq;
      }
      for (int k = 0; k < lanes; ++k) {
        sum[0] += dots[k];
        sum[1] += grads[k];
        sum[2] += directions[k];
      }
      parts[chunk] = sum;
    }
  });
  std::array<double, 3> total = {0, 0, 0};
  for (const auto& part : parts)
    for (int j = 0; j < 3; ++j) total[j] += part[j];
  return total;
}

torch::Tensor adam_direction_terms(std::vector<torch::Tensor> grads, std::vector<torch::Tensor> params,
                                   std::vector<torch::Tensor> exp_avgs, std::vector<torch::Tensor> exp_avg_sqs,
                                   std::vector<double> eps_scaled, std::vector<double> scales,
                                   double weight_decay) {
  auto result = torch::zeros({3}, torch::dtype(torch::kFloat64));
  double* out = result.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(grads[0].scalar_type(), "adam_direction_terms", [&] {
    for (size_t i = 0; i < grads.size(); ++i) {
      const scalar_t eps = static_cast<scalar_t>(eps_scaled[i]), wd = static_cast<scalar_t>(weight_decay);
      const scalar_t* g = grads[i].data_ptr<scalar_t>();
      const scalar_t* p = params[i].data_ptr<scalar_t>();
      const scalar_t* m = exp_avgs[i].data_ptr<scalar_t>();
      const scalar_t* v = exp_avg_sqs[i].data_ptr<scalar_t>();
      const int64_t n = grads[i].numel();
      auto terms = weight_decay != 0 ? adam_terms_one<scalar_t, true>(g, p, m, v, n, eps, wd)
                                     : adam_terms_one<scalar_t, false>(g, p, m, v, n, eps, wd);
      out[0] += scales[i] * terms[0];
      out[1] += terms[1];
      out[2] += scales[i] * scales[i] * terms[2];
    }
  });
  return result;
}

torch::Tensor adam_direction_dots(std::vector<torch::Tensor> grads, std::vector<torch::Tensor> params,
                                  std::vector<torch::Tensor> exp_avgs, std::vector<torch::Tensor> exp_avg_sqs,
                                  std::vector<double> eps_scaled, std::vector<double> scales,
                                  double weight_decay) {
  double total = 0;
  AT_DISPATCH_FLOATING_TYPES(grads[0].scalar_type(), "adam_direction_dots", [&] {
    for (size_t i = 0; i < grads.size(); ++i) {
      const scalar_t eps = static_cast<scalar_t>(eps_scaled[i]), wd = static_cast<scalar_t>(weight_decay);
      const scalar_t* g = grads[i].data_ptr<scalar_t>();
      const scalar_t* p = params[i].data_ptr<scalar_t>();
      const scalar_t* m = exp_avgs[i].data_ptr<scalar_t>();
      const scalar_t* v = exp_avg_sqs[i].data_ptr<scalar_t>();
      const int64_t n = grads[i].numel();
      total += scales[i] * (weight_decay != 0 ? adam_dots_one<scalar_t, true>(g, p, m, v, n, eps, wd)
                                              : adam_dots_one<scalar_t, false>(g, p, m, v, n, eps, wd));
    }
  });
  return torch::tensor(total, torch::dtype(torch::kFloat64));
}

template <typename T>
static void sums_one(const T* g, int64_t n, double* out) {
  constexpr int lanes = 64 / sizeof(T);
  const int64_t grain = 1 << 14;
  const int64_t chunks = (n + grain - 1) / grain;
  std::vector<double> sums(chunks), squares(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    for (int64_t chunk = first; chunk < last; ++chunk) {
      const int64_t begin = chunk * grain, end = std::min(n, begin + grain);
      T sum[lanes] = {}, square[lanes] = {};
      int64_t i = begin;
      for (; i + lanes <= end; i += lanes) {
        #pragma omp simd
        for (int k = 0; k < lanes; ++k) {
          T value = g[i + k];
          T value_squared = value * value;
          sum[k] += value;
          square[k] += value_squared;
        }
      }
      double total = 0, total_squares = 0;
      for (; i < end; ++i) {
        T value_squared = g[i] * g[i];
        total += g[i];
        total_squares += value_squared;
      }
      for (int k = 0; k < lanes; ++k) {
        total += sum[k];
        total_squares += square[k];
      }
      sums[chunk] = total;
      squares[chunk] = total_squares;
    }
  });
  out[0] = out[1] = 0;
  for (int64_t chunk = 0; chunk < chunks; ++chunk) {
    out[0] += sums[chunk];
    out[1] += squares[chunk];
  }
}

torch::Tensor sums_and_squares(std::vector<torch::Tensor> flats) {
  auto result = torch::empty({static_cast<int64_t>(flats.size()), 2}, torch::dtype(torch::kFloat64));
  double* out = result.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(flats[0].scalar_type(), "sums_and_squares", [&] {
    for (size_t i = 0; i < flats.size(); ++i) sums_one<scalar_t>(flats[i].data_ptr<scalar_t>(), flats[i].numel(), out + 2 * i);
  });
  return result;
}

torch::Tensor retain_and_bounds(std::vector<torch::Tensor> retained, std::vector<torch::Tensor> grads,
                                std::vector<torch::Tensor> params, double decay, double weight_decay,
                                bool bounds) {
  auto result = torch::empty({static_cast<int64_t>(retained.size()), 2}, retained[0].options());
  AT_DISPATCH_FLOATING_TYPES(retained[0].scalar_type(), "retain_and_bounds", [&] {
    scalar_t* out = result.data_ptr<scalar_t>();
    for (size_t i = 0; i < retained.size(); ++i) {
      retain_dispatch<scalar_t>(retained[i].data_ptr<scalar_t>(), grads[i].data_ptr<scalar_t>(),
                                params[i].data_ptr<scalar_t>(), retained[i].numel(), static_cast<scalar_t>(decay),
                                static_cast<scalar_t>(weight_decay), weight_decay != 0, bounds, out + 2 * i);
    }
  });
  return result;
}
"""

VECTOR_FLAGS = {"AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
                "AVX2": ["-mavx2", "-mfma"]}
"""Compiler flags per torch CPU capability (``torch.backends.cpu.get_cpu_capability()``): explicit
sets rather than ``-march=native``, so a build shared through a home folder runs on any CPU of
the capability its name carries."""

NAME = "gradretention_native_v5"
"""The extension's name; the build's folder adds the CPU capability (``…_v5_avx512``)."""
_STATE: dict[str, Any] = {}


def load() -> Any | None:
    """The built extension module, or None (with one warning) when it cannot be built here."""
    if "module" not in _STATE:
        _STATE["module"] = None
        capability = torch.backends.cpu.get_cpu_capability()
        try:
            from torch.utils.cpp_extension import load_inline  # noqa: PLC0415

            _STATE["module"] = load_inline(
                name=f"{NAME}_{capability.lower()}", cpp_sources=[SOURCE],
                functions=["retain_and_bounds", "adam_direction_dots", "adam_direction_terms", "sums_and_squares"],
                # -fopenmp: at::parallel_for's OpenMP pragmas (and the simd reductions) need it.
                extra_cflags=["-O3", "-fopenmp", "-ffp-contract=off", "-fno-math-errno",
                              *VECTOR_FLAGS.get(capability, [])],
                extra_ldflags=["-fopenmp"], verbose=False)
        except (OSError, RuntimeError, ImportError) as error:
            warnings.warn(f"gradretention could not build its C++ kernels ({type(error).__name__}: "
                          f"{str(error)[:200]}); the Inductor kernels take their passes "
                          "instead", RuntimeWarning, stacklevel=3)
    return _STATE["module"]


def eligible(tensors: list[Tensor]) -> bool:
    """Contiguous float32/float64 CPU tensors of one dtype."""
    first = tensors[0]
    return (first.device.type == "cpu" and first.dtype in (torch.float32, torch.float64)
            and all(t.dtype == first.dtype and t.device == first.device and t.is_contiguous() for t in tensors))


def retain_and_bounds(retained: list[Tensor], grads: list[Tensor], params: list[Tensor], decay: float,
                      weight_decay: float, bounds: bool) -> Tensor | None:
    """``m ← γ m + (g + wd·θ)`` in place and per tensor ``[min|m|, max|m|]`` (n × 2) in one loop.

    Returns None (nothing written) when the tensors are not eligible or the kernel cannot
    be built; the n × 2 tensor is garbage when ``bounds`` is False.
    """
    if not retained or not eligible([*retained, *grads, *params]):
        return None
    module = load()
    if module is None:
        return None
    return module.retain_and_bounds(retained, grads, params, float(decay), float(weight_decay), bool(bounds))


def adam_direction_dots(grads: list[Tensor], params: list[Tensor], exp_avgs: list[Tensor], exp_avg_sqs: list[Tensor],
                        constants: list[tuple[float, float]], weight_decay: float) -> Tensor | None:
    """``Σ_i c_i Σ (g_i + wd·θ_i)·m_i/(√v_i + ε_i)`` as a float64 0-dim tensor, ``constants[i] = (ε_i, c_i)``.

    Returns None when the tensors are not eligible or the kernel cannot be built.
    """
    if not grads or not eligible([*grads, *params, *exp_avgs, *exp_avg_sqs]):
        return None
    module = load()
    if module is None:
        return None
    return module.adam_direction_dots(grads, params, exp_avgs, exp_avg_sqs, [c[0] for c in constants],
                                      [c[1] for c in constants], float(weight_decay))


def sums_and_squares(flats: list[Tensor]) -> Tensor | None:
    """Per tensor ``[Σg, Σg²]`` (n × 2, in the tensors' dtype, summed in float64 across blocks) in one read.

    Returns None when the tensors are not eligible or the kernel cannot be built.
    """
    if not flats or not eligible(flats):
        return None
    module = load()
    if module is None:
        return None
    return module.sums_and_squares(flats).to(flats[0].dtype)


def adam_direction_terms(grads: list[Tensor], params: list[Tensor], exp_avgs: list[Tensor],
                         exp_avg_sqs: list[Tensor], constants: list[tuple[float, float]],
                         weight_decay: float) -> Tensor | None:
    """``[h, Σ‖g_i + wd·θ_i‖², Σ‖d_i‖²]`` (float64) in one pass, ``d_i = c_i·m_i/(√v_i + ε_i)``.

    ``h`` is :func:`adam_direction_dots`' sum; ``constants[i] = (ε_i, c_i)``. Returns None when
    the tensors are not eligible or the kernel cannot be built.
    """
    if not grads or not eligible([*grads, *params, *exp_avgs, *exp_avg_sqs]):
        return None
    module = load()
    if module is None:
        return None
    return module.adam_direction_terms(grads, params, exp_avgs, exp_avg_sqs, [c[0] for c in constants],
                                       [c[1] for c in constants], float(weight_decay))
