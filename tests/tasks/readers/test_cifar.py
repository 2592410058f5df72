"""CIFAR-10 reader: Python 2 pickles read back exactly, and hostile pickles refused."""

from __future__ import annotations

import os
import pickle
import pickletools
import warnings

import numpy as np
import pytest

from gradretention.tasks.readers import (
    DatasetFormatError,
    load_cifar_pickle,
    read_cifar10,
    read_cifar10_label_names,
    read_cifar_batch,
)

from .realformats import CIFAR_LABEL_NAMES, Reducing, cifar_batch, py2_pickle, write_cifar10


def test_fixture_is_a_python2_pickle_like_the_real_files(tmp_path, rng):
    write_cifar10(tmp_path, rng)
    raw = (tmp_path / "data_batch_1").read_bytes()
    opcodes = {opcode.name for opcode, _, _ in pickletools.genops(raw)}
    # Python 2 str -> (SHORT_)BINSTRING; a Python 3 pickle would use BINUNICODE and _codecs.encode.
    assert {"PROTO", "SHORT_BINSTRING", "BINSTRING", "GLOBAL"} <= opcodes
    assert not opcodes & {"BINUNICODE", "SHORT_BINBYTES", "BINBYTES"}
    assert raw.startswith(b"\x80\x02}") and b"cnumpy.core.multiarray\n_reconstruct\n" in raw


@pytest.mark.parametrize("numpy_module", ["numpy.core.multiarray", "numpy._core.multiarray"])
def test_splits_read_back_exactly(tmp_path, rng, numpy_module):
    written = write_cifar10(tmp_path, rng, per_batch=3, numpy_module=numpy_module)
    images, labels = read_cifar10(tmp_path, "train")
    expected = [written[f"data_batch_{i}"] for i in range(1, 6)]
    np.testing.assert_array_equal(images, np.concatenate([batch_images for batch_images, _ in expected]))
    assert labels.tolist() == [label for _, batch_labels in expected for label in batch_labels]
    assert images.shape == (15, 3, 32, 32) and images.dtype == np.uint8 and labels.dtype == np.int64
    test_images, test_labels = read_cifar10(tmp_path, "test")
    np.testing.assert_array_equal(test_images, written["test_batch"][0])
    assert test_labels.tolist() == written["test_batch"][1]


def test_row_layout_is_red_then_green_then_blue_planes(tmp_path):
    # Row of the real file: 1024 red, 1024 green, 1024 blue bytes, each plane row-major.
    row = np.zeros(3072, dtype=np.uint8)
    row[0 * 1024 + 5 * 32 + 7] = 11  # red, y=5, x=7
    row[1 * 1024 + 31 * 32 + 0] = 22  # green, y=31, x=0
    row[2 * 1024 + 0 * 32 + 31] = 33  # blue, y=0, x=31
    batch = {b"batch_label": b"b", b"labels": [4], b"data": row.reshape(1, 3072), b"filenames": [b"f.png"]}
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle(batch))
    images, labels = read_cifar_batch(path)
    assert (images[0, 0, 5, 7], images[0, 1, 31, 0], images[0, 2, 0, 31]) == (11, 22, 33)
    assert int(images.sum()) == 66 and labels.tolist() == [4]


def test_safe_loader_agrees_with_plain_pickle_on_real_format(tmp_path, rng):
    write_cifar10(tmp_path, rng)
    path = tmp_path / "data_batch_2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # numpy.core is a deprecated alias
        oracle = pickle.loads(path.read_bytes(), encoding="bytes")  # trusted: we wrote it
    safe = load_cifar_pickle(path)
    assert set(safe) == set(oracle) == {b"batch_label", b"labels", b"data", b"filenames"}
    np.testing.assert_array_equal(safe[b"data"], oracle[b"data"])
    assert safe[b"data"].dtype == oracle[b"data"].dtype == np.uint8
    assert safe[b"labels"] == oracle[b"labels"] and safe[b"filenames"] == oracle[b"filenames"]


