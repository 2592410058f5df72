"""Property-based fuzzing of issue 20's hostile inputs: documented errors only, memory bounded by the file.

Complements ``test_fuzz_parsers.py`` (random and near-valid bytes for every reader, specs,
TOML) with the shapes that broke before: gzipped IDX headers of any size with forged
trailers and extra members, CIFAR batches pickled again by Python 3, SQuAD answer starts of
any magnitude, spec and TOML numbers at the edges of int64 and float64, and the executors
built from whatever a config accepts. Example counts stay modest (a few seconds each);
``RELIABILITY_EXAMPLES=5000`` explores further.
"""

from __future__ import annotations

import gzip
import json
import os
import pickle
import struct
import tracemalloc

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gradretention.bench.config import config_fields, load_sweep_config
from gradretention.bench.executors import LocalExecutor
from gradretention.bench.ray_executor import make_executor
from gradretention.cli import main
from gradretention.optim import available_optimizers, create_optimizer, optimizer_info
from gradretention.tasks.readers import DatasetFormatError, load_cifar_pickle, read_idx, read_squad
from gradretention.tasks.readers.idx import IMAGES_MAGIC
from tests.tasks.readers.realformats import cifar_batch, squad_document
from tests.tasks.readers.test_fuzz import mutated

FUZZ = settings(max_examples=int(os.environ.get("RELIABILITY_EXAMPLES", "60")), deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture])  # fmt: skip
MIB = 1 << 20

# --- gzipped IDX: what a header may cost ---------------------------------------------------

_DIM = st.one_of(st.integers(0, 40), st.integers(0, 2**32 - 1))


@FUZZ
@given(dims=st.tuples(_DIM, _DIM, _DIM), body=st.integers(0, 3000), random_body=st.booleans(),
       forge_trailer=st.booleans(), extra_member=st.binary(max_size=16))  # fmt: skip
def test_a_gzipped_idx_header_costs_at_most_what_the_file_could_hold(tmp_path, dims, body, random_body,
                                                                     forge_trailer, extra_member):  # fmt: skip
    header = struct.pack(">IIII", IMAGES_MAGIC, *dims)
    payload = np.random.default_rng(body).bytes(body) if random_body else bytes(body)
    data = gzip.compress(header + payload) + (gzip.compress(extra_member) if extra_member else b"")
    if forge_trailer:  # make the trailer agree with the header: only the streaming cap is left
        data = data[:-4] + struct.pack("<I", (len(header) + int(np.prod(dims, dtype=object))) % 2**32)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(data)
    tracemalloc.start()
    try:
        images = read_idx(path, IMAGES_MAGIC)
    except DatasetFormatError as error:
        assert str(path) in str(error)
        images = None
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    # The design's bound: max(16 MiB, 64 x the compressed size), plus one 1 MiB chunk and change.
    assert peak <= max(16 * MIB, 64 * len(data)) + 2 * MIB
    if images is not None:
        assert images.shape == dims and images.tobytes() == payload and not extra_member


# --- CIFAR batches pickled again by Python 3 -----------------------------------------------

VALID_PY3_PICKLE = pickle.dumps(cifar_batch(np.arange(3072, dtype=np.uint8).reshape(1, 3, 32, 32), [4], "1"),
                                protocol=2)  # fmt: skip


