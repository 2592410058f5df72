"""Inductor-compiled kernels for the fast paths: one pass over memory where eager torch needs several.

Eager torch runs one kernel per op, so a rule that is ``sqrt``, ``add``, ``div``, ``dot``
streams its operands (or a cache block of them) once per op. ``torch.compile`` fuses the
chain into one C++/OpenMP loop on the CPU (Triton on CUDA), which reads each operand once.
The kernels here are the maths of the reference loops, written as plain torch functions:

- :func:`adam_direction_dots` — Adam-HD's ``h = Σ⟨g + wd·θ, d_{t-1}⟩`` with ``d`` rebuilt from
  the moments, one pass over g, m, v (the issue's floor: 12 B/param before Adam's 28);
- :func:`retain_and_bounds` / :func:`retained_update` — RescaledSGD's two passes.

When they run (the group option ``compiled``):

- ``False``: never (the eager fast path or the reference loop);
- ``True``: from the first step (the first call compiles, ~2–10 s on 2 cores, then the
  process and the on-disk Inductor cache reuse the code);
- ``None`` (default, "auto"): on the CPU, for a group of at least :data:`COMPILE_MIN_NUMEL`
  entries, from its step :data:`COMPILE_AFTER_STEPS` + 1 on. A short run never pays the
  compile; a long run of a large model pays it once and saves a pass per step thereafter.
  The switch step is fixed, so two runs of the same script take the same path at the same
  step and stay bit-identical to each other.

Without a working compiler (no C++ toolchain, or Triton on CUDA) ``None`` stays eager with
one warning and ``True`` raises. Elementwise kernels reproduce the eager roundings (Inductor
compiles with ``-ffp-contract=off`` and keeps the op order); reductions sum in another order,
so h differs from the eager path by float rounding: ``tests/optim/test_compiled.py``.
"""

from __future__ import annotations

import shutil
import warnings
from typing import Any, Callable

import torch
from torch import Tensor

COMPILE_MIN_NUMEL = 1 << 22
"""Entries a group needs before "auto" compiles its kernels (≈4 M: below it a step is too
short for one pass less to repay a compile within a typical run)."""

COMPILE_AFTER_STEPS = 200
"""Steps a group takes on the eager path before "auto" switches it to the compiled kernels."""

SETTINGS = (None, True, False)

_KERNELS: dict[str, Callable[..., Any]] = {}
_BROKEN: dict[str, str] = {}
_AVAILABLE: dict[str, bool] = {}


def wanted(setting: bool | None, numel: int, device: torch.device, group_step: int) -> bool:
    """Whether a group with ``numel`` entries on ``device`` runs its compiled kernels at ``group_step``.

    Raises:
        RuntimeError: ``setting`` is True and this device has no working compiler.
    """
    if setting is False:
        return False
    if setting is True:
        if not available(device):
            raise RuntimeError(f"compiled=True needs torch.compile on {device.type}: "
                               f"{_why_unavailable(device)}; use compiled=None or False")
        return True
    return (device.type == "cpu" and numel >= COMPILE_MIN_NUMEL and group_step > COMPILE_AFTER_STEPS
            and available(device))


def available(device: torch.device) -> bool:
    """Whether torch.compile can build kernels for ``device`` here (checked once per device type)."""
    if device.type not in _AVAILABLE:
        _AVAILABLE[device.type] = _why_unavailable(device) == ""
    return _AVAILABLE[device.type]


def _why_unavailable(device: torch.device) -> str:
    if device.type == "cpu":
        try:
            from torch._inductor import config  # noqa: PLC0415
        except ImportError as error:  # pragma: no cover - a torch build without Inductor
            return f"torch._inductor does not import ({error})"
        compiler = config.cpp.cxx[1] if isinstance(config.cpp.cxx, tuple) else config.cpp.cxx
        if not any(shutil.which(name) for name in ([compiler] if compiler else ["g++", "c++", "clang++"])):
            return "no C++ compiler on PATH (Inductor builds CPU kernels with g++/clang++)"
        return ""
    if device.type == "cuda":
        try:
            import triton  # noqa: F401, PLC0415
        except ImportError:
            return "Triton is not installed"
        return ""
    return f"no Inductor backend for device type {device.type!r}"


def run(name: str, function: Callable[..., Any], *args: Any) -> Any:
    """``function(*args)`` through its compiled twin; None if it cannot be compiled here.

    A compile error (a broken toolchain, say) warns once per kernel and the caller takes
    its eager path: compilation finishes before the kernel runs, so nothing was mutated.
    """
    if name in _BROKEN:
        return None
    kernel = _KERNELS.get(name)
    if kernel is None:
        kernel = _KERNELS[name] = torch.compile(function, dynamic=False, fullgraph=True)
    try:
        return kernel(*args)
    except Exception as error:  # noqa: BLE001 - any compiler failure means: stay eager
        if not _is_compile_error(error):
            raise
        _BROKEN[name] = f"{type(error).__name__}: {error}"
        warnings.warn(f"gradretention could not compile kernel {name!r} ({_BROKEN[name][:200]}); "
                      "it runs eager from now on", RuntimeWarning, stacklevel=3)
        return None


def _is_compile_error(error: Exception) -> bool:
    from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported  # noqa: PLC0415

    return isinstance(error, (BackendCompilerFailed, Unsupported, TorchRuntimeError, OSError))


