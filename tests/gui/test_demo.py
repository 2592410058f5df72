"""The default demo runs every optimizer at its own tuned lr, and says so."""

from __future__ import annotations

import shlex

from gradretention.cli import build_parser
from gradretention.gui.demo import DEMO_TASK, TUNED_LRS, TUNING_COMMAND, about_text, default_optimizers, tuned_spec
from gradretention.gui.worker import GuiSession, optimizer_traits


def test_default_demo_runs_each_optimizer_at_its_tuned_lr_not_a_shared_one() -> None:
    assert default_optimizers() == ("rescaled_sgd[lr=0.0316]", "sgd[lr=1]")
    assert GuiSession().optimizers == default_optimizers(DEMO_TASK)
    lrs = {spec: optimizer_traits(spec).lr for spec in default_optimizers()}
    assert lrs == {"rescaled_sgd[lr=0.0316]": 0.0316, "sgd[lr=1]": 1.0}  # the spec's lr reaches the optimizer


def test_every_tuned_lr_builds_its_optimizer_and_other_tasks_get_bare_names() -> None:
    for task, table in TUNED_LRS.items():
        for name, lr in table.items():
            assert optimizer_traits(tuned_spec(name, task)).lr == lr
    assert default_optimizers("digits-mlp") == ("rescaled_sgd", "sgd")


def test_the_tuning_command_is_a_valid_bench_command_over_the_tabled_optimizers() -> None:
    argv = shlex.split(TUNING_COMMAND)
    assert argv[0] == "gradretention"
    args = build_parser().parse_args(argv[1:])
    assert args.command == "bench" and list(args.tasks) == [DEMO_TASK]
    assert set(args.optimizers) == set(TUNED_LRS[DEMO_TASK])
    grid = sorted(args.lrs)
    for lr in TUNED_LRS[DEMO_TASK].values():
        assert grid[0] < lr < grid[-1]  # interior: the best lr is not on the grid's edge


def test_help_text_states_the_lr_choice() -> None:
    text = about_text()
    assert "rescaled_sgd[lr=0.0316], sgd[lr=1]" in text
    assert "tuned for this task" in text and TUNING_COMMAND in text
    assert "registry's default lr" in text
