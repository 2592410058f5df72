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
  rebuilds each d_{t-1} as a tensor; for a stored d_{t-1} (SGD, Adagrad, RMSprop rules),
  :func:`stored_direction_terms` sums ``Σ e·d``, ``Σ e²``, ``Σ d²`` in one read of g and d.
- The variance controller's per-tensor ``[Σg, Σg²]`` (:func:`sums_and_squares`): eager torch
  reads g twice (``sum``, ``dot``: ~0.45× a fused Adam step) and Inductor's two-output
  reduction is slower still (~0.6×); this loop reads g once.
- EnhancedSGD's update with its per-entry Gaussian noise (:func:`enhanced_update`, source in
  :mod:`~gradretention.optim.native_enhanced_source`): Inductor computes one hash chain,
  ``log``, ``sqrt`` and ``cos`` per entry with torch's vector math (~2 fused Adam steps of
  arithmetic at 10 M parameters); this loop makes both outputs of each Box–Muller pair with
  vectorised float32 polynomials, inside the loop that updates the pair's two entries.

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

import re
import warnings
from typing import Any

import torch
from torch import Tensor

from gradretention.optim.native_enhanced_source import ENHANCED_SOURCE
from gradretention.optim.native_source import SOURCE


VECTOR_FLAGS = {"AVX512": ["-mavx512f", "-mavx512dq", "-mavx512vl", "-mavx512bw", "-mavx2", "-mfma"],
                "AVX2": ["-mavx2", "-mfma"]}
"""Compiler flags per torch CPU capability (``torch.backends.cpu.get_cpu_capability()``): explicit
sets rather than ``-march=native``, so a build shared through a home folder runs on any CPU of
the capability its name carries."""

NAME = "gradretention_native_v7"
"""The extension's name; the build's folder adds the CPU capability (``…_v7_avx512``)."""
_STATE: dict[str, Any] = {}


def load() -> Any | None:
    """The built extension module, or None (with one warning) when it cannot be built here."""
    if "module" not in _STATE:
        _STATE["module"] = None
        capability = torch.backends.cpu.get_cpu_capability()
        suffix = re.sub(r"\W+", "_", capability.lower())  # e.g. "avx512", "no_avx": a valid folder name
        try:
            from torch.utils.cpp_extension import load_inline  # noqa: PLC0415

            _STATE["module"] = load_inline(
                name=f"{NAME}_{suffix}", cpp_sources=[SOURCE + ENHANCED_SOURCE],
                functions=["retain_and_bounds", "adam_direction_dots", "adam_direction_terms", "stored_direction_terms",
                           "sums_and_squares", "enhanced_update"],
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


def stored_direction_terms(grads: list[Tensor], params: list[Tensor], directions: list[Tensor],
                           weight_decay: float) -> Tensor | None:
    """``[Σ⟨e, d⟩, Σ‖e‖², Σ‖d‖²]`` (float64) in one read of g and d, ``e = g + wd·θ``.

    Returns None when the tensors are not eligible or the kernel cannot be built.
    """
    if not grads or not eligible([*grads, *params, *directions]):
        return None
    module = load()
    if module is None:
        return None
    return module.stored_direction_terms(grads, params, directions, float(weight_decay))


def enhanced_update(params: list[Tensor], grads: list[Tensor], buffers: list[Tensor], means: Tensor,
                    starts: list[int] | None, keys: tuple[int, int, int], step: dict[str, float]) -> bool:
    """EnhancedSGD's ``b ← μ b + g̃``, ``θ ← θ − α b`` in place, ``g̃`` built in the same loop.

    ``g̃ = clamp(g + wd·θ − mean_i, ±clip)·grad_scale + noise_scale·z`` with ``step``'s values
    (``alpha``, ``momentum``, ``clip`` (∞: off), ``grad_scale``, ``noise_scale``,
    ``weight_decay``); ``means[i]`` is 0 for a tensor that is not centred. With ``starts``
    (each tensor's first entry in the noise stream) ``z`` is the stream of
    :mod:`~gradretention.optim.algorithms.enhanced_noise` under ``keys``; None: no noise.
    Returns False (nothing written) when the tensors are not eligible or the kernel cannot be built.
    """
    if not params or not eligible([*params, *grads, *buffers, means]):
        return False
    module = load()
    if module is None:
        return False
    module.enhanced_update(params, grads, buffers, means, starts or [0] * len(params), list(keys), step["alpha"],
                           step["momentum"], step["clip"], step["grad_scale"], step["noise_scale"],
                           step["weight_decay"], starts is not None)
    return True
