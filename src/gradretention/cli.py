"""The ``gradretention`` command line (also ``python -m gradretention``).

Commands: ``list [optimizers|tasks|suites|presets]``, ``run`` (one task, one optimizer spec),
``bench`` (the sweep; with no arguments the main job), ``report OUT``, ``export OUT``.
``run`` and ``bench`` flags map 1:1 to :class:`~gradretention.bench.config.SweepConfig`
fields (``--max-steps`` → ``max_steps``); ``--config FILE.toml`` sets them from a file,
and flags win over the file. ``--preset`` fills what neither sets; ``bench --suite NAME``
runs a named suite (``adagrad-lecture``, ``hd-paper``, ``variance-plan``).

Exit codes: 0 done (also when runs diverged: that is a result); 2 bad input (unknown name,
bad hyperparameter, unusable output folder — the message says what and the valid
choices); 130 interrupted (finished runs are kept; rerunning resumes).

Example:
    >>> main(["run", "--task", "spiral", "--optimizer", "sgd[lr=1e6]", "--out", "/tmp/x"])  # doctest: +SKIP
    0
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import torch
from rich.console import Console

from gradretention.bench.config import SweepConfig, checked_values, read_config_values, sweep_config_from_mapping
from gradretention.bench.config_flags import add_config_flags, flag_values, split_top_level, str_list
from gradretention.bench.store import StoreError
from gradretention.cli_parser import Parser, command_line, document_defaults, joined_negative_values

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
LIST_KINDS = ("optimizers", "tasks", "suites", "presets")
DESCRIPTION = ("Benchmark adaptive learning-rate optimizers: train, tune on validation, rerun on fresh seeds and "
               "report; also the live GUI, Grad-CAM and the data check. Run `gradretention COMMAND --help` for a "
               "command's flags.")  # fmt: skip

# Commands with their own parsers, imported only when used (Tk, captum, ... stay unloaded otherwise).
DELEGATED: dict[str, tuple[str, str, str]] = {
    "gui": ("gradretention.gui.app", "gui_main", "the live Tkinter window (each optimizer at its tuned lr)"),
    "animate": ("gradretention.gui.animate", "animate_main", "the decision boundary over training, as GIF/MP4"),
    "data": ("gradretention.tasks.data_report", "data_main", "per task: data found / missing, files looked for"),
    "gradcam": ("gradretention.bench.gradcam", "gradcam_main", "Grad-CAM overlays with labels and colour bar"),
}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line with ``argv`` (default ``sys.argv[1:]``); returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in DELEGATED:
        return _delegate(argv[0], argv[1:])
    parser = build_parser()
    try:
        args = parser.parse_args(joined_negative_values(argv))
    except SystemExit as exc:  # argparse already printed usage and the problem
        return int(exc.code) if isinstance(exc.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except (ValueError, OSError, StoreError, ImportError) as exc:
        print(f"gradretention {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"\ninterrupted: {resume_hint(args, argv)}", file=sys.stderr)
        return EXIT_INTERRUPTED


def resume_hint(args: argparse.Namespace, argv: Sequence[str]) -> str:
    """What to type to resume: the command as given, or, after ``--interactive``, with the answers as flags."""
    kept = f"finished runs are kept in {getattr(args, 'out', None) or 'the output folder'}"
    if not getattr(args, "interactive", False):
        return f"{kept}; to resume, run: {command_line(argv)}"
    if getattr(args, "chosen", None) is None:
        return "nothing was chosen, nothing trained"
    return f"{kept}; to resume, run: {command_line(answered_argv(argv, args.chosen))}"


def answered_argv(argv: Sequence[str], chosen: dict[str, tuple[str, ...]]) -> list[str]:
    """``argv`` without ``--interactive`` (and any ``--tasks`` / ``--optimizers``), the answers ``chosen`` as flags."""
    flags = {f"--{name}" for name in chosen}
    kept: list[str] = []
    skip = False
    for token in argv:
        if skip or token == "--interactive" or token.split("=", 1)[0] in flags:
            skip = not skip and token in flags  # "--tasks X": drop X too; "--tasks=X" is one token
            continue
        kept.append(token)
    return [*kept, *(item for name, names in chosen.items() for item in (f"--{name}", ",".join(names)))]


def _delegate(command: str, argv: list[str]) -> int:
    import importlib

    module_name, function_name, _ = DELEGATED[command]
    try:
        function = getattr(importlib.import_module(module_name), function_name)
    except ImportError as exc:
        print(f"gradretention {command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    return int(function(argv))


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    from gradretention import __version__

    parser = Parser(prog="gradretention", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, _, summary) in DELEGATED.items():
        # Listed for --help only: main() hands these commands their argv before parsing.
        commands.add_parser(name, help=summary, add_help=False)
    listing = _command(commands, "list", "list optimizers, tasks, suites or presets")
    listing.add_argument("kind", nargs="?", choices=LIST_KINDS, help="what to list (default: all of them)")
    listing.set_defaults(handler=_cmd_list)
    run = _command(commands, "run", "train one task with one optimizer spec (one seed, its default lr unless a "
                                    "grid is given); results in OUT/runs.db")
    run.add_argument("--task", required=True, help="task name (see `gradretention list tasks`)")
    run.add_argument("--optimizer", required=True, help="optimizer spec, e.g. 'adam_hd[hypergrad_lr=1e-07]'")
    add_config_flags(run)
    document_defaults(run, RUN_DEFAULTS)
    run.set_defaults(handler=_cmd_run)
    bench = _command(commands, "bench", "sweep optimizers x tasks: tune each lr on validation seeds, rerun the "
                                        "chosen lr on fresh seeds, print the table and write the report; with no "
                                        "arguments, the main job")
    bench.add_argument("--tasks", type=str_list,
                       help=f"comma list of tasks, or 'all' (the default): {ALL_TASKS_MEANS}")
    bench.add_argument("--optimizers", type=str_list,
                       help=f"comma list of specs, or 'all' (the default): {ALL_OPTIMIZERS_MEANS}")
    bench.add_argument("--interactive", action="store_true",
                       help="ask which tasks and optimizers to run (on a terminal)")
    bench.add_argument("--suite", help="run a named suite instead (see `gradretention list suites`)")
    bench.add_argument("--quick", action="store_true",
                       help="with --suite: its quick form (same shape, fewer epochs or seeds) where it has one")
    add_config_flags(bench)
    document_defaults(bench, {"out": "bench-out; with --suite: bench-out/SUITE"})
    bench.set_defaults(handler=_cmd_bench)
    report = _command(commands, "report", "write OUT/report.html (interactive, works offline) and OUT/report.md "
                                          "from OUT/runs.db")
    report.add_argument("out", help="the sweep's output folder")
    report.set_defaults(handler=_cmd_report)
    export = _command(commands, "export", "write tidy runs / curves tables from OUT/runs.db into OUT/export/")
    export.add_argument("out", help="the sweep's output folder")
    export.add_argument("--format", dest="fmt", choices=("csv", "parquet"), default="csv", help="table format")
    export.set_defaults(handler=_cmd_export)
    return parser


RUN_DEFAULTS: dict[str, object] = {"seeds": 1, "out": "results"}
ALL_TASKS_MEANS = ("every embedded task with held-out validation and test splits, i.e. each one that needs "
                   "no download or --data-dir (spiral-nnfs, the lecture's train-only spiral, is not one)")
ALL_OPTIMIZERS_MEANS = "the default families (the main job's)"


def _command(commands: Any, name: str, description: str) -> argparse.ArgumentParser:
    """A subcommand whose ``--help`` starts with ``description`` (and whose listing shows it)."""
    return commands.add_parser(name, help=description, description=description)


def sweep_values(args: argparse.Namespace, defaults: dict[str, Any]) -> dict[str, Any]:
    """Config values layered: the command's defaults < ``--config`` file < flags given."""
    values = dict(defaults)
    if args.config is not None:
        values.update(read_config_values(args.config))
    flags = flag_values(args)
    if "epochs" in flags or "max_steps" in flags:  # a budget flag replaces the file's budget
        values.pop("epochs", None)
        values.pop("max_steps", None)
    values.update(flags)
    return checked_values(values, source="command line")


