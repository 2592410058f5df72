"""Untrusted input: nothing is evaluated, unpickled unsafely, or fetched as remote code.

Static checks walk the syntax tree of every module under ``src/`` (so comments and
strings never count); dynamic checks feed real payloads — a spec and a config that try
to run code, checkpoints and cache files whose pickle asks for a callable — and assert
a clean refusal and no side effect.
"""

from __future__ import annotations

import ast
import os
from pathlib import Path

import pytest
import torch

import gradretention
from gradretention.bench.checkpoint import load_checkpoint, read_checkpoint_extra, save_checkpoint
from gradretention.cli import main
from gradretention.optim import create_optimizer, parse_spec
from gradretention.tasks.datacache import read_cache

SOURCE = Path(gradretention.__file__).parent
MODULES = sorted(SOURCE.rglob("*.py"))


def _calls(path: Path) -> list[ast.Call]:
    return [node for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))) if isinstance(node, ast.Call)]


def _dotted(node: ast.expr) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return "?"


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _where(path: Path, call: ast.Call) -> str:
    return f"{path.relative_to(SOURCE.parent)}:{call.lineno}"


def test_the_static_checks_see_the_whole_package():
    assert len(MODULES) > 50 and SOURCE / "optim" / "spec.py" in MODULES


def test_no_module_calls_eval_exec_compile_or_dunder_import():
    found = [f"{_where(path, call)} {_dotted(call.func)}(" for path in MODULES for call in _calls(path)
             if _dotted(call.func) in {"eval", "exec", "compile", "__import__", "builtins.eval", "builtins.exec"}]  # fmt: skip
    assert found == []


def test_every_torch_load_passes_weights_only_true():
    loads = [(path, call) for path in MODULES for call in _calls(path) if _dotted(call.func) == "torch.load"]
    assert loads  # checkpoints and the data cache do load
    unsafe = [_where(path, call) for path, call in loads
              if not (isinstance(flag := _keyword(call, "weights_only"), ast.Constant) and flag.value is True)]  # fmt: skip
    assert unsafe == []


def test_pickle_is_only_read_through_the_restricted_cifar_unpickler():
    uses = [_where(path, call) for path in MODULES for call in _calls(path)
            if _dotted(call.func) in {"pickle.load", "pickle.loads", "pickle.Unpickler", "marshal.loads"}]  # fmt: skip
    assert uses == []
    cifar = (SOURCE / "tasks" / "readers" / "cifar.py").read_text(encoding="utf-8")
    assert "class CifarUnpickler(pickle.Unpickler)" in cifar and "def find_class" in cifar


def test_hugging_face_loading_never_trusts_remote_code():
    hub_calls = [(path, call) for path in MODULES for call in _calls(path)
                 if _dotted(call.func).endswith(("from_pretrained", "load_dataset", "load_from_disk", "pipeline"))]  # fmt: skip
    assert hub_calls
    for path, call in hub_calls:
        flag = _keyword(call, "trust_remote_code")
        # Absent is safe too: datasets >= 4 and transformers default to False and refuse scripts.
        assert flag is None or (isinstance(flag, ast.Constant) and flag.value is False), _where(path, call)
        if _dotted(call.func).endswith("from_pretrained"):
            local = _keyword(call, "local_files_only")  # models come from a folder, never fetched
            assert isinstance(local, ast.Constant) and local.value is True, _where(path, call)
    assert not any("trust_remote_code=True" in path.read_text(encoding="utf-8") for path in MODULES)


def test_no_subprocess_runs_through_a_shell():
    shells = [_where(path, call) for path in MODULES for call in _calls(path)
              if isinstance(flag := _keyword(call, "shell"), ast.Constant) and flag.value is True]  # fmt: skip
    assert shells == [] and not any(_dotted(c.func) == "os.system" for p in MODULES for c in _calls(p))


CODE = "__import__('os').makedirs('{marker}')"


