"""What every algorithm's fast paths share: the compile policy, scratch blocks and eligibility.

Each rule (:mod:`.rules`) and algorithm (:mod:`.algorithms`) keeps its reference loop, its
eager fused path and its compiled twin side by side; this module decides *when* the fast ones
run and gives them their common pieces: :data:`CHUNK` / :data:`BLOCK` (cache-sized work
blocks), :func:`scratch` (a reused block per device and dtype), :func:`scalar_like` (kernel
scalars as tensors), :func:`uniform_dense` and :func:`kernels_exact` (eligibility), and
:func:`run` (compile once, fall back to eager on a compiler failure).

Inductor-compiled kernels: one pass over memory where eager torch needs several.

Eager torch runs one kernel per op, so a rule that is ``sqrt``, ``add``, ``div``, ``dot``
streams its operands (or a cache block of them) once per op. ``torch.compile`` fuses the
chain into one C++/OpenMP loop on the CPU (Triton on CUDA), which reads each operand once.
The compiled twins (``_compiled_*`` in each rule's module) are the maths of the reference loops
written as plain torch functions: Adam-HD's hypergradient reduction (one pass over g, m, v, the
issue's floor), the Adagrad / RMSprop / SGD updates that also write d_t for the next
hypergradient, RescaledSGD's two passes and EnhancedSGD's statistics and update. This
module decides when they run and compiles them.

When they run (the group option ``compiled``):

- ``False``: never (the eager fast path or the reference loop);
- ``True``: from the first step (the first call compiles: 6–18 s on 2 cores with an empty
  Inductor cache, 2–6 s when an earlier process left the code on disk, then nothing for
  the rest of the process; ``benchmarks/compile_cost.py``);
- ``None`` (default, "auto"): on the CPU, for a group of at least :data:`COMPILE_MIN_NUMEL`
  entries, from its step :data:`COMPILE_AFTER_STEPS` + 1 on. A short run never pays the
  compile; a long run of a large model pays it once and saves a pass per step thereafter.
  The switch step is fixed, so two runs of the same script take the same path at the same
  step and stay bit-identical to each other.

Without a working compiler (no C++ toolchain; Triton on CUDA) ``None`` stays eager and
``True`` raises; a kernel whose compile fails at run time warns once and the step goes on
eagerly. The kernels keep the reference's op order; eager torch fuses the multiply-adds of
``add(…, alpha=)`` and ``addcmul`` and Inductor does not (``-ffp-contract=off``), and
reductions sum in another order, so a step agrees with the reference loop to a few float32
ulps (``tests/optim/test_compiled.py``), not bit for bit.
"""

from __future__ import annotations

import shutil
import warnings
from collections import Counter
from typing import Any, Callable

import torch
from torch import Tensor

COMPILE_MIN_NUMEL = 1 << 22
"""Entries a group needs before "auto" compiles its kernels (≈4 M: below it a step is too
short for one pass less to repay a compile within a typical run)."""

COMPILE_AFTER_STEPS = 200
"""Steps a group takes on the eager path before "auto" switches it to the compiled kernels."""

DTYPES = (torch.float32, torch.float64)
"""Param dtypes the kernels serve (their scalars are of the params' dtype)."""

RECOMPILE_LIMIT = 256
"""Compiled variants kept per kernel (param shapes × dtype × flags); past it the kernel fails to
compile and warns, and its callers run eagerly."""

CALLS: Counter[str] = Counter()
"""Calls per kernel name in this process that ran compiled (for telemetry and tests)."""

_KERNELS: dict[str, Callable[..., Any]] = {}
_BROKEN: dict[str, str] = {}
_AVAILABLE: dict[str, bool] = {}


def wanted(setting: bool | None, params: list[torch.Tensor], group_step: int) -> bool:
    """Whether a group of ``params`` (non-empty, one device and dtype) runs compiled kernels at ``group_step``.

    Raises:
        RuntimeError: ``setting`` is True and this device has no working compiler, or the
            params are not float32/float64 (half-precision groups stay on the eager paths).
    """
    if setting is False or not params:
        return False
    device, dtype = params[0].device, params[0].dtype
    if setting is True:
        check_compiled(True, params)
        return True
    return (device.type == "cpu" and dtype in DTYPES and group_step > COMPILE_AFTER_STEPS
            and sum(p.numel() for p in params) >= COMPILE_MIN_NUMEL and available(device))