def _check_device(device: str) -> None:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {device!r} requested but CUDA is not available here; use --device cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise ValueError("device 'mps' requested but MPS is not available here; use --device cpu")


def _cmd_list(args: argparse.Namespace) -> int:
    from gradretention.bench.suites import all_suites
    from gradretention.optim import available_optimizers, optimizer_info
    from gradretention.tasks.presets import PRESETS
    from gradretention.tasks.registry import available_tasks, get_task

    sections: dict[str, Callable[[], list[tuple[str, str]]]] = {
        "optimizers": lambda: [(n, optimizer_info(n)["summary"]) for n in available_optimizers()],
        "tasks": lambda: [(n, get_task(n).description) for n in available_tasks()],
        "suites": lambda: [(s.name, s.description) for s in all_suites().values()],
        "presets": lambda: [(p.name, p.description) for p in PRESETS.values()],
    }
    for kind in [args.kind] if args.kind else list(LIST_KINDS):
        print(f"{kind}:")
        for name, description in sections[kind]():
            print(f"  {name:<22} {description}")
    return EXIT_OK


def _cmd_run(args: argparse.Namespace) -> int:
    # One task and one spec: a single run per seed, no tuning unless a grid or protocol is asked for.
    values = sweep_values(args, RUN_DEFAULTS)
    tuning = ("lrs", "lr_factors", "lr_low", "lr_high", "trials", "protocol")
    if not any(values.get(name) not in (None, ()) for name in tuning):
        values["lr_factors"] = ()
    values.update(tasks=(args.task,), optimizers=(args.optimizer,))
    return _sweep(sweep_config_from_mapping(values, source="command line"), report=False)


