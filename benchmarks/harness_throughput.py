"""Harness throughput: epochs through our runner against a plain PyTorch ``DataLoader`` loop.

For each task (default ``mnist1d-mlp`` and ``digits-cnn``), in one run, with the same
model, optimizer and batch size:

1. *Same curves*: one epoch through :func:`gradretention.bench.runner.train` (logging every
   step) and the plain loop fed the runner's batch permutation must give identical
   per-step training losses.
2. *Throughput*: the runner's training loop per epoch (batching, steps, logging,
   divergence checks; its end-of-epoch evaluation is timed apart) against the plain tutorial loop
   (``DataLoader(TensorDataset(x, y), batch_size, shuffle=True)``, ``loss.item()`` per
   step), timed in interleaved repetitions; medians (the speedup is the median of the
   repetitions' own ratios). Target: ours ≥ 2× faster.
3. *Overhead share*: a default run of each embedded task (evaluation schedule ``auto``),
   with the time spent in evaluation, in logging (train loss, lrs, telemetry) and in
   gradient statistics measured by timing those methods of the runner's metering; the
   same with ``--eval-every 1`` (per-epoch evaluation) beside it. Medians over
   ``--share-repeats`` interleaved runs. Target: < 10 % of the run.

Usage::

    python benchmarks/harness_throughput.py                      # tables
    python benchmarks/harness_throughput.py --json --tasks digits-mlp --share-tasks spiral --epochs 1
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, replace
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from gradretention.bench import metering, runner
from gradretention.bench.config import EVAL_EVERY_AUTO
from gradretention.bench.config_flags import eval_every_flag
from gradretention.bench.events import StepLogged
from gradretention.bench.results import RunConfig
from gradretention.optim import create_optimizer
from gradretention.tasks import digits, mnist1d_task, spiral
from gradretention.tasks.base import Task, TaskData
from gradretention.tasks.registry import get_task

EMBEDDED_TASKS = tuple(task.name for module in (spiral, digits, mnist1d_task) for task in module.TASKS)
"""Tasks whose data ships with the package or is generated: no download, no data_dir."""


@dataclass(frozen=True)
class Throughput:
    """One task's runner-vs-plain comparison (the ``--json`` ``throughput`` objects)."""

    task: str
    optimizer: str
    batch_size: int
    steps_per_epoch: int
    runner_ms_per_epoch: float
    runner_ms_per_epoch_with_eval: float
    plain_ms_per_epoch: float
    speedup: float
    identical_losses: bool
    max_loss_difference: float


@dataclass(frozen=True)
class Overhead:
    """Shares of one run spent outside the training steps (the ``overhead`` objects); medians."""

    task: str
    eval_every: int | str
    interval: int  # epochs between evaluations that eval_every gives on this task
    evaluations: int
    epochs: int
    run_seconds: float
    evaluation_share: float
    logging_share: float
    gradient_statistics_share: float
    total_share: float


def setup_like_runner(config: RunConfig) -> tuple[Task, TaskData, torch.nn.Module, torch.optim.Optimizer]:
    """Task, data, model and optimizer built in the runner's order under its seed."""
    task = get_task(config.task)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(config.seed)
        data = task.load(config.data_seed, None)
        model = task.build_model(data.num_classes)
        optimizer = create_optimizer(config.optimizer, model.parameters(),
                                     **({} if config.lr is None else {"lr": config.lr}))
    return task, data, model, optimizer


def plain_epoch(task: Task, model: torch.nn.Module, optimizer: torch.optim.Optimizer, loader: DataLoader) -> list[float]:
    """The tutorial training loop over one pass of ``loader``; the per-step losses."""
    losses = []
    model.train()
    for inputs, targets in loader:
        optimizer.zero_grad(set_to_none=True)
        loss = task.batch_loss(model, inputs, targets)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def batch_size_of(config: RunConfig, task: Task, data: TaskData) -> int:
    """The runner's batch size for ``config`` (0 means the whole training split)."""
    size = task.default_batch_size if config.batch_size is None else config.batch_size
    return len(data.train) if size == 0 else min(size, len(data.train))


def compare_losses(config: RunConfig) -> tuple[bool, float]:
    """(identical, max |difference|) of one epoch's step losses: runner vs plain loop, same batches."""
    logged: list[float] = []
    one_epoch = replace(config, epochs=1, max_steps=None, log_every=1)
    runner.train(one_epoch, listeners=[lambda event: logged.append(event.loss) if isinstance(event, StepLogged) else None])
    task, data, model, optimizer = setup_like_runner(one_epoch)
    # The runner's first epoch draws this permutation from its own generator seeded with the run seed.
    order = torch.randperm(len(data.train), generator=torch.Generator().manual_seed(config.seed)).tolist()
    loader = DataLoader(TensorDataset(data.train.inputs, data.train.targets),
                        batch_size=batch_size_of(config, task, data), sampler=order)
    plain = plain_epoch(task, model, optimizer, loader)
    if len(plain) != len(logged):
        return False, float("inf")
    worst = max((abs(a - b) for a, b in zip(logged, plain)), default=0.0)
    return logged == plain, worst


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}
"""``cpu`` counts this process's CPU seconds: steadier than ``wall`` on a shared machine at one thread."""