def test_label_names_from_meta(tmp_path, rng):
    write_cifar10(tmp_path, rng)
    assert read_cifar10_label_names(tmp_path) == list(CIFAR_LABEL_NAMES)


def test_os_system_global_is_refused_and_never_called(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle({b"data": Reducing(os.system, (f"touch {marker}",))}))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: refused global 'posix\.system'|refused global 'nt\.system'"):
        read_cifar_batch(path)
    assert not marker.exists()


@pytest.mark.parametrize(
    "module, name",
    [("os", "system"), ("builtins", "eval"), ("__builtin__", "getattr"), ("subprocess", "Popen"),
     ("numpy", "load"), ("numpy.testing._private.utils", "runstring"), ("numpy.core.multiarray", "scalar")],
)  # fmt: skip
def test_every_global_outside_the_allow_list_is_refused(tmp_path, module, name):
    path = tmp_path / "test_batch"
    path.write_bytes(b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"U\x02hi\x85R.")
    with pytest.raises(DatasetFormatError, match=rf"test_batch: refused global '{module}\.{name}'"):
        load_cifar_pickle(path)


def test_object_dtype_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle({b"data": Reducing(np.dtype, ("O8", False, True))}))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: refused numpy dtype b'O8'"):
        load_cifar_pickle(path)


def test_array_shape_that_does_not_match_its_bytes_is_refused(tmp_path):
    from numpy._core.multiarray import _reconstruct

    state = (1, (10**12,), np.dtype("u1"), False, b"abc")
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle({b"data": Reducing(_reconstruct, (np.ndarray, (0,), b"b"), state)}))
    with pytest.raises(DatasetFormatError, match=r"data_batch_1: ndarray of shape \(1000000000000,\)"):
        load_cifar_pickle(path)


def test_ndarray_called_directly_is_refused(tmp_path):
    path = tmp_path / "data_batch_1"
    path.write_bytes(py2_pickle({b"data": Reducing(np.ndarray, ((10**6,),))}))
    with pytest.raises(DatasetFormatError, match="data_batch_1: refused direct call of numpy.ndarray"):
        load_cifar_pickle(path)


def test_labels_outside_0_to_9_are_refused(tmp_path):
    path = tmp_path / "data_batch_3"
    path.write_bytes(py2_pickle(cifar_batch(np.zeros((2, 3, 32, 32), np.uint8), [1, 10], "3")))
    with pytest.raises(DatasetFormatError, match=r"data_batch_3: labels must be 0\.\.9, found 10 at index 1"):
        read_cifar_batch(path)


def test_wrong_data_shape_and_missing_keys_are_refused(tmp_path):
    path = tmp_path / "data_batch_4"
    path.write_bytes(py2_pickle({b"data": np.zeros((2, 1024), np.uint8), b"labels": [0, 1]}))
    with pytest.raises(DatasetFormatError, match=r"must be a uint8 array \(N, 3072\), found uint8 \(2, 1024\)"):
        read_cifar_batch(path)
    path.write_bytes(py2_pickle({b"pixels": np.zeros((1, 3072), np.uint8)}))
    with pytest.raises(DatasetFormatError, match=r"expected keys b'data' and b'labels', found \[b'pixels'\]"):
        read_cifar_batch(path)


def test_non_pickle_and_non_dict_are_refused(tmp_path):
    path = tmp_path / "data_batch_5"
    path.write_bytes(b"PK\x03\x04 this is a zip, not a pickle")
    with pytest.raises(DatasetFormatError, match="data_batch_5: not a readable CIFAR pickle"):
        load_cifar_pickle(path)
    path.write_bytes(py2_pickle([1, 2, 3]))
    with pytest.raises(DatasetFormatError, match="expected a pickled dict, found list"):
        load_cifar_pickle(path)


def test_missing_batch_raises_file_not_found(tmp_path, rng):
    write_cifar10(tmp_path, rng)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        read_cifar10(tmp_path, "train")
