"""The flags of ``gradretention gui`` and the session they describe (no Tk here)."""

from __future__ import annotations

import argparse
import textwrap
from pathlib import Path

from gradretention.gui.controls import split_optimizer_list
from gradretention.gui.demo import about_text, default_optimizers
from gradretention.gui.worker import GuiSession


def build_parser() -> argparse.ArgumentParser:
    """The flags of ``gradretention gui``; the help's epilog states how the demo's lrs were chosen."""
    parser = argparse.ArgumentParser(prog="gradretention gui", description="Watch optimizers train, live.",
                                     epilog="\n\n".join(textwrap.fill(part, 88) for part in about_text().split("\n\n")),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", default="spiral", help="registered task (default: spiral)")
    parser.add_argument("--optimizers", default=None,
                        help="up to 4 comma-separated optimizer specs (default: "
                             f"{','.join(default_optimizers())}, each at its lr tuned for spiral; see below)")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1 per optimizer (default: 3)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the task's)")
    parser.add_argument("--batch-size", type=int, default=None, help="0: full batch (default: the task's)")
    parser.add_argument("--data-dir", type=Path, default=None, help="where file-based tasks find their data")
    parser.add_argument("--run-for", type=float, default=None, metavar="SECONDS",
                        help="start training at once and close the window after SECONDS")
    parser.add_argument("--screenshot", type=Path, default=None, metavar="PATH",
                        help="save the window as PNG before closing")
    parser.add_argument("--save-graphs", type=Path, default=None, metavar="DIR",
                        help="save one PNG per view into DIR before closing")
    parser.add_argument("--dump-state", type=Path, default=None, metavar="PATH",
                        help="write what the views show as JSON before closing")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads for training (default 1: the window keeps a core)")
    return parser


def session_from(args: argparse.Namespace) -> GuiSession:
    """The session the flags describe.

    Raises:
        ValueError: a bad flag value, named, with what is allowed.
    """
    if args.run_for is not None and not args.run_for > 0:
        raise ValueError(f"--run-for must be > 0 seconds, got {args.run_for}")
    if args.threads < 1:
        raise ValueError(f"--threads must be >= 1, got {args.threads}")
    optimizers = split_optimizer_list(args.optimizers) if args.optimizers is not None else default_optimizers(args.task)
    return GuiSession(task=args.task, optimizers=optimizers, seeds=args.seeds, epochs=args.epochs,
                      batch_size=args.batch_size, data_dir=args.data_dir)
