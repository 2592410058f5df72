"""The harness runs the peers by their authors' protocols: Schedule-Free evaluates its average."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gradretention.bench.checkpoint import load_checkpoint
from gradretention.bench.results import RunConfig
from gradretention.bench.runner import Checkpointing, train
from gradretention.optim import create_optimizer
from gradretention.tasks.registry import get_task

pytest.importorskip("schedulefree", reason="the peers extra is not installed")


def test_schedule_free_is_evaluated_at_its_averaged_iterate(tmp_path: Path):
    config = RunConfig(task="spiral", optimizer="schedulefree_adamw[lr=0.01]", seed=3, epochs=4, batch_size=32)
    result = train(config, checkpointing=Checkpointing(tmp_path, every=4))
    assert result.status == "done"
    # The checkpoint holds the training point y (params) and the base sequence z; the average is
    # x = (y - (1 - β1) z) / β1. The run's test numbers must be those of x, not of y.
    task = get_task("spiral")
    data = task.load(config.data_seed, None)
    model = task.build_model(data.num_classes)
    optimizer = create_optimizer(config.optimizer, model.parameters())
    load_checkpoint(tmp_path / "checkpoints" / f"{config.run_id}.pt", model, optimizer)
    beta1 = optimizer.param_groups[0]["betas"][0]
    at_y = task.evaluate(model, data.test, batch_size=task.eval_batch_size)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((p - (1 - beta1) * optimizer.state[p]["z"]) / beta1)
    at_x = task.evaluate(model, data.test, batch_size=task.eval_batch_size)
    assert result.final["test_loss"] == pytest.approx(at_x["loss"], rel=1e-5)
    assert abs(at_x["loss"] - at_y["loss"]) > 1e-4  # the check can tell the two points apart


@pytest.mark.parametrize(("spec", "key"), [("prodigy", "d"), ("dadapt_adam", "d"), ("dog", "eta")])
def test_lr_free_peers_train_and_log_their_step_size(spec, key):
    result = train(RunConfig(task="spiral", optimizer=spec, seed=0, epochs=3, batch_size=32, log_every=5))
    assert result.status == "done"
    d = [p.value for p in result.curves if p.split == "opt" and p.name == key]
    assert len(d) >= 2 and d[-1] > d[0] > 0
    assert result.provenance["optimizer_package"].split()[0] in ("prodigyopt", "dadaptation", "dog-optimizer")
