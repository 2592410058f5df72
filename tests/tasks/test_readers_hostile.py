"""Issue 20's reader faults: each ends in a clear error naming the file, never a traceback or a wrong success.

Empty files and splits are refused before any tokenizer runs; SQuAD answers outside their
context name the file and the question id; a gzipped IDX file is refused before its payload
is allocated when the file could not hold what its header declares; CIFAR batches pickled
again by Python 3 (protocol 2, ``_codecs.encode``) load through the same restricted
unpickler, which still refuses everything else.
"""

from __future__ import annotations

import gzip
import pickle
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest

from gradretention.tasks.readers import (
    DatasetFormatError,
    load_cifar_pickle,
    read_ag_news_csv,
    read_aclimdb,
    read_cifar10_label_names,
    read_cifar_batch,
    read_idx,
    read_idx_images,
    read_imdb_csv,
    read_squad,
)
from gradretention.tasks.readers.idx import IMAGES_MAGIC, LABELS_MAGIC
from gradretention.tasks.registry import get_task

from .readers.realformats import (
    Reducing,
    cifar_batch,
    squad_document,
    write_aclimdb,
    write_ag_news,
    write_csv,
    write_json,
)

FASHION = Path("/usr/share/datasets/fashion-mnist")


@pytest.fixture
def offline(monkeypatch):
    """Text tasks: the shipped MiniLM, offline, 16 tokens, no cached payload from another test."""
    from gradretention.tasks import datacache

    for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.setenv(name, "1")
    monkeypatch.setenv("GRADRETENTION_MAX_LEN", "16")
    for name in ("GRADRETENTION_DATA", "GRADRETENTION_DOWNLOAD", "GRADRETENTION_MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    datacache.clear_memory()
    yield
    datacache.clear_memory()


def _news(path: Path, rows: int) -> None:
    write_ag_news(path, [(str(i % 4 + 1), f"Headline {i}", f"Story {i}") for i in range(rows)])


# Empty files and splits: refused before tokenizing.


def test_an_empty_ag_news_file_is_refused_naming_it(tmp_path):
    path = tmp_path / "train.csv"
    path.write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=r"train\.csv: holds no rows; expected AG_NEWS CSV rows"):
        read_ag_news_csv(path)


def test_agnews_bert_with_an_empty_train_file_fails_before_tokenizing(tmp_path, offline):
    _news(tmp_path / "ag_news" / "test.csv", 4)
    (tmp_path / "ag_news" / "train.csv").write_bytes(b"")
    with pytest.raises(DatasetFormatError, match=r"ag_news/train\.csv: holds no rows"):
        get_task("agnews-bert").load(0, tmp_path)


def test_a_single_training_row_is_refused_before_tokenizing(tmp_path, offline):
    # One row cannot be split into train and validation; said before the tokenizer runs.
    _news(tmp_path / "ag_news" / "test.csv", 4)
    _news(tmp_path / "ag_news" / "train.csv", 1)
    expected = r"ag_news train split under .*ag_news: holds 1 examples, need at least 2"
    with pytest.raises(DatasetFormatError, match=expected):
        get_task("agnews-bert").load(0, tmp_path)


def test_imdb_bert_with_empty_review_folders_fails_naming_the_split(tmp_path, offline):
    write_aclimdb(tmp_path / "aclImdb", {"train/pos": {}, "train/neg": {}, "test/pos": {"0_9.txt": "good"},
                                         "test/neg": {"0_1.txt": "bad"}})  # fmt: skip
    with pytest.raises(DatasetFormatError, match=r"aclImdb/train: holds no reviews"):
        get_task("imdb-bert").load(0, tmp_path)


def test_an_imdb_csv_with_only_its_header_is_refused(tmp_path):
    path = tmp_path / "train.csv"
    write_csv(path, ["text", "label"], [])
    with pytest.raises(DatasetFormatError, match=r"train\.csv: holds no reviews"):
        read_imdb_csv(path)


def test_empty_aclimdb_folders_are_refused(tmp_path):
    write_aclimdb(tmp_path, {"test/pos": {}, "test/neg": {}})
    with pytest.raises(DatasetFormatError, match=r"test: holds no reviews; expected <id>_<rating>\.txt files"):
        read_aclimdb(tmp_path, "test")


