"""Time one step of every registry optimizer against ``torch.optim.Adam(fused=True)``.

An optimizer step streams memory, so its floor is the bytes it must read and write per
parameter. In one run, on the same ~10 M-parameter set of tensors (the shapes of a small
transformer: embedding, attention and MLP matrices, biases, layer norms), with gradients
set once (random, fixed seed) and a warm-up step first, the steps are timed in
interleaved repetitions (each round visits every optimizer, in a rotated order): ms/step
is the median over rounds, the ratio to fused Adam the median of the rounds' own ratios
(steadier on a shared machine). Per optimizer it prints ms/step, the ratio to fused Adam, the
optimizer-state bytes per parameter and the ratio to its own floor, where the floor is
``FLOOR_BYTES[name]`` moved at the bandwidth fused Adam achieves in the same run (fused
Adam moves 28 B/param in float32: it reads g, p, m, v and writes p, m, v).

Usage::

    python benchmarks/optimizer_step.py                      # table, CPU (and CUDA when present)
    python benchmarks/optimizer_step.py --json --params 1e6 --repeats 5 --only sgd_hd,adam_hd
"""

from __future__ import annotations

import argparse
import inspect
import json
import math
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch

from gradretention.optim import available_optimizers, create_optimizer
from gradretention.optim import kernels as compiled

BASELINE = "torch.optim.Adam(fused=True)"
EXTRA_SPECS = ["enhanced_sgd[noise_pool=65536]"]
"""Timed after the registry names by default: EnhancedSGD's opt-in noise pool. Its default computes
a counter-based N(0, 1) draw per entry inside the update pass (hash + Box–Muller, one transform
per two entries, vectorised in C++ on the CPU: compute, not bytes), about 0.8 of a fused Adam
step at 10 M parameters on a CPU core."""
ADAM_BYTES = 28
"""Bytes per float32 parameter fused Adam moves: reads g, p, m, v (16), writes p, m, v (12)."""

# Bytes per float32 parameter each optimizer must move, at least. A hypergradient
# h = Σ⟨g_t, d_{t-1}⟩ must be complete before α_t is known, so it costs a pass of its own
# before the update pass; the same holds for a gradient variance (a pass over g) and for
# RescaledSGD's min/max of |m| (fused with the m update, chunk by chunk in cache).
FLOOR_BYTES: dict[str, int] = {
    "sgd": 12,  # read g, p; write p
    "momentum": 20,  # read g, p, b; write p, b
    "nesterov": 20,  # as momentum: d = g + μb is formed in registers
    "adagrad": 20,  # read g, p, sum; write p, sum
    "rmsprop": 20,  # read g, p, v; write p, v
    "adam": ADAM_BYTES,
    "adamw": ADAM_BYTES,  # decoupled decay touches p, which the pass moves anyway
    # d_{t-1} = g_{t-1} is stored: h reads g, d (8); the update reads g, p, writes p, d (16).
    "sgd_hd": 24,
    # h reads g, d (8); the update reads g, p, b and writes p, b, d (24): d = g + μb is not
    # rebuildable from b alone, hence the stored copy.
    "sgdn_hd": 32,
    # d_{t-1} is rebuilt from m, v: h reads g, m, v (12), then Adam's 28 (the issue's ≈1.43).
    "adam_hd": 40,
    # d = g/(√sum + ε) needs g_{t-1}: h reads g, d (8); update reads g, p, sum, writes p, sum, d (24).
    "adagrad_hd": 32,
    # without momentum as adagrad_hd: h reads g, d (8); update reads g, p, v, writes p, v, d (24).
    "rmsprop_hd": 32,
    # pass 1 reads g, m, writes m, with min/max of |m| taken while the chunk is in cache (12);
    # pass 2 reads m, p, writes p (12).
    "rescaled_sgd": 24,
    # pass 1: Σg, Σg² per tensor (4: centring and σ need them before any update);
    # pass 2 reads g, b, p, writes b, p (20). The Gaussian noise costs compute, not bytes.
    "enhanced_sgd": 24,
    "enhanced_sgd_spec": 24,  # the same passes; only the controller and the centring default differ
}
for _rule, _base in (("sgd", 12), ("sgdn", 20), ("adam", 28), ("rmsprop", 20), ("adagrad", 20)):
    # The variance controller adds one reduction pass over g to its base rule.
    FLOOR_BYTES[f"{_rule}_var"] = _base + 4
for _rule in ("sgd", "sgdn", "adam", "adagrad", "rmsprop"):
    for _lop in ("sgdn", "adam"):
        # The lr optimizer works on one scalar per group: same bytes as the _hd twin.
        FLOOR_BYTES[f"{_rule}_hd_{_lop}"] = FLOOR_BYTES[f"{_rule}_hd"]