def check_compiled(setting: bool | None, params: list[torch.Tensor]) -> None:
    """For ``compiled=True``: ``RuntimeError`` without a compiler for the params' device, or for params
    that are not float32/float64 (half precision stays on the eager paths). Run at construction
    and again at each step (a model may move or change dtype in between)."""
    if setting is not True:
        return
    for param in params:
        if not available(param.device):
            raise RuntimeError(f"compiled=True needs torch.compile on {param.device.type}: "
                               f"{_why_unavailable(param.device)}; use compiled=None or False")
        if param.dtype not in DTYPES:
            raise RuntimeError(f"compiled=True supports float32 and float64 params, got {param.dtype}; "
                               "use compiled=None or False")


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
        # Each model, dtype and flag set is one more graph of the same function; torch's default
        # limit of 8 per function would make a long-lived process (a sweep worker) fail hard.
        with torch._dynamo.config.patch(recompile_limit=RECOMPILE_LIMIT):
            result = kernel(*args)
    except Exception as error:  # noqa: BLE001 - any compiler failure means: stay eager
        if not _is_compile_error(error):
            raise
        _BROKEN[name] = f"{type(error).__name__}: {error}"
        warnings.warn(f"gradretention could not compile kernel {name!r} ({_BROKEN[name][:200]}); "
                      "it runs eager from now on", RuntimeWarning, stacklevel=3)
        return None
    CALLS[name] += 1
    return result


def _is_compile_error(error: Exception) -> bool:
    from torch._dynamo.exc import BackendCompilerFailed, TorchRuntimeError, Unsupported  # noqa: PLC0415

    return isinstance(error, (BackendCompilerFailed, Unsupported, TorchRuntimeError, OSError))


# --- Shared pieces of the eager fast paths. ---

CHUNK = 1 << 20
"""Elements per reduction chunk (4 MiB of float32, one reused scratch block that stays in the
last-level cache). Measured at 10 M params on 2 cores: 1<<14 → 4.6×, 1<<16 → 2.8×,
1<<18 → 2.5×, 1<<20 → 2.5× fused Adam's time for Adam-HD: per-op overhead dominates small chunks."""

BLOCK = 1 << 20
"""Elements per block of a per-tensor temporary: 4 MiB of float32, so the temporary and the
matching slices of the state it is combined with stay in cache between the ops."""

EXACT_DTYPES = (torch.float32, torch.float64)
"""Param dtypes torch's fused kernels serve here. Half precision takes the reference loop: torch's
CPU ``_fused_sgd_`` half kernel is broken in torch 2.13 (after 20 bfloat16 steps its error against
float64 is 15× the reference loop's and reruns of one script disagree), and a hypergradient's
dot products would be accumulated in half precision."""

KERNEL_DEVICES = ("cpu", "cuda")
"""Device types with torch's fused Adam/SGD kernels (``meta`` and others take the reference loop)."""

_SCRATCH: dict[tuple[torch.device, torch.dtype], Tensor] = {}


def tracing() -> bool:
    """Whether torch.compile is tracing: the reference loop runs then (Inductor fuses it), since
    torch's fused kernels have no functional form to trace and host reads would break the graph."""
    return torch.compiler.is_compiling()


def kernels_exact(param: Tensor) -> bool:
    """Whether torch's fused kernels may run a group whose params look like ``param``."""
    return param.dtype in EXACT_DTYPES and param.device.type in KERNEL_DEVICES


def uniform_dense(params: list[Tensor]) -> bool:
    """Non-empty, dense, contiguous params and grads of one floating dtype on one device."""
    if not params:
        return False
    first = params[0]
    if first.dtype not in (torch.float32, torch.float64, torch.float16, torch.bfloat16):
        return False
    return all(p.device == first.device and p.dtype == first.dtype and p.is_contiguous()
               and p.grad.dtype == p.dtype and p.grad.is_contiguous() and not p.grad.is_sparse for p in params)


def scratch(like: Tensor, size: int) -> Tensor:
    """A reused CHUNK-sized buffer per device and dtype (allocating per chunk costs page faults)."""
    key = (like.device, like.dtype)
    buffer = _SCRATCH.get(key)
    if buffer is None or buffer.numel() < size:
        buffer = _SCRATCH[key] = torch.empty(max(CHUNK, size), device=like.device, dtype=like.dtype)
    return buffer[:size]


