"""The C++ of :mod:`gradretention.optim.native`: one translation unit, built once per machine.

The sum loops keep 64 bytes of independent accumulators per cache block (16 float or 8 double
lanes) so the compiler vectorises it without reassociating (``-ffp-contract=off``), sums the
blocks in float64, and splits the blocks over threads with ``at::parallel_for``; the result
does not depend on the thread count.
"""

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

template <typename T, bool Decayed>
static std::array<double, 3> stored_terms_one(const T* g, const T* p, const T* d, int64_t n, T wd) {
  // Σ e·d, Σ e², Σ d² with e = g + wd·θ: one read of g and d.
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
          T dot = effective * d[i + k], grad_sq = effective * effective, direction_sq = d[i + k] * d[i + k];
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
        T dot = effective * d[i], grad_sq = effective * effective, direction_sq = d[i] * d[i];
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

torch::Tensor stored_direction_terms(std::vector<torch::Tensor> grads, std::vector<torch::Tensor> params,
                                     std::vector<torch::Tensor> directions, double weight_decay) {
  auto result = torch::zeros({3}, torch::dtype(torch::kFloat64));
  double* out = result.data_ptr<double>();
  AT_DISPATCH_FLOATING_TYPES(grads[0].scalar_type(), "stored_direction_terms", [&] {
    const scalar_t wd = static_cast<scalar_t>(weight_decay);
    for (size_t i = 0; i < grads.size(); ++i) {
      const scalar_t* g = grads[i].data_ptr<scalar_t>();
      const scalar_t* p = params[i].data_ptr<scalar_t>();
      const scalar_t* d = directions[i].data_ptr<scalar_t>();
      auto terms = weight_decay != 0 ? stored_terms_one<scalar_t, true>(g, p, d, grads[i].numel(), wd)
                                     : stored_terms_one<scalar_t, false>(g, p, d, grads[i].numel(), wd);
      for (int j = 0; j < 3; ++j) out[j] += terms[j];
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