def test_squad_without_articles_is_refused_naming_the_file(tmp_path):
    path = write_json(tmp_path / "train-v1.1.json", {"version": "1.1", "data": []})
    with pytest.raises(DatasetFormatError, match=r"train-v1\.1\.json: holds no questions \(0 articles\)"):
        read_squad(path)


def test_squad_bert_with_an_empty_train_file_fails_before_tokenizing(tmp_path, offline):
    write_json(tmp_path / "squad" / "train-v1.1.json", {"version": "1.1", "data": []})
    write_json(tmp_path / "squad" / "dev-v1.1.json", squad_document())
    with pytest.raises(DatasetFormatError, match=r"train-v1\.1\.json: holds no questions"):
        get_task("squad-bert").load(0, tmp_path)


# SQuAD answers outside their context.


def _squad_with_start(tmp_path: Path, start: int) -> Path:
    document = squad_document()
    document["data"][0]["paragraphs"][0]["qas"][1]["answers"][0]["answer_start"] = start
    return write_json(tmp_path / "train-v1.1.json", document)


@pytest.mark.parametrize("start", [10**30, -1, -(10**30), 60])
def test_an_answer_outside_its_context_names_the_file_and_question(tmp_path, start):
    # q2's answer "Carolina Panthers" (17 chars) fits in the 76-char context at 0..59.
    path = _squad_with_start(tmp_path, start)
    expected = rf"train-v1\.1\.json: question id 'q2' .*answer_start {start} .*valid answer_start: 0\.\.59"
    with pytest.raises(DatasetFormatError, match=expected):
        read_squad(path)


def test_an_answer_at_the_last_place_in_its_context_is_kept(tmp_path):
    squad = read_squad(_squad_with_start(tmp_path, 59))
    assert squad.examples[1].answer_starts == (59,) and squad.answer_mismatches == 1


def test_squad_bert_refuses_an_answer_outside_its_context_instead_of_training_on_no_answer(tmp_path, offline):
    document = squad_document()
    document["data"][1]["paragraphs"][0]["qas"][0]["answers"][0]["answer_start"] = 10**6
    write_json(tmp_path / "squad" / "train-v1.1.json", document)
    write_json(tmp_path / "squad" / "dev-v1.1.json", squad_document())
    with pytest.raises(DatasetFormatError, match=r"train-v1\.1\.json: question id 'q3' .*answer_start 1000000"):
        get_task("squad-bert").load(0, tmp_path)


def test_a_hugging_face_squad_answer_outside_its_context_names_the_question():
    datasets = pytest.importorskip("datasets")
    from gradretention.tasks.squad_task import hf_squad

    def split(start: int) -> object:
        return datasets.Dataset.from_dict({
            "id": ["a", "b"], "title": ["T1", "T2"], "question": ["Who?", "What?"], "context": ["Ann ran.", "Bo sat."],
            "answers": [{"text": ["Ann"], "answer_start": [0]}, {"text": ["sat"], "answer_start": [start]}],
        })  # fmt: skip

    assert len(hf_squad(datasets.DatasetDict({"train": split(3), "validation": split(3)}))["train"]) == 2
    with pytest.raises(DatasetFormatError, match=r"split 'train', question id 'b' \(answer 0\): answer_start 99"):
        hf_squad(datasets.DatasetDict({"train": split(99), "validation": split(3)}))


def test_a_hugging_face_text_split_without_rows_is_refused():
    datasets = pytest.importorskip("datasets")
    from gradretention.tasks.text_tasks import hf_texts

    rows = datasets.Dataset.from_dict({"text": ["a b", "c d"], "label": [0, 1]})
    empty = datasets.Dataset.from_dict({"text": [], "label": []})
    with pytest.raises(DatasetFormatError, match=r"Hugging Face imdb, split 'test': holds 0 examples, need at least 1"):
        hf_texts("imdb", datasets.DatasetDict({"train": rows, "test": empty}))


# Gzipped IDX files: bounded by what the compressed file could hold.