def test_a_spec_that_tries_to_run_code_is_refused_without_side_effects(tmp_path):
    marker = tmp_path / "pwned"
    spec = f"adam[lr={CODE.format(marker=marker)}]"
    with pytest.raises(ValueError, match=r"Cannot parse value .*expected a number, true/false, none, a word"):
        parse_spec(spec)
    with pytest.raises(ValueError, match="Cannot parse value"):
        create_optimizer(spec, [torch.nn.Parameter(torch.zeros(1))])
    out = tmp_path / "out"
    assert main(["run", "--task", "spiral", "--optimizer", spec, "--out", str(out)]) == 2
    assert not marker.exists() and not out.exists()  # refused before the output folder was touched


def test_a_config_file_that_tries_to_run_code_is_refused_without_side_effects(tmp_path, capsys):
    marker = tmp_path / "pwned"
    config = tmp_path / "sweep.toml"
    spec = f"adam[lr={CODE.format(marker=marker)}]".replace("'", "\\u0027")  # a TOML basic string
    config.write_text(f'tasks = ["spiral"]\noptimizers = ["{spec}"]\nout = "{tmp_path / "out"}"\n')
    assert main(["bench", "--config", str(config)]) == 2
    assert "Cannot parse value" in capsys.readouterr().err
    assert not marker.exists() and not (tmp_path / "out").exists()


class _Payload:
    """Pickles to a call of ``os.makedirs(marker)``: what an attacker's file would run."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return os.makedirs, (self.marker,)


def _malicious_checkpoint(path: Path, marker: Path) -> Path:
    model = torch.nn.Linear(2, 1)
    document = {"format": "gradretention.checkpoint", "version": 1, "epoch": 1, "model": model.state_dict(),
                "optimizer": None, "rng": {"torch": torch.get_rng_state(), "cuda": []},
                "extra": {"note": _Payload(marker)}}  # fmt: skip
    torch.save(document, path)
    return path


def test_the_payload_is_live_when_unpickled_unsafely(tmp_path):
    # The oracle for the refusals below: loading the same file without weights_only runs it.
    marker = tmp_path / "ran"
    path = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    torch.load(path, weights_only=False)
    assert marker.is_dir()


def test_a_checkpoint_with_a_malicious_reduce_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = _malicious_checkpoint(tmp_path / "evil.pt", marker)
    with pytest.raises(ValueError, match=r"evil\.pt: not a readable checkpoint \(torch\.load with weights_only=True"):
        load_checkpoint(path, torch.nn.Linear(2, 1))
    with pytest.raises(ValueError, match="not a readable checkpoint"):
        read_checkpoint_extra(path)
    assert not marker.exists()


def test_a_genuine_checkpoint_still_loads(tmp_path):
    model = torch.nn.Linear(2, 1)
    path = save_checkpoint(tmp_path / "good.pt", model, None, epoch=2, extra={"task": "spiral"})
    restored = torch.nn.Linear(2, 1)
    assert load_checkpoint(path, restored).extra == {"task": "spiral"}
    assert torch.equal(restored.weight, model.weight)


def test_a_malicious_data_cache_file_is_ignored_with_a_warning_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "cache.pt"
    torch.save({"format": "x", "payload": _Payload(marker)}, path)
    with pytest.warns(UserWarning, match="ignoring unreadable data cache"):
        assert read_cache(path) is None
    assert not marker.exists()


def test_the_torch_requirement_excludes_versions_whose_weights_only_load_runs_code():
    # Before torch 2.6, torch.load(weights_only=True) could still be made to execute code
    # (CVE-2025-32434); every checkpoint and data cache load here relies on it.
    from packaging.requirements import Requirement
    from packaging.version import Version

    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib

    pyproject = tomllib.loads((SOURCE.parents[1] / "pyproject.toml").read_text(encoding="utf-8"))
    torch_requirements = [Requirement(line) for line in pyproject["project"]["dependencies"]
                          if Requirement(line).name == "torch"]  # fmt: skip
    assert len(torch_requirements) == 1
    specifier = torch_requirements[0].specifier
    assert not specifier.contains("2.5.1") and specifier.contains("2.6.0")
    assert Version(torch.__version__).release >= (2, 6)