def time_runner(config: RunConfig, clock: Any) -> tuple[float, float]:
    """Seconds per epoch of the runner's training loop without, and with, its evaluations."""
    totals = {"loop": 0.0, "evaluation": 0.0}
    with timing(runner._TrainingLoop, "_train", totals, "loop", clock), \
            timing(metering.Metering, "evaluate", totals, "evaluation", clock):
        result = runner.train(config)
    if result.status != "done":
        raise RuntimeError(f"runner failed on {config.task!r}: {result.status} {result.reason}")
    return (totals["loop"] - totals["evaluation"]) / config.epochs, totals["loop"] / config.epochs


def time_plain(config: RunConfig, clock: Any) -> float:
    """Seconds per epoch of the tutorial loop with its own shuffling DataLoader."""
    task, data, model, optimizer = setup_like_runner(config)
    loader = DataLoader(TensorDataset(data.train.inputs, data.train.targets),
                        batch_size=batch_size_of(config, task, data), shuffle=True,
                        generator=torch.Generator().manual_seed(config.seed))
    started = clock()
    for _ in range(config.epochs):
        plain_epoch(task, model, optimizer, loader)
    return (clock() - started) / config.epochs


def throughput(task_name: str, optimizer: str, epochs: int, repeats: int, clock: Any) -> Throughput:
    """Interleaved repetitions of the runner and the plain loop on one task; medians."""
    config = RunConfig(task=task_name, optimizer=optimizer, epochs=epochs)
    identical, worst = compare_losses(config)  # also warms up data caches and code paths
    ours, ours_with_eval, plain = [], [], []
    for repeat in range(repeats):
        ours_first = repeat % 2 == 0  # alternate which side runs first
        for side in ("ours", "plain") if ours_first else ("plain", "ours"):
            if side == "ours":
                seconds, with_eval = time_runner(config, clock)
                ours.append(seconds)
                ours_with_eval.append(with_eval)
            else:
                plain.append(time_plain(config, clock))
    task, data, _, _ = setup_like_runner(config)
    size = batch_size_of(config, task, data)
    ours_ms, plain_ms = statistics.median(ours) * 1e3, statistics.median(plain) * 1e3
    speedup = statistics.median(p / o for p, o in zip(plain, ours))  # per repetition: load bursts cancel
    return Throughput(task_name, optimizer, size, -(-len(data.train) // size), round(ours_ms, 2),
                      round(statistics.median(ours_with_eval) * 1e3, 2), round(plain_ms, 2), round(speedup, 2),
                      identical, worst)


@contextlib.contextmanager
def timing(owner: Any, name: str, totals: dict[str, float], key: str, clock: Any = time.perf_counter) -> Iterator[None]:
    """Add the seconds (by ``clock``) spent in ``owner.name`` to ``totals[key]`` while the block runs."""
    original = getattr(owner, name)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return original(*args, **kwargs)
        finally:
            totals[key] += clock() - started

    setattr(owner, name, timed)
    try:
        yield
    finally:
        setattr(owner, name, original)


def overhead_once(config: RunConfig, clock: Any) -> tuple[list[float], float, int]:
    """([evaluation, logging, statistics] seconds, run seconds, evaluations) of one run."""
    totals = {"run": 0.0, "evaluation": 0.0, "logging": 0.0, "statistics": 0.0}
    with timing(runner._TrainingLoop, "_train", totals, "run", clock), \
            timing(metering.Metering, "evaluate", totals, "evaluation", clock), \
            timing(metering.Metering, "log_step", totals, "logging", clock), \
            timing(metering, "gradient_moments", totals, "statistics", clock):
        result = runner.train(config)
    if result.status != "done":
        raise RuntimeError(f"runner failed on {config.task!r}: {result.status} {result.reason}")
    evaluations = sum(1 for p in result.curves if p.split == "val" and p.name == "loss")
    logging = totals["logging"] - totals["statistics"]  # log_step calls gradient_moments
    return [totals["evaluation"], logging, totals["statistics"]], totals["run"], evaluations


def overhead(task_name: str, optimizer: str, epochs: int | None, clock: Any, eval_every: int | str = EVAL_EVERY_AUTO,
             repeats: int = 1) -> list[Overhead]:  # fmt: skip
    """Shares of evaluation, logging and gradient statistics in the training of one run per
    schedule: ``eval_every`` and, unless it is 1, per-epoch evaluation; medians of interleaved repeats."""
    schedules = [eval_every] if eval_every == 1 else [eval_every, 1]
    configs = [RunConfig(task=task_name, optimizer=optimizer, epochs=epochs,
                         extra=(("eval_every", every),) if every != EVAL_EVERY_AUTO else ())
               for every in schedules]  # fmt: skip
    runner.train(replace(configs[0], epochs=1))  # warm-up: data caches, first-call costs
    samples: list[list[tuple[list[float], float, int]]] = [[] for _ in configs]
    for _ in range(repeats):
        for config, kept in zip(configs, samples):
            kept.append(overhead_once(config, clock))
    task = get_task(task_name)
    data = task.load(0, None)
    rows = []
    for every, kept in zip(schedules, samples):
        shares = [statistics.median(parts[i] / run for parts, run, _ in kept) for i in range(3)]
        epochs_run = task.default_epochs if epochs is None else epochs
        rows.append(Overhead(task_name, every, metering.evaluation_interval(every, task, data), kept[0][2], epochs_run,
                             round(statistics.median(run for _, run, _ in kept), 3),
                             *(round(share, 4) for share in shares), round(sum(shares), 4)))
    return rows


def format_tables(rows: list[Throughput], shares: list[Overhead]) -> str:
    lines = [f"{'task':<14} {'optimizer':<10} {'batch':>5} {'steps':>5} {'ours ms/ep':>10} {'(+eval)':>9} "
             f"{'plain ms/ep':>11} {'speedup':>7}  same losses"]
    for r in rows:
        same = "yes" if r.identical_losses else f"NO (max diff {r.max_loss_difference:.3g})"
        lines.append(f"{r.task:<14} {r.optimizer:<10} {r.batch_size:>5} {r.steps_per_epoch:>5} "
                     f"{r.runner_ms_per_epoch:>10.1f} {r.runner_ms_per_epoch_with_eval:>9.1f} {r.plain_ms_per_epoch:>11.1f} "
                     f"{r.speedup:>6.2f}x  {same}")
    lines += ["", f"{'task':<14} {'eval_every':>10} {'k':>3} {'evals':>5} {'epochs':>6} {'run s':>7} {'eval':>6} "
                  f"{'logging':>8} {'grad stats':>10} {'total':>6}"]
    for s in shares:
        lines.append(f"{s.task:<14} {s.eval_every!s:>10} {s.interval:>3} {s.evaluations:>5} {s.epochs:>6} "
                     f"{s.run_seconds:>7.2f} {s.evaluation_share:>6.1%} {s.logging_share:>8.1%} "
                     f"{s.gradient_statistics_share:>10.1%} {s.total_share:>6.1%}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", default="mnist1d-mlp,digits-cnn", help="tasks for the throughput comparison")
    parser.add_argument("--share-tasks", default=",".join(EMBEDDED_TASKS), help="tasks for the overhead shares")
    parser.add_argument("--optimizer", default="adam", help="registry spec used on both sides (default adam)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed repetition")
    parser.add_argument("--share-epochs", type=int, default=None, help="epochs of the share runs (task default)")
    parser.add_argument("--eval-every", type=eval_every_flag, default=EVAL_EVERY_AUTO,
                        help="evaluation schedule of the share runs: auto (default) or N epochs; "
                             "per-epoch runs (1) are shown beside it")
    parser.add_argument("--share-repeats", type=int, default=3, help="interleaved runs per schedule (medians)")
    parser.add_argument("--repeats", type=int, default=5, help="interleaved repetitions per side")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (the harness's default 1)")
    parser.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                        help="wall (default) or cpu: process CPU seconds, steadier on a busy machine")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    args = parser.parse_args(argv)
    args.tasks = [t for t in args.tasks.split(",") if t]
    args.share_tasks = [t for t in args.share_tasks.split(",") if t]
    for name in args.tasks + args.share_tasks:
        try:
            get_task(name)
        except ValueError as error:
            parser.error(str(error))
    if min(args.epochs, args.repeats, args.threads, args.share_repeats) < 1:
        parser.error(f"--epochs, --repeats, --threads and --share-repeats must be >= 1; got {args.epochs}, "
                     f"{args.repeats}, {args.threads}, {args.share_repeats}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    clock = CLOCKS[args.clock]
    rows = [throughput(name, args.optimizer, args.epochs, args.repeats, clock) for name in args.tasks]
    shares = [row for name in args.share_tasks
              for row in overhead(name, args.optimizer, args.share_epochs, clock, args.eval_every, args.share_repeats)]
    if args.json:
        main_rows = [asdict(s) for s in shares if s.eval_every == args.eval_every]
        per_epoch = [asdict(s) for s in shares if s.eval_every != args.eval_every]
        print(json.dumps({"throughput": [asdict(r) for r in rows], "overhead": main_rows,
                          "overhead_per_epoch": per_epoch}, indent=1))
    else:
        print(f"torch {torch.__version__}; {torch.get_num_threads()} thread(s); optimizer {args.optimizer}; "
              f"{args.epochs} epoch(s) x {args.repeats} interleaved repetitions, medians of {args.clock} time; "
              f"shares: medians of {args.share_repeats}; load average {os.getloadavg()[0]:.2f} at the start")
        print(format_tables(rows, shares))
        print(f"total {time.perf_counter() - started:.1f} s; load average {os.getloadavg()[0]:.2f} at the end")
    return 0 if all(r.identical_losses for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
