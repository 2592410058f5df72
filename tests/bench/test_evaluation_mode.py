"""Schedule-Free's train/eval contract inside the harness: evaluate the average, with its BN statistics."""

from __future__ import annotations

import pytest
import torch

from gradretention.bench.evaluation_mode import BN_BATCHES, evaluated_weights, has_batch_norm, start_training_mode
from gradretention.optim.peers import create_peer

pytest.importorskip("schedulefree", reason="the peers extra is not installed")


def trained_bn_model():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.BatchNorm1d(3), torch.nn.Linear(3, 2))
    inputs, labels = torch.randn(64, 4), torch.randint(0, 2, (64,))
    opt = create_peer("schedulefree_adamw", model.parameters(), {"lr": 0.05})
    start_training_mode(opt)
    for _ in range(15):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        opt.step()
    return model, opt, inputs


def test_block_evaluates_the_averaged_iterate_and_restores_the_training_point():
    model, opt, inputs = trained_bn_model()
    y = [p.detach().clone() for p in model.parameters()]
    beta1 = opt.param_groups[0]["betas"][0]
    with evaluated_weights(opt, model):
        x = [p.detach().clone() for p in model.parameters()]
        for p, xi, yi in zip(model.parameters(), x, y):
            torch.testing.assert_close(yi, (1 - beta1) * opt.state[p]["z"] + beta1 * xi, rtol=1e-5, atol=1e-6)
            assert not torch.equal(xi, yi)
    for p, yi in zip(model.parameters(), y):
        torch.testing.assert_close(p.detach(), yi, rtol=1e-6, atol=1e-7)
    assert opt.param_groups[0]["train_mode"]


def test_batch_norm_statistics_are_recomputed_at_the_averaged_weights():
    model, opt, inputs = trained_bn_model()
    batches = inputs.split(16)
    asked = []

    def forward(limit):
        asked.append(limit)
        for batch in batches[:limit]:
            model(batch)
            yield

    with evaluated_weights(opt, model, forward):
        linear, norm = model[0], model[1]
        with torch.no_grad():
            expected = torch.stack([linear(b).mean(0) for b in batches]).mean(0)
        torch.testing.assert_close(norm.running_mean, expected, rtol=1e-5, atol=1e-6)
        assert norm.momentum == 0.1 or norm.momentum is not None
    assert asked == [BN_BATCHES]


def test_optimizers_without_the_contract_pass_through():
    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    opt = torch.optim.Adam(model.parameters())
    before = [p.detach().clone() for p in model.parameters()]
    with evaluated_weights(opt, model, lambda n: (_ for _ in ()).throw(AssertionError("must not forward"))):
        assert all(torch.equal(a, b) for a, b in zip(model.parameters(), before))
    assert has_batch_norm(model) and not has_batch_norm(torch.nn.Linear(2, 2))
