"""What the compiled kernels cost up front: the first steps with ``compiled=True`` against eager.

Each optimizer runs in a fresh Python process (so nothing is compiled in memory yet) on
the benchmark's parameter set, once with an empty Inductor cache and extension folder
("cold": Dynamo traces, Inductor generates C++ and the compiler builds it; RescaledSGD also
builds its hand-written kernel, ``optim/native.py``) and once more with what that run left
("warm": a new process that finds the built code on disk). Printed per optimizer: the
seconds of its first ``--steps`` steps with ``compiled=True`` and with ``compiled=False``,
and the difference, the one-off price that ``compiled=None`` ("auto") pays once a large
group passes its switch step.

Usage::

    python benchmarks/compile_cost.py                              # the default set, 1 M params
    python benchmarks/compile_cost.py --only adam_hd --params 1e7 --json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_NAMES = ["sgd_hd", "adam_hd", "adagrad_hd", "rmsprop_hd", "rescaled_sgd", "enhanced_sgd"]
CHILD = "--child"


def child(name: str, params: int, steps: int, compiled: bool) -> float:
    """Seconds of the first ``steps`` steps of ``name`` (run inside the fresh process)."""
    import torch  # noqa: PLC0415 - the parent never imports torch

    sys.path.insert(0, str(Path(__file__).parent))
    from optimizer_step import make_parameters, stepper  # noqa: PLC0415

    from gradretention.optim import create_optimizer  # noqa: PLC0415

    torch.manual_seed(0)
    tensors = make_parameters(params, torch.device("cpu"))
    step = stepper(create_optimizer(name, tensors, compiled=compiled))
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return time.perf_counter() - start


def measure(name: str, params: int, steps: int, compiled: bool, cache: str) -> float:
    """Run :func:`child` in a new interpreter whose Inductor cache and C++ extension builds live in ``cache``."""
    environment = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": cache, "TORCH_EXTENSIONS_DIR": str(Path(cache) / "ext")}
    command = [sys.executable, __file__, CHILD, name, str(params), str(steps), str(int(compiled))]
    output = subprocess.run(command, check=True, capture_output=True, text=True, env=environment).stdout
    return float(output.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if arguments and arguments[0] == CHILD:
        name, params, steps, compiled = arguments[1], int(arguments[2]), int(arguments[3]), bool(int(arguments[4]))
        print(child(name, params, steps, compiled))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(DEFAULT_NAMES), help="comma-separated registry names")
    parser.add_argument("--params", type=float, default=1_000_000, help="about how many parameters (default 1e6)")
    parser.add_argument("--steps", type=int, default=3, help="steps timed from the first (default 3)")
    parser.add_argument("--json", action="store_true", help="print a JSON list instead of the table")
    args = parser.parse_args(arguments)
    if args.steps < 2 or args.params < 100:
        parser.error(f"need --steps >= 2 (kernels start at step 2) and --params >= 100; got {args.steps}, "
                     f"{args.params:g}")
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for name in [n.strip() for n in args.only.split(",") if n.strip()]:
            eager = measure(name, int(args.params), args.steps, False, cache)
            cold = measure(name, int(args.params), args.steps, True, cache)
            warm = measure(name, int(args.params), args.steps, True, cache)
            # microseconds: a tiny eager run can take under a millisecond, which 3 decimals would print as 0
            rows.append({"name": name, "eager_s": round(eager, 6), "cold_s": round(cold, 6),
                         "warm_s": round(warm, 6), "cold_extra_s": round(cold - eager, 6),
                         "warm_extra_s": round(warm - eager, 6)})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"first {args.steps} steps, {int(args.params):,} params, seconds (fresh process each)")
    print(f"{'optimizer':<16} {'eager':>7} {'cold':>7} {'warm':>7} {'+cold':>7} {'+warm':>7}")
    for row in rows:
        print(f"{row['name']:<16} {row['eager_s']:>7.2f} {row['cold_s']:>7.2f} {row['warm_s']:>7.2f} "
              f"{row['cold_extra_s']:>7.2f} {row['warm_extra_s']:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
