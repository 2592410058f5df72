"""CIFAR-10 from the official ``cifar-10-batches-py/`` folder, unpickled safely.

The real batch files are Python 2 pickles (protocol 2) of a dict with byte-string keys:
``b"data"`` a ``uint8`` array ``(10000, 3072)`` (1024 red, 1024 green, 1024 blue values
per row, each plane row-major 32x32), ``b"labels"`` a list of ints 0-9, plus
``b"batch_label"`` and ``b"filenames"``. ``batches.meta`` holds ``b"label_names"``.
They must be opened with ``encoding="bytes"`` because Python 2 strings carry raw bytes.

Batches re-pickled by Python 3 at protocol 2 (``pickle.dump(batch, f, protocol=2)``
after loading them) are read too: Python 3 writes each ``bytes`` object there as
``_codecs.encode(text, "latin1")``, and their keys may be ``str`` when they were loaded
with ``encoding="latin1"`` (they are turned back into ``bytes``).

``pickle.load`` would run any callable the file names, so :class:`CifarUnpickler`
resolves exactly the four globals a numpy array and Python 3's bytes need and nothing
else, and even those are replaced by stand-ins that validate their arguments and
state before numpy sees them: a hostile file can neither call ``os.system`` nor ask
numpy for a petabyte array or an object dtype.
"""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from .errors import DatasetFormatError

CIFAR_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{index}" for index in range(1, 6))
TEST_BATCHES = ("test_batch",)
META_FILE = "batches.meta"
NUM_CLASSES = 10
MAX_FILE_BYTES = 1 << 29  # 512 MiB; a real batch is 31 MB
MAX_ELEMENTS = 10**9
_NUMERIC_DTYPES = frozenset(f"{kind}{size}" for kind in "iu" for size in (1, 2, 4, 8)) | {"f4", "f8", "b1"}
_BYTE_ORDERS = (b"|", b"<", b">", b"=", "|", "<", ">", "=")


class _PickledDtype:
    """Stand-in for ``numpy.dtype(name, align, copy)``: only plain numeric dtypes."""

    dtype: np.dtype | None = None  # stays None if a pickle builds one with NEWOBJ, skipping __init__

    def __init__(self, name: Any, align: Any = False, copy: Any = True) -> None:
        text = name.decode("ascii", "replace") if isinstance(name, bytes) else name
        if text not in _NUMERIC_DTYPES:
            raise DatasetFormatError(f"refused numpy dtype {name!r}; allowed: {', '.join(sorted(_NUMERIC_DTYPES))}")
        self.dtype = np.dtype(text)

    def __setstate__(self, state: Any) -> None:
        # numpy writes (3, byteorder, None, None, None, -1, -1, 0) for plain dtypes; anything
        # with a subarray, field names or fields would describe a structured dtype.
        if not isinstance(state, tuple) or len(state) < 5 or state[1] not in _BYTE_ORDERS:
            raise DatasetFormatError(f"refused numpy dtype state {state!r:.80}")
        if any(part is not None for part in state[2:5]):
            raise DatasetFormatError("refused structured numpy dtype in pickle")
        order = state[1].decode("ascii") if isinstance(state[1], bytes) else state[1]
        if order in "<>":
            self.dtype = self.dtype.newbyteorder(order)


class _PickledArray:
    """Stand-in for ``numpy.core.multiarray._reconstruct(ndarray, shape, code)`` + its state."""

    array: np.ndarray | None = None

    def __init__(self, subtype: Any, shape: Any, code: Any) -> None:
        if subtype is not _ndarray_marker:
            raise DatasetFormatError(f"refused _reconstruct of {subtype!r:.80}; only numpy.ndarray is allowed")

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) != 5:
            raise DatasetFormatError(f"refused ndarray state of {type(state).__name__}; expected a 5-tuple")
        _, shape, dtype, fortran, data = state
        if not isinstance(shape, tuple) or not all(type(dim) is int and dim >= 0 for dim in shape):
            raise DatasetFormatError(f"refused ndarray shape {shape!r:.80}")
        if not isinstance(dtype, _PickledDtype) or dtype.dtype is None or not isinstance(data, bytes):
            raise DatasetFormatError("refused ndarray state: expected a plain numeric dtype and raw bytes")
        count = math.prod(shape)
        if count > MAX_ELEMENTS or count * dtype.dtype.itemsize != len(data):
            raise DatasetFormatError(
                f"ndarray of shape {shape} and dtype {dtype.dtype} needs {count * dtype.dtype.itemsize} bytes, "
                f"found {len(data)}"
            )
        flat = np.frombuffer(data, dtype=dtype.dtype)
        self.array = flat.reshape(shape, order="F" if fortran else "C")


def _ndarray_marker(*args: Any) -> None:
    """What ``numpy.ndarray`` resolves to: only usable as ``_reconstruct``'s first argument."""
    raise DatasetFormatError("refused direct call of numpy.ndarray in pickle")


def _latin1_bytes(text: Any, encoding: Any = "utf-8", errors: Any = "strict") -> bytes:
    """Stand-in for ``_codecs.encode``: only ``encode(str, "latin1")``, Python 3's protocol-2 ``bytes``."""
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1") or errors != "strict":
        raise DatasetFormatError(
            f"refused _codecs.encode({type(text).__name__}, {encoding!r:.20}, {errors!r:.20}); "
            "only encode(text, 'latin1') is allowed (how Python 3 pickles bytes at protocol 2)"
        )
    return text.encode("latin-1")