def _cmd_bench(args: argparse.Namespace) -> int:
    if args.suite:
        return _suite(args)
    if args.quick:
        raise ValueError("--quick selects a suite's quick form; give it with --suite NAME")
    values = sweep_values(args, {})
    if args.interactive:
        args.chosen = interactive_choices(sys.stdin, sys.stdout)  # for the resume hint after Ctrl-C
        values.update(args.chosen)
    return _sweep(sweep_config_from_mapping(values, source="command line"), report=True)


def _sweep(config: SweepConfig, report: bool) -> int:
    from gradretention.bench.progress import SweepProgress
    from gradretention.bench.sweep import run_sweep

    _check_device(config.device)
    started = time.perf_counter()
    with run_settings(config), _executor(config) as executor, SweepProgress(workers=_parallel(executor)) as progress:
        outcome = run_sweep(config, executor=executor, listeners=_listeners(config), progress=progress)
    _finish(Path(config.out), set(outcome.run_ids), time.perf_counter() - started, outcome.trained, report)
    return EXIT_OK


def _executor(config: SweepConfig) -> Any:
    from gradretention.bench.ray_executor import make_executor

    return make_executor(config.executor, config.workers, config.ray_address, config.cpus_per_run,
                         config.gpus_per_run, config.threads)


def _parallel(executor: Any) -> int:
    """Runs the executor trains at once, for the ETA (a Ray cluster's own size is unknown here: the cores)."""
    return int(getattr(executor, "workers", None) or os.cpu_count() or 1)


def _listeners(config: SweepConfig) -> list[Any]:
    if not config.tensorboard:
        return []
    from gradretention.bench.tensorboard_logger import TensorBoardListener

    return [TensorBoardListener(config.out)]


def _suite(args: argparse.Namespace) -> int:
    from gradretention.bench.progress import SweepProgress
    from gradretention.bench.suites import get_suite, suite_configs, suite_sweeps
    from gradretention.bench.sweep import run_configs

    suite = get_suite(args.suite)
    values = sweep_values(args, {"out": str(Path("bench-out") / suite.name)})
    fixed = ("tasks", "optimizers", "lrs", "lr_factors", "protocol", "trials", "lr_low", "lr_high", "extend",
             "tune_seeds", "max_steps", "batch_size", "interactive", "preset")
    # Given as a flag or in the --config file: either way the suite would ignore it.
    clashing = [f"--{name.replace('_', '-')}" for name in fixed if getattr(args, name) or name in values]
    if clashing:
        raise ValueError(f"--suite {suite.name} fixes its tasks, optimizers, lrs and batch; "
                         f"drop {', '.join(clashing)} (it takes --epochs, --seeds, --out, --workers, --device)")  # fmt: skip
    config = sweep_config_from_mapping(values, source="command line")
    _check_device(config.device)
    # --seeds (flag or file) replaces the suite's own seeds; SweepConfig's default does not.
    configs = suite_configs(suite.name, seeds=values.get("seeds"), epochs=config.epochs, device=config.device,
                            data_seed=config.data_seed, quick=args.quick)  # fmt: skip
    if configs:  # a suite made only of fair-protocol parts (lr-free) has no fixed runs
        started = time.perf_counter()
        with run_settings(config), _executor(config) as executor, SweepProgress(workers=_parallel(executor)) as progress:
            data_dir = Path(config.data_dir) if config.data_dir else None
            trained = run_configs(configs, Path(config.out), executor, data_dir, listeners=_listeners(config),
                                  progress=progress)
        _finish(Path(config.out), {c.run_id for c in configs}, time.perf_counter() - started, trained, report=True)
    # Its fair-protocol parts, each in a subfolder of --out.
    for part in suite_sweeps(suite.name, config, quick=args.quick, seeds=values.get("seeds"), epochs=config.epochs):
        _sweep(part, report=True)
    return EXIT_OK


