"""The external optimizers: curated learning-rate-free peers, the pytorch-optimizer zoo, MODULE:CLASS."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch

from gradretention.optim import peers
from gradretention.optim.peers import PEERS, Peer, PeerError, create_peer, peer_info, peer_telemetry

pytest.importorskip("prodigyopt", reason="the peers extra (pip install 'gradretention[peers]') is not installed")

CURATED = sorted(PEERS)


def logistic_problem(seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(256, 10, generator=generator)
    labels = (inputs @ torch.randn(10, generator=generator) > 0).long()
    torch.manual_seed(seed)
    return torch.nn.Linear(10, 2), inputs, labels


def train(opt, model, inputs, labels, steps: int) -> float:
    if peers.uses_eval_mode(opt):
        opt.train()
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        opt.step()
    if peers.uses_eval_mode(opt):
        opt.eval()
    with torch.no_grad():
        return float(torch.nn.functional.cross_entropy(model(inputs), labels))


# The authors' defaults; Lion's and Schedule-Free AdamW's lr are tuned by the protocol, so the check
# gives them an lr that suits a 10-feature logistic regression.
CHECK_LRS = {"lion": 3e-3, "schedulefree_adamw": 3e-2}


@pytest.mark.parametrize("name", CURATED)
def test_curated_peer_trains_logistic_regression(name):
    model, inputs, labels = logistic_problem()
    opt = create_peer(name, model.parameters(), {"lr": CHECK_LRS[name]} if name in CHECK_LRS else {})
    with torch.no_grad():
        start = float(torch.nn.functional.cross_entropy(model(inputs), labels))
    assert train(opt, model, inputs, labels, 200) < 0.6 * start


@pytest.mark.parametrize("name", CURATED)
def test_curated_peer_state_dict_continues_bit_for_bit(name):
    model, inputs, labels = logistic_problem()
    opt = create_peer(name, model.parameters())
    train(opt, model, inputs, labels, 5)
    twin_model = copy.deepcopy(model)
    twin = create_peer(name, twin_model.parameters())
    twin.load_state_dict(pickle.loads(pickle.dumps(opt.state_dict())))
    train(opt, model, inputs, labels, 5)
    train(twin, twin_model, inputs, labels, 5)
    for a, b in zip(model.parameters(), twin_model.parameters()):
        assert torch.equal(a, b)


@pytest.mark.parametrize("name", ["prodigy", "dadapt_adam"])
def test_lr_free_peers_report_their_estimated_step_size(name):
    model, inputs, labels = logistic_problem()
    opt = create_peer(name, model.parameters())
    d0 = peer_telemetry(opt)["d"]
    train(opt, model, inputs, labels, 50)
    assert peer_telemetry(opt)["d"] > d0  # d grows from its tiny initial estimate
    assert peer_info(name)["lr_free"] and peer_info(name)["defaults"]["lr"] == 1.0


def test_zoo_name_builds_the_zoo_class_and_records_its_version():
    model, _, _ = logistic_problem()
    opt = create_peer("pt:adabelief", model.parameters(), {"lr": 1e-3})
    assert type(opt).__name__ == "AdaBelief" and opt.param_groups[0]["lr"] == 1e-3
    info = peer_info("pt:adabelief")
    assert info["package"] == "pytorch_optimizer" or info["package"] == "pytorch-optimizer"
    assert info["version"]


def test_module_class_path_builds_any_optimizer():
    model, _, _ = logistic_problem()
    opt = create_peer("torch.optim:NAdam", model.parameters(), {"lr": 2e-3})
    assert isinstance(opt, torch.optim.NAdam) and peer_info("torch.optim:NAdam")["version"] == torch.__version__


@pytest.mark.parametrize(("name", "message"), [
    ("pt:adabelif", r"Unknown pytorch-optimizer name 'adabelif'\. Did you mean pt:adabelief"),
    ("torch.optim:Nadam", r"has no attribute 'Nadam'\. Did you mean 'NAdam'\?"),
    ("no_such_package.sub:Opt", r"Cannot import module 'no_such_package\.sub'"),
    ("torch.nn:Linear", r"'torch\.nn:Linear' is not a torch\.optim\.Optimizer subclass"),
    ("torch.optim:", r"Malformed optimizer path"),
])  # fmt: skip
def test_bad_external_names_give_clear_errors(name, message):
    with pytest.raises(PeerError, match=message):
        create_peer(name, [torch.nn.Parameter(torch.zeros(1))])


def test_missing_package_names_the_extra(monkeypatch):
    monkeypatch.setitem(PEERS, "ghost", Peer("ghost", "ghost-opt", "ghost_opt_not_installed", "Ghost", {}, "", ""))
    with pytest.raises(PeerError, match=r"'ghost-opt' is not installed: pip install \"gradretention\[peers\]\""):
        create_peer("ghost", [torch.nn.Parameter(torch.zeros(1))])


@pytest.mark.parametrize(("values", "message"), [
    ({"lrr": 1.0}, r"Unknown hyperparameter\(s\) lrr for optimizer 'prodigy'; valid: .*d_coef"),
    ({"lr": -1.0}, r"Invalid lr value: -1\.0"),
    ({"d_coef": -2.0}, r"Invalid d_coef value: -2\.0 \(valid: in \[0, inf\]\)"),
    ({"betas": (0.9, 1.5)}, r"Invalid betas value"),
])  # fmt: skip
def test_bad_hyperparameters_are_refused_before_construction(values, message):
    with pytest.raises(PeerError, match=message):
        create_peer("prodigy", [torch.nn.Parameter(torch.zeros(1))], values)


def test_package_refusal_names_the_spec():
    with pytest.raises(PeerError, match=r"refused 'dog\[reps_rel=-1\]'"):
        create_peer("dog", [torch.nn.Parameter(torch.zeros(1))], {"reps_rel": -1.0}, spec="dog[reps_rel=-1]")


def test_schedule_free_evaluates_the_averaged_iterate():
    # eval() swaps x (the average) into the params; train() swaps back y (the gradient point).
    model, inputs, labels = logistic_problem()
    opt = create_peer("schedulefree_adamw", model.parameters(), {"lr": 3e-2})
    opt.train()
    for _ in range(20):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(inputs), labels).backward()
        opt.step()
    y = [p.detach().clone() for p in model.parameters()]
    opt.eval()
    x = [p.detach().clone() for p in model.parameters()]
    beta1 = opt.param_groups[0]["betas"][0]
    for p, xi, yi in zip(model.parameters(), x, y):
        z = opt.state[p]["z"]
        # y = (1 - β1) z + β1 x: the train-mode point interpolates the average and the base sequence
        torch.testing.assert_close(yi, (1 - beta1) * z + beta1 * xi, rtol=1e-5, atol=1e-6)
        assert not torch.equal(xi, yi)


@pytest.mark.parametrize(("spec", "canonical", "cls"), [
    ("PRODIGY[d_coef=0.5]", "prodigy[d_coef=0.5]", "Prodigy"),
    ("pt:AdaBelief[lr=1e-3]", "pt:adabelief[lr=0.001]", "AdaBelief"),
    ("torch.optim:NAdam[lr=0.002]", "torch.optim:NAdam[lr=0.002]", "NAdam"),
])  # fmt: skip
def test_external_names_work_through_the_registry_api(spec, canonical, cls):
    from gradretention.optim import canonical_spec, create_optimizer, optimizer_info

    opt = create_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))], lr=None)
    assert type(opt).__name__ == cls and canonical_spec(spec) == canonical
    assert optimizer_info(canonical)["class"].endswith(cls)


def test_unknown_name_suggests_a_peer():
    from gradretention.optim import create_optimizer

    with pytest.raises(ValueError, match=r"Did you mean 'prodigy'\?.*external: prodigy.*MODULE:CLASS"):
        create_optimizer("prodigi", [torch.nn.Parameter(torch.zeros(1))])


def test_telemetry_of_reads_ours_and_the_peers():
    from gradretention.optim import create_optimizer
    from gradretention.optim.peers import telemetry_of

    p = torch.nn.Parameter(torch.ones(3))
    ours, theirs, plain = (create_optimizer(n, [p]) for n in ("adam_hd", "dadapt_adam", "adam"))
    assert telemetry_of(ours)["lr/g0"] == pytest.approx(1e-3)
    assert telemetry_of(theirs) == {"d": 1e-6} and telemetry_of(plain) == {}