def test_the_python_3_seed_pickle_is_a_valid_batch(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(VALID_PY3_PICKLE)
    batch = load_cifar_pickle(path)
    assert batch[b"labels"] == [4] and batch[b"data"].shape == (1, 3072)


@FUZZ
@given(data=mutated(VALID_PY3_PICKLE))
def test_python_3_pickles_with_mutations_raise_only_format_errors(tmp_path, data):
    path = tmp_path / "data_batch_1"
    path.write_bytes(data)
    try:
        batch = load_cifar_pickle(path)
    except DatasetFormatError as error:
        assert str(path) in str(error)
        return
    assert all(isinstance(key, bytes) for key in batch)
    assert all(isinstance(value, (np.ndarray, bytes, list, int, float, str, type(None), dict, tuple, bool))
               for value in batch.values())  # fmt: skip


# --- SQuAD answer starts -------------------------------------------------------------------

_ANSWERS = [(a, p, q, n) for a, article in enumerate(squad_document()["data"])
            for p, paragraph in enumerate(article["paragraphs"]) for q, qa in enumerate(paragraph["qas"])
            for n, _ in enumerate(qa["answers"])]  # fmt: skip


@FUZZ
@given(where=st.sampled_from(_ANSWERS), start=st.one_of(st.integers(-5, 90), st.integers(-(2**80), 2**80)))
def test_any_answer_start_is_inside_its_context_or_names_the_question(tmp_path, where, start):
    document = squad_document()
    a, p, q, n = where
    qa = document["data"][a]["paragraphs"][p]["qas"][q]
    qa["answers"][n]["answer_start"] = start
    path = tmp_path / "train-v1.1.json"
    path.write_text(json.dumps(document))
    try:
        squad = read_squad(path)
    except DatasetFormatError as error:
        assert str(path) in str(error) and f"question id {qa['id']!r}" in str(error) and str(start) in str(error)
        return
    for example in squad.examples:
        for text, first in zip(example.answer_texts, example.answer_starts):
            assert 0 <= first and first + len(text) <= len(example.context)


# --- spec and TOML numbers at the edges ----------------------------------------------------

_EDGE_NUMBERS = st.one_of(
    st.sampled_from(["9223372036854775807", "18446744073709551616", "-9223372036854775808", "1e308", "1e309",
                     "-1e309", "5e-324", "1e-400", "nan", "inf", "0", "-0.0"]),
    st.integers(-(2**80), 2**80).map(str),
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
)  # fmt: skip
_HYPERPARAMETERS = sorted({(name, key) for name in available_optimizers() for key in optimizer_info(name)["defaults"]})


@FUZZ
@given(target=st.sampled_from(_HYPERPARAMETERS), value=_EDGE_NUMBERS, as_tuple=st.booleans())
def test_spec_numbers_of_any_magnitude_raise_only_value_errors(target, value, as_tuple):
    name, key = target
    spec = f"{name}[{key}=({value},{value})]" if as_tuple else f"{name}[{key}={value}]"
    try:
        create_optimizer(spec, [torch.nn.Parameter(torch.zeros(2))])
    except ValueError as error:
        assert str(error)


@FUZZ
@given(field=st.sampled_from(config_fields()), value=_EDGE_NUMBERS)
def test_toml_numbers_of_any_magnitude_give_a_config_and_executor_or_a_value_error(tmp_path, field, value):
    path = tmp_path / "sweep.toml"
    path.write_text(f"{field} = {value}\n", encoding="utf-8")
    try:
        config = load_sweep_config(path)
        executor = make_executor("local", config.workers, threads=config.threads)
    except ValueError as error:
        assert str(error)
        return
    assert isinstance(executor, LocalExecutor)


# --- the bounds that stopped the overflow and the thread bomb ------------------------------


@pytest.mark.parametrize("workers, threads, message", [
    (2**63 - 1, None, r"workers must be <= 1024 \(each one imports torch\), got 9223372036854775807"),
    (None, 100_000, r"threads must be <= 1024 \(intra-op threads per run\), got 100000"),
    (0, None, "workers must be >= 1, got 0"),
])  # fmt: skip
def test_worker_and_thread_counts_beyond_any_machine_are_refused(workers, threads, message):
    with pytest.raises(ValueError, match=message):
        LocalExecutor(workers=workers, threads=threads)


def test_a_toml_with_an_int64_worker_count_exits_2_naming_the_bound(tmp_path, capsys):
    path = tmp_path / "sweep.toml"
    path.write_text(f'tasks = ["spiral"]\noptimizers = ["sgd"]\nepochs = 1\nworkers = {2**63 - 1}\n'
                    f'out = "{(tmp_path / "out").as_posix()}"\n')  # fmt: skip
    assert main(["bench", "--config", str(path)]) == 2
    assert "workers must be <= 1024" in capsys.readouterr().err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
