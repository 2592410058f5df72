"""SweepConfig: TOML keys map 1:1 to fields, typos and wrong types are clear errors."""

from __future__ import annotations

import dataclasses

import pytest

from gradretention.bench.config import SweepConfig, config_fields, load_sweep_config, sweep_config_from_mapping
from gradretention.cli import build_parser, sweep_values


def write(tmp_path, text: str):
    path = tmp_path / "sweep.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_toml_keys_map_to_fields_with_lists_as_tuples(tmp_path):
    path = write(tmp_path, """
tasks = ["spiral", "digits-mlp"]
optimizers = ["adam", "adam_hd[hypergrad_lr=1e-07]"]
seeds = 2
lrs = [1, 0.01]
max_steps = 50
batch_size = 0
out = "x"
""")
    config = load_sweep_config(path)
    assert config == SweepConfig(tasks=("spiral", "digits-mlp"), optimizers=("adam", "adam_hd[hypergrad_lr=1e-07]"),
                                 seeds=2, lrs=(1.0, 0.01), max_steps=50, batch_size=0, out="x")  # fmt: skip
    assert isinstance(config.lrs[0], float)
    hash(config)  # frozen and hashable: usable as a key


def test_unknown_key_lists_every_valid_key(tmp_path):
    path = write(tmp_path, 'tasks = ["spiral"]\nlearning_rates = [0.1]\n')
    with pytest.raises(ValueError) as caught:
        load_sweep_config(path)
    message = str(caught.value)
    assert "unknown key(s) 'learning_rates'" in message and str(path) in message
    for name in config_fields():
        assert name in message


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ('seeds = "three"', r"'seeds' must be int, got 'three' \(str\)"),
        ("seeds = true", r"'seeds' must be int, got True \(bool\)"),
        ('lrs = 0.1', r"'lrs' must be a list of float, got 0.1"),
        ('lrs = [0.1, "x"]', r"'lrs' must be float, got 'x'"),
        ('tasks = "spiral"', r"'tasks' must be a list of str"),
        ("seeds = 0", r"seeds must be >= 1, got 0"),
        ("lrs = [-0.1]", r"lrs must be positive finite numbers, got -0.1"),
        ("epochs = 3\nmax_steps = 10", r"set epochs or max_steps, not both"),
        ('device = "tpu"', r"device must be one of cpu, cuda, mps"),
        ("seeds = [", r"invalid TOML"),
    ],
)
def test_bad_values_name_the_key_and_what_was_expected(tmp_path, text, pattern):
    with pytest.raises(ValueError, match=pattern):
        load_sweep_config(write(tmp_path, text))


def test_missing_file_is_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothing.toml"):
        load_sweep_config(tmp_path / "nothing.toml")


def test_every_field_is_a_cli_flag_of_run_and_bench():
    parser = build_parser()
    for command in ("run", "bench"):
        sub = parser._subparsers._group_actions[0].choices[command]  # noqa: SLF001 - argparse has no public lookup
        dests = {action.dest for action in sub._actions}
        skipped = {"tasks", "optimizers"} if command == "run" else set()
        assert set(config_fields()) - skipped <= dests, command


def test_flags_override_the_file_and_the_file_overrides_command_defaults(tmp_path):
    path = write(tmp_path, "seeds = 2\nepochs = 4\nlrs = [0.1, 0.2]\n")
    args = build_parser().parse_args(["bench", "--config", str(path), "--seeds", "5", "--max-steps", "7"])
    values = sweep_values(args, {"seeds": 1, "out": "default-out"})
    config = sweep_config_from_mapping(values)
    # --max-steps replaces the file's epochs budget rather than clashing with it.
    assert (config.seeds, config.epochs, config.max_steps, config.lrs, config.out) == (5, None, 7, (0.1, 0.2), "default-out")


def test_config_is_frozen():
    with pytest.raises(dataclasses.FrozenInstanceError):
        SweepConfig().seeds = 4  # type: ignore[misc]


def test_executor_and_tensorboard_keys_are_typed_and_checked(tmp_path):
    from gradretention.bench.config import sweep_config_from_mapping

    config = sweep_config_from_mapping({"tensorboard": True, "executor": "ray", "cpus_per_run": 2})
    assert (config.tensorboard, config.executor, config.cpus_per_run) == (True, "ray", 2.0)
    with pytest.raises(ValueError, match="'tensorboard' must be bool, got 1"):
        sweep_config_from_mapping({"tensorboard": 1})
    with pytest.raises(ValueError, match="executor must be one of local, ray, got 'dask'"):
        sweep_config_from_mapping({"executor": "dask"})