for _rule in ("sgdn", "adam"):
    # The log-α, Rprop-on-log-α and multiplicative (HDM) controllers need h and ‖g‖, ‖d‖, which
    # can be reduced in the one pass their _hd twin makes: same bytes (today's fast path takes
    # the norms in passes of their own, so these rows sit further above their floor).
    for _variant in ("loghd", "lrprop", "hdm", "rmshd", "stackhd", "zprop"):
        FLOOR_BYTES[f"{_rule}_{_variant}"] = FLOOR_BYTES[f"{_rule}_hd"]


@dataclass(frozen=True)
class Row:
    """One optimizer's result on one device (the ``--json`` objects)."""

    name: str
    device: str
    ms_per_step: float
    ratio_to_fused_adam: float
    state_bytes_per_param: float
    floor_bytes_per_param: float | None
    ratio_to_floor: float | None


def parameter_shapes(total: int) -> list[tuple[int, ...]]:
    """Shapes of a 2-block transformer of width d with about ``total`` parameters (28·d² + 28·d)."""
    d = max(4, round(math.sqrt(total / 28)))
    block = [(3 * d, d), (3 * d,), (d, d), (d,), (d,), (d,), (4 * d, d), (4 * d,), (d, 4 * d), (d,), (d,), (d,)]
    return [(4 * d, d), *block, *block, (d,), (d,)]


def make_parameters(total: int, device: torch.device) -> list[torch.Tensor]:
    """Parameters ~ N(0, 0.02²) with fixed gradients ~ N(0, 1e-3²), both from seed 0."""
    generator = torch.Generator().manual_seed(0)
    params = []
    for shape in parameter_shapes(total):
        param = torch.nn.Parameter((0.02 * torch.randn(shape, generator=generator)).to(device))
        # A small gradient scale keeps the hypergradient optimizers' α moderate over a
        # few hundred steps on fixed gradients (h = ‖g‖² > 0 every step).
        param.grad = (1e-3 * torch.randn(shape, generator=generator)).to(device)
        params.append(param)
    return params


def state_bytes(optimizer: torch.optim.Optimizer) -> int:
    """Bytes of all tensors in the optimizer's per-parameter state."""
    return sum(value.numel() * value.element_size() for state in optimizer.state.values()
               for value in state.values() if isinstance(value, torch.Tensor))


def stepper(optimizer: torch.optim.Optimizer) -> Any:
    """A no-argument step; optimizers that read the loss (EnhancedSGD) get a falling one."""
    if "loss" not in inspect.signature(optimizer.step).parameters:
        return optimizer.step
    count = [0]

    def step() -> None:
        count[0] += 1
        optimizer.step(loss=1.0 / (1.0 + 0.01 * count[0]))
    return step


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""``cpu`` (CPU seconds of all threads) is steadier on a shared machine at ``--threads 1``."""


def time_steps(steppers: dict[str, Any], repeats: int, device: torch.device,
               clock: Any = time.perf_counter) -> dict[str, list[float]]:
    """Per name, the seconds of each of ``repeats`` steps, visited round-robin in rotated order."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    names = list(steppers)
    times: dict[str, list[float]] = {name: [] for name in names}
    for name in names:  # two warm-up steps allocate state, warm the code paths and compile kernels
        steppers[name]()  # (a hypergradient first needs a d_{t-1}, at the second step)
        steppers[name]()
    for round_index in range(repeats):
        shift = round_index % len(names)
        for name in names[shift:] + names[:shift]:
            sync()
            start = clock()
            steppers[name]()
            sync()
            times[name].append(clock() - start)
    return times


def _compile_option(name: str, eager: bool) -> dict[str, Any]:
    """``compiled=False`` for optimizers that have the option, when ``eager``."""
    from gradretention.optim import optimizer_info  # noqa: PLC0415

    return {"compiled": False} if eager and "compiled" in optimizer_info(name)["defaults"] else {}


def benchmark(names: list[str], total: int, repeats: int, device: torch.device, clock: str = "wall",
              eager: bool = False) -> list[Row]:
    """Rows for the fused-Adam baseline and each of ``names`` on ``device``."""
    params = make_parameters(total, device)
    count = sum(p.numel() for p in params)
    optimizers = {BASELINE: torch.optim.Adam(params, lr=1e-3, fused=True)}
    optimizers.update({name: create_optimizer(name, params, **_compile_option(name, eager)) for name in names})
    times = time_steps({name: stepper(opt) for name, opt in optimizers.items()}, repeats, device, CLOCKS[clock])
    if not all(bool(torch.isfinite(p).all()) for p in params):
        print("warning: parameters became non-finite during the run", file=sys.stderr)
    rows = []
    for name, optimizer in optimizers.items():
        # Each round's own ratio, then the median: a burst of load that slows a whole round
        # (another job on the machine) cancels out instead of skewing one side.
        ratio = statistics.median(t / adam for t, adam in zip(times[name], times[BASELINE]))
        floor = ADAM_BYTES if name == BASELINE else FLOOR_BYTES.get(name.split("[")[0])
        rows.append(Row(name, device.type, round(statistics.median(times[name]) * 1e3, 3), round(ratio, 3),
                        round(state_bytes(optimizer) / count, 2),
                        None if floor is None else floor * params[0].element_size() / 4,  # floors are for float32
                        None if floor is None else round(ratio * ADAM_BYTES / floor, 3)))
    return rows