def _zeros_gzip(header: bytes, zeros: int) -> bytes:
    """One gzip member of ``header`` then ``zeros`` zero bytes, built in 1 MiB steps."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    parts = [compressor.compress(header)]
    for start in range(0, zeros, 1 << 20):
        parts.append(compressor.compress(bytes(min(1 << 20, zeros - start))))
    return b"".join(parts) + compressor.flush()


def test_a_small_gzip_declaring_a_huge_payload_is_refused_before_allocating(tmp_path):
    # A genuine stream: header + 48 MiB of zeros really inflates to what it declares, from ~50 KB.
    count = 48 << 20
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(_zeros_gzip(struct.pack(">II", LABELS_MAGIC, count), count))
    size = path.stat().st_size
    assert size * 64 < count  # far beyond any real ratio (MNIST: 4.8:1)
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFormatError, match=rf"a {size}-byte gzip file holds at most .* refused before"):
            read_idx(path, LABELS_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"refusing the file allocated {peak} bytes"


def test_a_gzip_trailer_that_disagrees_with_the_header_is_refused_before_allocating(tmp_path):
    # The header claims 4 MiB; the stream holds 16 bytes (its trailer says so). Nothing is allocated.
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(gzip.compress(struct.pack(">IIII", IMAGES_MAGIC, 4096, 32, 32) + bytes(16)))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFormatError, match=r"make 4194320 bytes, but the gzip trailer records 32"):
            read_idx(path, IMAGES_MAGIC)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, f"refusing the file allocated {peak} bytes"


def test_a_plain_idx_file_shorter_than_its_header_declares_is_refused_before_allocating(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte"
    path.write_bytes(struct.pack(">IIII", IMAGES_MAGIC, 60000, 28, 28) + bytes(10))
    tracemalloc.start()
    try:
        with pytest.raises(DatasetFormatError, match=r"need 47040000 bytes, found 10"):
            read_idx_images(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20


@pytest.mark.skipif(not FASHION.is_dir(), reason=f"Fashion-MNIST is not at {FASHION}")
def test_real_fashion_mnist_files_pass_every_bound():
    images = read_idx_images(FASHION / "train-images-idx3-ubyte.gz")
    labels = read_idx(FASHION / "t10k-labels-idx1-ubyte.gz", LABELS_MAGIC)
    assert images.shape == (60000, 28, 28) and images.dtype == np.uint8 and images.flags.writeable
    assert labels.shape == (10000,) and set(np.unique(labels).tolist()) == set(range(10))


# CIFAR batches pickled again by Python 3.


def _batch() -> dict[bytes, object]:
    images = np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3, 32, 32)
    return cifar_batch(images, [3, 9], "1")


@pytest.mark.parametrize("keys", ["bytes", "str"])
def test_a_batch_pickled_again_by_python_3_reads_back_exactly(tmp_path, keys):
    batch = _batch()
    if keys == "str":  # loaded with encoding="latin1", then saved again: str keys and names
        batch = {key.decode(): value.decode() if isinstance(value, bytes) else value for key, value in batch.items()}
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps(batch, protocol=2))
    assert b"_codecs\nencode" in path.read_bytes()
    images, labels = read_cifar_batch(path)
    np.testing.assert_array_equal(images, np.arange(2 * 3072, dtype=np.uint8).reshape(2, 3, 32, 32))
    assert labels.tolist() == [3, 9]


def test_label_names_pickled_again_by_python_3_read_back(tmp_path):
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    (tmp_path / "batches.meta").write_bytes(pickle.dumps({"label_names": names, "num_vis": 3072}, protocol=2))
    assert read_cifar10_label_names(tmp_path) == names


@pytest.mark.parametrize(
    "args", [("x", "rot13"), ("x", "utf-8"), (b"x", "latin1"), ("x", "latin1", "ignore"), ("x",)],
    ids=["rot13", "utf8", "bytes-in", "errors", "default-encoding"],
)  # fmt: skip
def test_codecs_encode_is_allowed_only_as_latin1_text_to_bytes(tmp_path, args):
    import _codecs

    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": Reducing(_codecs.encode, args)}, protocol=2))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: refused _codecs\.encode"):
        load_cifar_pickle(path)


@pytest.mark.parametrize("name", ["decode", "lookup", "escape_decode"])
def test_other_codecs_functions_stay_refused(tmp_path, name):
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02c_codecs\n" + name.encode() + b"\nX\x01\x00\x00\x00x\x85R.")
    with pytest.raises(DatasetFormatError, match=rf"refused global '_codecs\.{name}'"):
        load_cifar_pickle(path)