@contextlib.contextmanager
def run_settings(config: SweepConfig) -> Iterator[None]:
    """``config``'s data and checkpoint settings in this process's environment while its runs train.

    Set before the executor starts its workers, which inherit them; put back afterwards,
    so that ``main()`` called twice in one process keeps the two commands' settings apart.

    Raises:
        FileNotFoundError: ``model_path`` is not a Hugging Face model folder.
    """
    from gradretention.bench.runner import CHECKPOINT_ENV, Checkpointing
    from gradretention.tasks import datacache, text_tasks

    names = (datacache.DOWNLOAD_ENV, text_tasks.MODEL_PATH_ENV, text_tasks.MAX_LEN_ENV, *CHECKPOINT_ENV)
    saved = {name: os.environ.get(name) for name in names}
    try:
        if config.download:
            datacache.set_download(True)
        if config.model_path is not None:
            text_tasks.set_model_path(text_tasks.checked_model_folder(Path(config.model_path).expanduser()))
        if config.max_len is not None:
            text_tasks.set_max_length(config.max_len)
        for name in CHECKPOINT_ENV:  # the command's flags decide, not a leftover variable
            os.environ.pop(name, None)
        if config.checkpoint_every is not None or config.resume:
            settings = Checkpointing(Path(config.out), config.checkpoint_every or 0, config.resume)
            os.environ.update(settings.environment())
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _finish(out: Path, run_ids: set[str], wall_seconds: float, trained: int, report: bool) -> None:
    """The terminal table of this sweep's runs, the wall time and the report's path."""
    from gradretention.bench.report import build_report
    from gradretention.bench.store import ResultsStore
    from gradretention.bench.table import summary_table

    with ResultsStore(out, read_only=True) as store:
        runs = store.runs()
    runs = runs[runs["run_id"].isin(run_ids)]
    console = Console()
    summary_table(runs, console=console, wall_seconds=wall_seconds)

    def say(text: str, style: str | None = None) -> None:
        # No markup (specs contain brackets) and no hard wrap (paths and reasons stay whole).
        console.print(text, style=style, markup=False, soft_wrap=True, highlight=False)

    for row in runs[runs["status"].isin(("diverged", "error"))].itertuples():
        say(f"{row.status}: {row.optimizer} on {row.task} (seed {row.seed}): {row.reason}", style="yellow")
    say(f"{trained} runs trained, {len(run_ids) - trained} already recorded; wall time {wall_seconds:.1f} s")
    say(f"Results: {out / 'runs.db'}")
    if report:
        say(f"Report: {build_report(out)}")


def interactive_choices(stdin: TextIO, stdout: TextIO) -> dict[str, tuple[str, ...]]:
    """Ask for tasks and optimizers on a terminal; refuses in CI or without a TTY.

    Raises:
        ValueError: no terminal to ask on (``CI=true`` or stdin is not a TTY), or input ended.
    """
    if os.environ.get("CI", "").lower() in ("1", "true", "yes") or not stdin.isatty():
        raise ValueError("--interactive needs a terminal to ask on, but stdin is not a TTY (or CI=true); "
                         "pass --tasks and --optimizers instead")  # fmt: skip
    from gradretention.bench.sweep import resolve_optimizers, resolve_tasks
    from gradretention.tasks.registry import available_tasks

    # 'all' means here what it means for --tasks and --optimizers: what resolve_* expands it to.
    tasks = ask_names("tasks", available_tasks(), resolve_tasks, stdin, stdout,
                      f"{ALL_TASKS_MEANS}: {', '.join(resolve_tasks(()))}")  # fmt: skip
    registered = list(resolve_optimizers(()))  # the default families that are installed (peers need their extra)
    optimizers = ask_names("optimizers", registered, resolve_optimizers, stdin, stdout, ALL_OPTIMIZERS_MEANS)
    return {"tasks": tasks, "optimizers": optimizers}


def ask_names(kind: str, choices: Sequence[str], check: Callable[[Sequence[str]], object],
              stdin: TextIO, stdout: TextIO, all_means: str = "every one listed") -> tuple[str, ...]:  # fmt: skip
    """Prompt until the answer passes ``check``; empty or ``all`` means ``all``, which the prompt explains.

    Raises:
        ValueError: input ended before a valid answer.
    """
    print(f"Available {kind}: {', '.join(choices)}", file=stdout)
    print(f"'all' (the default): {all_means}", file=stdout)
    while True:
        print(f"Which {kind}? (comma list, or 'all') [all]: ", end="", file=stdout, flush=True)
        line = stdin.readline()
        if not line:
            raise ValueError(f"no {kind} chosen: input ended")
        names = tuple(n.strip() for n in split_top_level(line.strip()) if n.strip()) or ("all",)
        try:
            check(names)
        except ValueError as exc:
            print(exc, file=stdout)
            continue
        return names


def _cmd_report(args: argparse.Namespace) -> int:
    from gradretention.bench.report import build_report

    out = Path(args.out)
    if not (out / "runs.db").is_file():
        raise FileNotFoundError(f"no results store at {out / 'runs.db'}; run `gradretention bench --out {out}` first")
    print(f"Report: {build_report(out)}")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from gradretention.bench.export import export_results

    for path in export_results(Path(args.out), args.fmt):
        print(path)
    return EXIT_OK