def describe_machine(total: int) -> str:
    """One header line: sizes, threads, CPU and torch version."""
    count = sum(math.prod(s) for s in parameter_shapes(total))
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    gpu = f"; GPU {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return (f"{count:,} params in {len(parameter_shapes(total))} tensors (float32); torch {torch.__version__}; "
            f"{torch.get_num_threads()} threads; CPU {cpu}{gpu}")


def format_table(rows: list[Row]) -> str:
    """The rows as an aligned text table, with fused Adam's bandwidth per device."""
    lines = [f"{'optimizer':<30} {'device':<6} {'ms/step':>9} {'x adam':>7} {'state B/p':>9} "
             f"{'floor B/p':>9} {'x floor':>8}"]
    for row in rows:
        floor = "-" if row.floor_bytes_per_param is None else f"{row.floor_bytes_per_param:g}"
        ratio = "-" if row.ratio_to_floor is None else f"{row.ratio_to_floor:.2f}"
        lines.append(f"{row.name:<30} {row.device:<6} {row.ms_per_step:>9.2f} {row.ratio_to_fused_adam:>7.2f} "
                     f"{row.state_bytes_per_param:>9.2f} {floor:>9} {ratio:>8}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; ``--only`` names are checked against the registry."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--params", type=float, default=10_000_000, help="about how many parameters (default 1e7)")
    parser.add_argument("--repeats", type=int, default=15, help="timed steps per optimizer (median reported)")
    parser.add_argument("--only", default="", help="comma-separated registry names or specs such as "
                        "'enhanced_sgd[noise_pool=65536]' (default: all names and EXTRA_SPECS)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--device", action="append", default=None, help="cpu, cuda (default: cpu, and cuda if present)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall (default) or cpu: process CPU time, steadier on a busy machine with --threads 1")
    parser.add_argument("--json", action="store_true", help="print a JSON list of rows instead of the table")
    parser.add_argument("--compile-after", type=int, default=0, metavar="STEPS",
                        help="steps before compiled=None ('auto') switches a large group to its compiled kernels "
                             f"(library default {compiled.COMPILE_AFTER_STEPS}; the script's 0 times the steady "
                             "state of a long run, compiling during the warm-up steps)")
    parser.add_argument("--eager", action="store_true",
                        help="never use compiled kernels (compiled=False): the eager fast paths alone")
    args = parser.parse_args(argv)
    valid = available_optimizers()
    args.names = [n.strip() for n in args.only.split(",") if n.strip()] or valid + EXTRA_SPECS
    unknown = [n for n in args.names if n.split("[")[0] not in valid]
    if unknown:
        parser.error(f"unknown optimizer(s) {', '.join(unknown)} in --only; valid: {', '.join(valid)}")
    if args.params < 100 or args.repeats < 1 or (args.threads is not None and args.threads < 1):
        parser.error(f"need --params >= 100, --repeats >= 1, --threads >= 1; got {args.params:g}, "
                     f"{args.repeats}, {args.threads}")
    args.device = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    switch_step, compiled.COMPILE_AFTER_STEPS = compiled.COMPILE_AFTER_STEPS, args.compile_after
    try:
        return _report(args)
    finally:
        compiled.COMPILE_AFTER_STEPS = switch_step  # main() may run inside another program (the tests)


def _report(args: argparse.Namespace) -> int:
    started = time.perf_counter()
    rows = [row for device in args.device
            for row in benchmark(args.names, int(args.params), args.repeats, torch.device(device), args.clock,
                                 args.eager)]
    if args.json:
        print(json.dumps([asdict(row) for row in rows], indent=1))
        return 0
    print(describe_machine(int(args.params)))
    for device in args.device:
        adam_ms = next(r.ms_per_step for r in rows if r.name == BASELINE and r.device == device)
        count = sum(math.prod(s) for s in parameter_shapes(int(args.params)))
        print(f"fused Adam on {device}: {ADAM_BYTES * count / adam_ms / 1e6:.1f} GB/s ({ADAM_BYTES} B/param)")
    print(format_table(rows))
    mode = "eager only" if args.eager else f"compiled=None switches groups >= {compiled.COMPILE_MIN_NUMEL:,} " \
        f"entries after {args.compile_after} steps"
    print(f"{mode}; {args.repeats} interleaved repetitions, medians of {args.clock} time; "
          f"total {time.perf_counter() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