def scalar_like(value: float | Tensor, like: Tensor) -> Tensor:
    """``value`` as a 0-dim tensor of ``like``'s dtype and device: a kernel input, not a constant."""
    if isinstance(value, Tensor):
        return value.to(dtype=like.dtype, device=like.device)
    return torch.tensor(value, dtype=like.dtype, device=like.device)


def previous_directions(rule: Any, states: list[dict[str, Any]], group: dict[str, Any],
                        usable: list[bool]) -> list[Tensor | None]:
    """Each usable param's d_{t-1}: the stored copy where the step kept one, else the rule's rebuild."""
    return [(state["previous_direction"] if state.get("previous_direction") is not None
             else rule.previous_direction(state, group)) if use else None
            for state, use in zip(states, usable)]


def stored_direction_dots(grads: list[Tensor], params: list[Tensor], directions: list[Tensor | None],
                          weight_decay: float) -> Tensor | None:
    """Σ⟨g + wd·θ, d⟩ over params with a stored d, as one 0-dim tensor (no host sync).

    The hypergradient of every rule whose d_{t-1} is a tensor (stored, or a momentum buffer).
    """
    terms = []
    for grad, param, direction in zip(grads, params, directions):
        if direction is None:
            continue
        term = torch.dot(grad.view(-1), direction.view(-1))
        if weight_decay != 0:
            term = term + weight_decay * torch.dot(param.view(-1), direction.view(-1))
        terms.append(term)
    return torch.stack(terms).sum() if terms else None


def stored_direction_terms(grads: list[Tensor], params: list[Tensor], directions: list[Tensor | None],
                           weight_decay: float) -> tuple[Tensor, Tensor, Tensor] | None:
    """``(Σ⟨g + wd·θ, d⟩, Σ‖g + wd·θ‖², Σ‖d‖²)`` over params with a stored d, in one read of g and d.

    For controllers that need ‖g_t‖‖d_{t-1}‖ (a rule's ``fused_direction_terms`` where its d_{t-1}
    is a tensor); the C++ loop of :mod:`gradretention.optim.native`, None where it does not run.
    """
    from gradretention.optim import native  # noqa: PLC0415 (builds lazily, on first use)

    chosen = [i for i, direction in enumerate(directions) if direction is not None and grads[i].numel() > 0]
    if not chosen:
        return None
    terms = native.stored_direction_terms([grads[i] for i in chosen], [params[i] for i in chosen],
                                          [directions[i] for i in chosen], weight_decay)
    if terms is None:
        return None
    CALLS["stored_direction_terms"] += 1
    dots, grad_squares, direction_squares = terms.unbind()
    return dots, grad_squares, direction_squares


class StoredDirectionReductions:
    """The hypergradient hooks of every rule whose d_{t-1} is a tensor (stored, or its momentum buffer).

    Mixed into the SGD, Adagrad and RMSprop rules, which reduce h (and ‖g‖², ‖d‖² for the
    normalised controllers) the same way; Adam rebuilds d_{t-1} from m and v and has its own.
    """

    def fused_direction_dots(self, grads: list[Tensor], params: list[Tensor], states: list[dict[str, Any]],
                             group: dict[str, Any], usable: list[bool], use_compiled: bool) -> Tensor | None:
        """h = Σ⟨g + wd·θ, d_{t-1}⟩ over the usable params (one dot per tensor)."""
        stored = previous_directions(self, states, group, usable)
        return stored_direction_dots(grads, params, stored, group["weight_decay"])

    def fused_direction_terms(self, grads: list[Tensor], params: list[Tensor], states: list[dict[str, Any]],
                              group: dict[str, Any], usable: list[bool],
                              use_compiled: bool) -> tuple[Tensor, Tensor, Tensor] | None:
        """(h, ‖g‖², ‖d‖²) in one read of g and d where the compiled kernels run, else None."""
        if not use_compiled:
            return None
        stored = previous_directions(self, states, group, usable)
        return stored_direction_terms(grads, params, stored, group["weight_decay"])


class NoTorchFusedKernel:
    """For rules with no torch fused kernel (``fused = False``): their fast path is the compiled one.

    The composed step consults ``fused`` before it would call ``fused_update``, so a call is a bug.
    """

    fused = False

    def fused_update(self, params: list[Tensor], grads: list[Tensor], states: list[dict[str, Any]],
                     group: dict[str, Any], alpha: float | Tensor, keep: bool) -> None:
        raise RuntimeError(f"rule {self.name!r} has no fused path (fused is False): call direction() instead")  # type: ignore[attr-defined]