def test_preset_fills_batch_epochs_and_optimizer_lr_and_weight_decay():
    config = sweep_config_from_mapping({"preset": "seed-plan", "optimizers": ["adam", "sgd[lr=0.1]"]})
    assert config.optimizers == ("adam[lr=0.001,weight_decay=0.0001]", "sgd[lr=0.1,weight_decay=0.0001]")
    assert (config.batch_size, config.epochs, config.max_steps, config.preset) == (32, 50, None, "seed-plan")
    from gradretention.bench.config import with_preset

    assert with_preset(config) == config  # idempotent: applying it again changes nothing


def test_settings_given_win_over_the_preset():
    config = sweep_config_from_mapping({"preset": "seed-plan", "optimizers": ["adam"], "batch_size": 0, "max_steps": 7})
    assert (config.batch_size, config.epochs, config.max_steps) == (0, None, 7)
    assert sweep_config_from_mapping({"preset": "seed-plan", "optimizers": ["adam"], "epochs": 2}).epochs == 2


def test_preset_without_optimizers_covers_every_default_family():
    from gradretention.bench.sweep import resolve_optimizers

    config = sweep_config_from_mapping({"preset": "seed-plan"})
    families = resolve_optimizers(())
    assert len(config.optimizers) == len(families) > 5
    assert all(spec.startswith(f"{name}[") and "weight_decay=0.0001" in spec
               for spec, name in zip(config.optimizers, families))  # fmt: skip


def test_new_keys_are_read_from_toml_and_checked(tmp_path):
    path = write(tmp_path, """
download = true
model_path = "models/minilm"
max_len = 64
checkpoint_every = 2
resume = true
""")
    config = load_sweep_config(path)
    assert (config.download, config.model_path, config.max_len, config.checkpoint_every, config.resume) == (
        True, "models/minilm", 64, 2, True)  # fmt: skip
    for values, pattern in [({"max_len": 1}, r"max_len must be >= 2, got 1"),
                            ({"checkpoint_every": 0}, r"checkpoint_every must be >= 1, got 0"),
                            ({"resume": "yes"}, r"'resume' must be bool, got 'yes'"),
                            ({"preset": "seed-plna"}, r"Unknown preset 'seed-plna'. Did you mean 'seed-plan'\? "
                                                      r"Valid presets: seed-plan")]:  # fmt: skip
        with pytest.raises(ValueError, match=pattern):
            sweep_config_from_mapping(values)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--lrs", "0.01,0.1", "--lr-factors", "0.1,1"], "--lrs and --lr-factors each set the lr grid; give one"),
        (["--lrs", "0.01", "--lr-low", "1e-4"], "--lrs and --lr-low each set the lr grid"),
        (["--lr-factors", "1", "--lr-high", "0.1"], "--lr-factors and --lr-high each set the lr grid"),
        (["--trials", "8"], "trials is the budget protocol's setting"),
        (["--protocol", "budget"], "protocol 'budget' needs trials"),
        (["--protocol", "budget", "--trials", "4", "--lrs", "0.1"], "samples lrs from its search space; drop --lrs"),
        (["--lr-low", "0.1", "--lr-high", "0.01"], "lr_low must be <= lr_high"),
        (["--tune-seeds", "101"], "tune_seeds must be <= 100"),
        (["--extend", "-1"], "extend must be >= 0"),
    ],
)
def test_conflicting_or_bad_protocol_flags_exit_2_naming_them(flags, message, capsys, tmp_path):
    from gradretention.cli import main

    assert main(["bench", "--tasks", "spiral", "--optimizers", "sgd", *flags, "--out", str(tmp_path / "o")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_seeds_for_tuning_and_final_runs_are_disjoint_by_construction():
    config = SweepConfig(seeds=5, tune_seeds=3)
    assert config.tuning_seeds() == (0, 1, 2) and config.final_seeds() == (100, 101, 102, 103, 104)
    big = SweepConfig(seeds=30, tune_seeds=100)
    assert set(big.tuning_seeds()).isdisjoint(big.final_seeds())