# --- The kernels: plain torch code, traced by Dynamo; scalars that vary arrive as 0-dim tensors
# (a Python float would be baked into the code and recompile at every new value). ---


def _adam_direction_dots(grads: list[Tensor], params: list[Tensor], exp_avgs: list[Tensor],
                         exp_avg_sqs: list[Tensor], eps_scaled: Tensor, scales: Tensor,
                         weight_decay: Tensor, decayed: bool) -> Tensor:
    terms = []
    for index, (grad, param, m, v) in enumerate(zip(grads, params, exp_avgs, exp_avg_sqs)):
        effective = grad + weight_decay * param if decayed else grad
        terms.append((effective * m / (v.sqrt() + eps_scaled[index])).sum(dtype=scales.dtype) * scales[index])
    return torch.stack(terms).sum()


def adam_direction_dots(grads: list[Tensor], params: list[Tensor], states: list[dict[str, Any]],
                        eps_scaled: list[float], scales: list[float], weight_decay: float) -> Tensor | None:
    """``Σ_i c_i Σ (g_i + wd·θ_i)·m_i/(√v_i + ε_i)`` in one pass (``c_i = √c2/c1``, ``ε_i = ε√c2``)."""
    accumulate = torch.float64 if params[0].dtype == torch.float64 else torch.float32
    device = params[0].device
    return run("adam_direction_dots", _adam_direction_dots, grads, params,
               [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states],
               torch.tensor(eps_scaled, dtype=params[0].dtype, device=device),
               torch.tensor(scales, dtype=accumulate, device=device),
               torch.tensor(weight_decay, dtype=params[0].dtype, device=device), weight_decay != 0)


def _retain_and_bounds(retained: list[Tensor], grads: list[Tensor], params: list[Tensor], decay: Tensor,
                       weight_decay: Tensor, decayed: bool, bounds: bool) -> Tensor:
    found = []
    for m, grad, param in zip(retained, grads, params):
        # addcmul, as eager's add with alpha: Inductor lowers both to one fma, eager's rounding.
        effective = torch.addcmul(grad, param, weight_decay) if decayed else grad
        m.mul_(decay).add_(effective)
        if bounds:
            magnitude = m.abs()
            found.append(torch.stack([magnitude.amin(), magnitude.amax()]))
    # Always an output: Dynamo hands back None for a graph without one, which means "not compiled" here.
    return torch.stack(found) if bounds else decay


def retain_and_bounds(retained: list[Tensor], grads: list[Tensor], params: list[Tensor], decay: float,
                      weight_decay: float, bounds: bool) -> tuple[bool, Tensor | None]:
    """``m ← γ m + (g + wd·θ)`` in place and, with ``bounds``, per tensor ``[min|m|, max|m|]`` (n × 2).

    The reference's two roundings (``γ·m``, then ``+ g``). Returns ``(done, bounds)``;
    ``done`` is False when the kernel cannot be compiled here (nothing was written then).
    """
    dtype, device = params[0].dtype, params[0].device
    result = run("retain_and_bounds", _retain_and_bounds, retained, grads, params,
                 torch.tensor(decay, dtype=dtype, device=device),
                 torch.tensor(weight_decay, dtype=dtype, device=device), weight_decay != 0, bounds)
    if result is None:
        return False, None
    return True, result if bounds else None


def _retained_update(params: list[Tensor], retained: list[Tensor], bounds: Tensor, span: Tensor,
                     floor: Tensor, flat_spread: Tensor, sign_update: bool, rescale: bool) -> Tensor:
    for index, (param, m) in enumerate(zip(params, retained)):
        direction = m.sign() if sign_update else m
        if rescale:
            low, high = bounds[index, 0], bounds[index, 1]
            spread = high - low
            denominator = torch.where(spread > flat_spread * high, spread, torch.full_like(spread, float("inf")))
            rates = (m.abs() - low) / denominator * span + floor
            param.addcmul_(direction, rates, value=-1)
        else:
            param.sub_(direction * span)
    return span


def retained_update(params: list[Tensor], retained: list[Tensor], bounds: Tensor | None, lr: float, floor: float,
                    update: str, rescale: bool, flat_spread: float) -> bool:
    """θ ← θ − η ⊙ u, the reference's ``η = (|m| − low)/spread·(lr − floor) + floor``, in one pass.

    ``bounds`` is :func:`retain_and_bounds`'s n × 2 tensor (device, no host sync); ``spread``
    becomes ``+inf`` for (nearly) equal magnitudes, so η is the floor there, as in
    :func:`~gradretention.optim.retention.retention_rates`. Without ``rescale`` η = ``lr``.
    Returns False when the kernel cannot be compiled here.
    """
    dtype, device = params[0].dtype, params[0].device
    if bounds is None:
        bounds = torch.zeros((len(params), 2), dtype=dtype, device=device)
    # lr − floor in double, as the reference's Python scalar, then one rounding to the dtype.
    span = lr - floor if rescale else lr
    done = run("retained_update", _retained_update, params, retained, bounds,
               torch.tensor(span, dtype=dtype, device=device), torch.tensor(floor, dtype=dtype, device=device),
               torch.tensor(flat_spread, dtype=dtype, device=device), update == "sign", rescale)
    return done is not None
