"""The first minutes with ``gradretention``: help, version, listings, one-line usage errors, resume hints."""

from __future__ import annotations

import io
import shlex

import pytest

from gradretention import __version__
from gradretention.bench.sweep import DEFAULT_OPTIMIZERS, resolve_tasks
from gradretention.cli import DELEGATED, answered_argv, build_parser, main
from gradretention.tasks.presets import PRESETS
from gradretention.tasks.registry import available_tasks

COMMANDS = ("list", "run", "bench", "report", "export")


def test_version_prints_the_package_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"gradretention {__version__}"


@pytest.mark.parametrize("command", [None, *COMMANDS, "data"])
def test_help_is_plain_text_with_a_description(command, capsys):
    argv = ["--help"] if command is None else [command, "--help"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "``" not in text and ":class:" not in text and ":func:" not in text
    # The line after the usage block is the command's description, not straight into the flags.
    description = text.split("\n\n")[1]
    assert not description.startswith(("options:", "positional arguments:")) and len(description) > 20


def test_every_command_has_a_summary_in_the_top_level_help():
    text = build_parser().format_help()
    listed = text.split("positional arguments:")[1].split("options:")[0]
    for command in (*DELEGATED, *COMMANDS):
        line = next(line for line in listed.splitlines() if line.split()[:1] == [command])
        assert len(line.split()) > 2, line


def test_help_states_the_defaults_that_apply(capsys):
    assert main(["bench", "--help"]) == 0
    bench = " ".join(capsys.readouterr().out.split())
    assert "--log-every LOG_EVERY steps between train-loss logs (default: 10)" in bench
    assert "--data-seed DATA_SEED which fixed train/val/test split (default: 0)" in bench
    assert "--device DEVICE cpu, cuda, cuda:N or mps (default: cpu)" in bench
    assert "(default: None)" not in bench
    assert main(["run", "--help"]) == 0
    run = " ".join(capsys.readouterr().out.split())
    # run's own defaults (one seed, folder results), not bench's.
    assert "--seeds SEEDS final-phase seeds 100..100+N-1 (default: 1)" in run
    assert "output folder (runs.db, report) (default: results)" in run
    assert main(["export", "--help"]) == 0
    assert "(default: csv)" in capsys.readouterr().out


def test_list_presets_lists_every_preset(capsys):
    assert main(["list", "presets"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("presets:") and all(f"  {name} " in out for name in PRESETS)
    assert main(["list"]) == 0
    assert "presets:" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lrs", ","], "argument --lrs: expected at least one number, got ','"),
        (["--lrs", "-0.1,0.2"], "argument --lrs: every value must be a positive finite number (> 0), got -0.1"),
        (["--lr-factors", "-1e-5"], "argument --lr-factors: every value must be a positive finite number"),
        (["--lrs", "0.1,nan"], "got nan in '0.1,nan'"),
        (["--epochs", str(10**23)], f"argument --epochs: epochs must be <= 1000000, got {10**23} (valid: 1 .. 1000000)"),
        (["--max-steps", "1e23"], "argument --max-steps: expected an integer, got '1e23'"),
        (["--seeds", "1001"], "argument --seeds: seeds must be <= 1000, got 1001 (valid: 1 .. 1000)"),
        (["--epochs", "0"], "argument --epochs: epochs must be >= 1, got 0 (valid: 1 .. 1000000)"),
        (["--data-seed", str(2**32)], "argument --data-seed: data_seed must be <= 4294967295"),
        (["--out", ""], "out must name a folder, got ''"),
    ],
)  # fmt: skip
def test_a_bad_flag_value_is_one_line_naming_the_flag_value_and_range(flags, message, capsys, tmp_path):
    argv = ["bench", "--tasks", "spiral", "--optimizers", "sgd", *flags]
    if "--out" not in flags:
        argv += ["--out", str(tmp_path / "out")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err, err
    assert len(err.strip().splitlines()) == 1, err  # no usage block before the message
    assert not (tmp_path / "out").exists()


def test_a_toml_file_is_held_to_the_same_ranges(tmp_path, capsys):
    config = tmp_path / "sweep.toml"
    config.write_text(f"epochs = {10**23}\nworkers = 9223372036854775807\n")
    assert main(["bench", "--config", str(config), "--out", str(tmp_path / "out")]) == 2
    assert "must be <=" in capsys.readouterr().err


def test_after_ctrl_c_the_hint_is_the_exact_command_to_resume(monkeypatch, capsys, tmp_path):
    import gradretention.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C while the sweep trains

    monkeypatch.setattr(cli, "_sweep", interrupted)
    out = str(tmp_path / "my out")
    argv = ["bench", "--tasks", "spiral", "--optimizers", "sgd,adam_hd[hypergrad_lr=1e-07]", "--out", out]
    assert main(argv) == 130
    assert f"to resume, run: {shlex.join(['gradretention', *argv])}" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_after_ctrl_c_in_interactive_mode_the_hint_has_the_answers_as_flags(monkeypatch, capsys, tmp_path):
    import gradretention.cli as cli

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr(cli, "_sweep", interrupted)
    monkeypatch.setattr("sys.stdin", _Terminal("spiral\nsgd, adam_hd[hypergrad_lr=1e-07]\n"))
    out = str(tmp_path / "out")
    assert main(["bench", "--interactive", "--epochs", "2", "--out", out]) == 130
    captured = capsys.readouterr()
    command = captured.err.split("to resume, run: ")[1].strip()
    assert shlex.split(command) == ["gradretention", "bench", "--epochs", "2", "--out", out, "--tasks", "spiral",
                                    "--optimizers", "sgd,adam_hd[hypergrad_lr=1e-07]"]  # fmt: skip


def test_the_answers_replace_interactive_and_given_names():
    chosen = {"tasks": ("spiral",), "optimizers": ("sgd",)}
    argv = ["bench", "--tasks=digits-mlp", "--interactive", "--optimizers", "adam", "--seeds", "2"]
    assert answered_argv(argv, chosen) == ["bench", "--seeds", "2", "--tasks", "spiral", "--optimizers", "sgd"]


def test_interactive_all_means_what_the_flags_all_means(monkeypatch):
    from gradretention.cli import interactive_choices

    monkeypatch.delenv("CI", raising=False)
    stdout = io.StringIO()
    chosen = interactive_choices(_Terminal("\nall\n"), stdout)
    assert chosen == {"tasks": ("all",), "optimizers": ("all",)}
    # The prompt lists every task but says that 'all' is the embedded ones, by name.
    embedded = resolve_tasks(("all",))
    assert len(embedded) < len(available_tasks())
    shown = stdout.getvalue()
    from gradretention.cli import ALL_TASKS_MEANS

    assert f"'all' (the default): {ALL_TASKS_MEANS}: {', '.join(embedded)}" in shown
    assert "spiral-nnfs" not in embedded
    assert "'all' (the default): the default families" in shown
    assert all(name in shown for name in DEFAULT_OPTIMIZERS)
