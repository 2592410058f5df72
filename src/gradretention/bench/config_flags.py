"""The command-line side of the sweep configuration: one flag per :class:`SweepConfig` field.

``add_config_flags`` gives a parser ``--max-steps`` for ``max_steps`` and so on, each checked
while parsing (so argparse names the flag in its error), with ``None`` as every default so that
values from a ``--config`` TOML file show through; ``flag_values`` collects the flags given.
The list types (``str_list``, ``float_list``) split comma lists the way specs need.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gradretention.bench.config import (
    EXECUTORS,
    INT_RANGES,
    PROTOCOLS,
    check_int_range,
    config_fields,
    eval_every_value,
)


def eval_every_flag(text: str) -> int | str:
    """``--eval-every``'s argparse type: ``auto`` or the digits of an int >= 1."""
    try:
        return eval_every_value(int(text) if text.strip().isdigit() else text)
    except ValueError as exc:  # argparse prints an ArgumentTypeError's message as it is
        raise argparse.ArgumentTypeError(str(exc)) from None


def bounded_int_flag(name: str) -> Callable[[str], int]:
    """The argparse type of field ``name``'s flag: an int in its :data:`INT_RANGES` range.

    Checked while parsing, so that argparse names the flag (``argument --epochs: ...``).
    """

    def parse(text: str) -> int:
        try:
            value = int(text)
            check_int_range(name, value)
        except ValueError as exc:
            reason = str(exc) if "must be" in str(exc) else f"expected an integer, got {text!r}"
            raise argparse.ArgumentTypeError(reason) from None
        return value

    return parse


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """Add one flag per field (but ``tasks`` / ``optimizers``) and ``--config FILE.toml``.

    Every default is ``None`` ("not given"), so file values and per-command defaults show
    through; :func:`flag_values` collects what was given.
    """
    parser.add_argument("--config", type=Path, help="TOML file whose keys are these flags' names")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument("--epochs", type=int, help="epochs per run (default: the task's)")
    budget.add_argument("--max-steps", type=int, help="optimizer steps per run, instead of epochs")
    parser.add_argument("--batch-size", type=int, help="default: the task's; 0: full batch")
    parser.add_argument("--lrs", type=float_list, help="lr grid shared by every optimizer, e.g. 0.001,0.01")
    parser.add_argument("--lr-factors", type=float_list,
                        help="lr grid relative to each optimizer's default, instead of --lrs or the half-decade grid")
    parser.add_argument("--protocol", choices=PROTOCOLS,
                        help="grid (default: the absolute half-decade lr grid, extended at an edge) or budget "
                             "(--trials Sobol points of each optimizer's search space)")
    parser.add_argument("--trials", type=int, help="budget protocol: trials per optimizer")
    parser.add_argument("--lr-low", type=float, help="grid protocol: first grid's lowest lr (default 1e-5)")
    parser.add_argument("--lr-high", type=float, help="grid protocol: first grid's highest lr (default 1)")
    parser.add_argument("--extend", type=int, help="grid protocol: half-decades added per side at most (default 3)")
    parser.add_argument("--seeds", type=int, help="final-phase seeds 100..100+N-1 (default 5)")
    parser.add_argument("--tune-seeds", type=int, help="seeds 0..N-1 scoring each grid lr on validation (default 3)")
    parser.add_argument("--log-every", type=int, help="steps between train-loss logs")
    parser.add_argument("--eval-every", type=eval_every_flag,
                        help="auto (default: every k epochs, k from the split sizes so evaluation stays near 10%% "
                             "of a run) or N: evaluate the splits every N epochs; the last step always")
    parser.add_argument("--data-dir", help="folder with the data of tasks that read files")
    parser.add_argument("--data-seed", type=int, help="which fixed train/val/test split")
    parser.add_argument("--out", help="output folder (runs.db, report)")
    parser.add_argument("--workers", type=int, help="parallel runs (default: the cores)")
    parser.add_argument("--threads", type=int, help="CPU threads per run; default 1 keeps numbers independent of --workers; 0: cores/workers")
    parser.add_argument("--device", help="cpu, cuda, cuda:N or mps")
    parser.add_argument("--executor", choices=EXECUTORS, help="where runs train (default: local)")
    parser.add_argument("--ray-address", help="Ray cluster: auto or HOST:PORT (default: start a local Ray)")
    parser.add_argument("--cpus-per-run", type=float, help="CPUs Ray reserves per run (default 1)")
    parser.add_argument("--gpus-per-run", type=float, help="GPUs Ray reserves per run (needed for --device cuda)")
    parser.add_argument("--tensorboard", action="store_true", default=None, help="write event files under OUT/tensorboard")
    parser.add_argument("--download", action="store_true", default=None,
                        help="let Hugging Face download missing datasets (needs internet)")
    parser.add_argument("--model-path", help="Hugging Face model folder for the BERT tasks (default: the shipped MiniLM)")
    parser.add_argument("--max-len", type=int, help="token budget of every text task (default: each task's)")
    parser.add_argument("--preset", help="seed-plan: batch 32, 50 epochs, lr 1e-3 and weight decay 1e-4 in every spec, "
                                         "where not given")
    parser.add_argument("--checkpoint-every", type=int,
                        help="save each run every N epochs and at its end to OUT/checkpoints/RUN_ID.pt")
    parser.add_argument("--resume", action="store_true", default=None,
                        help="continue unfinished runs from their checkpoints in OUT/checkpoints "
                             "(with --checkpoint-every to keep saving)")
    for action in parser._actions:  # the range is checked while parsing, so the message names the flag
        if action.type is int and action.dest in INT_RANGES:
            action.type = bounded_int_flag(action.dest)


def flag_values(args: argparse.Namespace) -> dict[str, Any]:
    """The fields whose flags were given (not ``None``) in ``args``."""
    return {name: getattr(args, name) for name in config_fields() if getattr(args, name, None) is not None}


def str_list(text: str) -> tuple[str, ...]:
    """``a,b[x=1,y=2]`` as ``("a", "b[x=1,y=2]")``; an argparse type."""
    items = tuple(item.strip() for item in split_top_level(text) if item.strip())
    if not items:
        raise argparse.ArgumentTypeError(f"expected a comma list, got {text!r}")
    return items


def split_top_level(text: str) -> list[str]:
    """Split on commas outside brackets: ``adam,adam_hd[lr=0.1,hypergrad_lr=1e-7]`` is two specs."""
    parts, depth, current = [], 0, []
    for char in text:
        depth += (char == "[") - (char == "]")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    return [*parts, "".join(current)]


def float_list(text: str) -> tuple[float, ...]:
    """``0.1,1e-3`` as ``(0.1, 0.001)``: at least one positive finite number (lrs, lr factors); an argparse type."""
    try:
        values = tuple(float(item) for item in text.split(",") if item.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None
    if not values:  # "," would otherwise mean "not given" and run the default grid
        raise argparse.ArgumentTypeError(f"expected at least one number, got {text!r}")
    bad = [value for value in values if not (math.isfinite(value) and value > 0)]
    if bad:
        raise argparse.ArgumentTypeError(f"every value must be a positive finite number (> 0), got {bad[0]!r} "
                                         f"in {text!r}")
    return values