_ALLOWED_GLOBALS = {
    ("_codecs", "encode"): _latin1_bytes,
    ("numpy.core.multiarray", "_reconstruct"): _PickledArray,
    ("numpy._core.multiarray", "_reconstruct"): _PickledArray,
    ("numpy", "ndarray"): _ndarray_marker,
    ("numpy", "dtype"): _PickledDtype,
}


class CifarUnpickler(pickle.Unpickler):
    """An unpickler that resolves only the globals the real CIFAR files contain.

    Allowed: ``numpy.core.multiarray._reconstruct`` (also spelled ``numpy._core``),
    ``numpy.ndarray``, ``numpy.dtype`` and ``_codecs.encode`` (latin-1 text to bytes
    only, as Python 3 pickles bytes at protocol 2). Any other global raises
    :class:`DatasetFormatError` naming the file and the refused global.
    """

    def __init__(self, file: io.BytesIO, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self._path = path

    def find_class(self, module: str, name: str) -> Any:
        allowed = _ALLOWED_GLOBALS.get((module, name))
        if allowed is None:
            raise DatasetFormatError(
                f"{self._path}: refused global '{module}.{name}' in pickle; CIFAR files only need "
                "numpy.core.multiarray._reconstruct, numpy.ndarray, numpy.dtype and _codecs.encode"
            )
        return allowed


def load_cifar_pickle(path: str | Path) -> dict[bytes, Any]:
    """Safely unpickle one CIFAR file into a dict with ``bytes`` keys and real numpy arrays.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: not a pickle, a refused global, or not a dict (message names the file).
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetFormatError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a CIFAR batch can be")
    raw = path.read_bytes()
    try:
        loaded = CifarUnpickler(io.BytesIO(raw), path).load()
    except DatasetFormatError as error:
        if str(path) in str(error):
            raise
        raise DatasetFormatError(f"{path}: {error}") from error
    except Exception as error:  # noqa: BLE001 - hostile bytes can raise nearly any type from the unpickler
        raise DatasetFormatError(f"{path}: not a readable CIFAR pickle ({type(error).__name__}: {error})") from error
    if not isinstance(loaded, dict):
        raise DatasetFormatError(f"{path}: expected a pickled dict, found {type(loaded).__name__}")
    # Keys are str when a batch was loaded with encoding="latin1" and pickled again by Python 3.
    return {_as_bytes(key): _materialise(path, value) for key, value in loaded.items()}


def _as_bytes(key: Any) -> Any:
    return key.encode("latin-1") if isinstance(key, str) else key


def _materialise(path: Path, value: Any) -> Any:
    if isinstance(value, _PickledArray):
        if value.array is None:
            raise DatasetFormatError(f"{path}: pickled ndarray has no state")
        return value.array
    if isinstance(value, _PickledDtype):
        raise DatasetFormatError(f"{path}: unexpected bare dtype in pickle")
    return value


def read_cifar_batch(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Images ``uint8 (N, 3, 32, 32)`` and labels ``int64 (N,)`` from one batch file."""
    path = Path(path)
    batch = load_cifar_pickle(path)
    missing = [key for key in (b"data", b"labels") if key not in batch]
    if missing:
        raise DatasetFormatError(f"{path}: expected keys b'data' and b'labels', found {sorted(batch)}")
    data = batch[b"data"]
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        found = f"{data.dtype} {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise DatasetFormatError(f"{path}: b'data' must be a uint8 array (N, 3072), found {found}")
    labels = batch[b"labels"]
    if not isinstance(labels, list) or len(labels) != data.shape[0]:
        found = f"{len(labels)} labels" if isinstance(labels, list) else type(labels).__name__
        raise DatasetFormatError(f"{path}: b'labels' must be a list of {data.shape[0]} ints, found {found}")
    bad = [
        (index, label) for index, label in enumerate(labels) if type(label) is not int or not 0 <= label < NUM_CLASSES
    ]
    if bad:
        raise DatasetFormatError(f"{path}: labels must be 0..9, found {bad[0][1]!r} at index {bad[0][0]}")
    return data.reshape(-1, 3, 32, 32).copy(), np.asarray(labels, dtype=np.int64)


def read_cifar10(root: str | Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 split from ``cifar-10-batches-py/``.

    Args:
        root: the ``cifar-10-batches-py`` folder.
        split: ``"train"`` (``data_batch_1..5``, 50 000 images) or ``"test"`` (``test_batch``).

    Returns:
        ``(images, labels)``: ``uint8 (N, 3, 32, 32)`` in RGB channel order and ``int64 (N,)``.

    Example:
        >>> images, labels = read_cifar10("data/cifar-10-batches-py", "test")  # doctest: +SKIP
        >>> images.shape                                                      # doctest: +SKIP
        (10000, 3, 32, 32)
    """
    batches = {"train": TRAIN_BATCHES, "test": TEST_BATCHES}
    if split not in batches:
        raise ValueError(f"Invalid CIFAR-10 split: {split!r}; valid splits: train, test")
    parts = [read_cifar_batch(Path(root) / name) for name in batches[split]]
    return np.concatenate([images for images, _ in parts]), np.concatenate([labels for _, labels in parts])


def read_cifar10_label_names(root: str | Path) -> list[str]:
    """The ten class names from ``batches.meta`` (``airplane`` ... ``truck``)."""
    path = Path(root) / META_FILE
    names = load_cifar_pickle(path).get(b"label_names")
    if not isinstance(names, list) or not all(isinstance(name, (bytes, str)) for name in names):
        raise DatasetFormatError(f"{path}: expected b'label_names' to be a list of byte strings, found {names!r:.80}")
    return [name.decode("utf-8") if isinstance(name, bytes) else name for name in names]
