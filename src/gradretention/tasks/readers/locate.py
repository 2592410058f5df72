"""Where each dataset's files are expected, and a clear message when they are not there.

The data directory is, in order: the ``--data-dir`` argument, ``$GRADRETENTION_DATA``,
then the Hugging Face datasets cache (``$HF_DATASETS_CACHE``, else ``$HF_HOME/datasets``,
else ``~/.cache/huggingface/datasets``), so files already fetched by ``datasets`` are found.

Each dataset has one or more accepted *layouts* (a folder under the data directory and
the entries it must hold); :func:`find_dataset` returns the folder of the first complete
one, which is what the matching reader takes as ``root``. A dataset that a system package
installs (Debian's ``dataset-fashion-mnist`` puts the four IDX files in
``/usr/share/datasets/fashion-mnist/``) is also looked for there, after the data directory:
its primary layout under each of :data:`SYSTEM_DATA_DIRS`.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass
from pathlib import Path

DATA_ENV = "GRADRETENTION_DATA"
DEBIAN_DATA_DIR = Path("/usr/share/datasets")  # where Debian's dataset-* packages install
# Folders where system packages install datasets, searched after the data directory.
SYSTEM_DATA_DIRS: tuple[Path, ...] = (DEBIAN_DATA_DIR,)


@dataclass(frozen=True)
class Layout:
    """A folder (relative to the data dir) and its entries; each entry lists accepted spellings."""

    folder: str
    entries: tuple[tuple[str, ...], ...]

    def missing(self, data_dir: Path) -> list[str]:
        """Entries with no spelling present under ``data_dir/folder`` (a trailing ``/`` means a folder)."""
        root = data_dir / self.folder
        return [names[0] for names in self.entries if not any(_present(root, name) for name in names)]


@dataclass(frozen=True)
class DatasetSource:
    """What a dataset needs on disk and where it comes from.

    ``apt_package`` names the Debian package that installs the primary layout under one of
    :data:`SYSTEM_DATA_DIRS` (``None``: no such package).
    """

    title: str
    layouts: tuple[Layout, ...]
    hub_id: str | None
    origin: str
    apt_package: str | None = None

    def system_folders(self) -> list[Path]:
        """Where the system package would put the files: the primary layout under each system dir."""
        if self.apt_package is None:
            return []
        return [system_dir / self.layouts[0].folder for system_dir in SYSTEM_DATA_DIRS]


def _present(root: Path, name: str) -> bool:
    return (root / name).is_dir() if name.endswith("/") else (root / name).is_file()


def _mnist(folder: str) -> Layout:
    names = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    return Layout(folder, tuple((name, f"{name}.gz") for name in names))


def _files(folder: str, *names: str) -> Layout:
    return Layout(folder, tuple((name,) for name in names))


DATASETS: dict[str, DatasetSource] = {
    "mnist": DatasetSource(
        "MNIST", (_mnist("mnist"), _mnist("MNIST/raw")), "ylecun/mnist",
        "the four IDX files (plain or .gz) as published by LeCun et al. or fetched by torchvision",
    ),
    "cifar10": DatasetSource(
        "CIFAR-10",
        (_files("cifar-10-batches-py", *(f"data_batch_{i}" for i in range(1, 6)), "test_batch", "batches.meta"),),
        "uoft-cs/cifar10",
        "cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html, extracted",
    ),
    "imdb": DatasetSource(
        "IMDB",
        (
            _files("aclImdb", "train/pos/", "train/neg/", "test/pos/", "test/neg/"),
            _files("imdb", "train.csv", "test.csv"),
        ),
        "stanfordnlp/imdb",
        "aclImdb_v1.tar.gz from https://ai.stanford.edu/~amaas/data/sentiment/, extracted",
    ),
    "ag_news": DatasetSource(
        "AG_NEWS",
        (_files("ag_news", "train.csv", "test.csv"), _files("ag_news_csv", "train.csv", "test.csv")),
        "fancyzhx/ag_news",
        "ag_news_csv.tgz (Zhang et al., 2015), extracted",
    ),
    "squad": DatasetSource(
        "SQuAD v1.1",
        (_files("squad", "train-v1.1.json", "dev-v1.1.json"),),
        "rajpurkar/squad",
        "train-v1.1.json and dev-v1.1.json from https://rajpurkar.github.io/SQuAD-explorer/",
    ),
    "voc": DatasetSource(
        "PASCAL VOC 2012",
        (_files(
            "VOCdevkit/VOC2012", "JPEGImages/", "SegmentationClass/",
            "ImageSets/Segmentation/train.txt", "ImageSets/Segmentation/val.txt",
        ),),
        None,
        "VOCtrainval_11-May-2012.tar from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/, extracted",
    ),
    "fashion-mnist": DatasetSource(
        "Fashion-MNIST", (_mnist("fashion-mnist"), _mnist("FashionMNIST/raw")), "zalando-datasets/fashion_mnist",
        "the four IDX files (plain or .gz) of Zalando's Fashion-MNIST (Xiao et al., 2017), "
        "or fetched by torchvision",
        apt_package="dataset-fashion-mnist",
    ),
}  # fmt: skip


def resolve_data_dir(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The data directory: ``data_dir``, else ``$GRADRETENTION_DATA``, else the HF datasets cache."""
    return locate_data_dir(data_dir)[0]


def locate_data_dir(data_dir: str | os.PathLike[str] | None = None) -> tuple[Path, str]:
    """:func:`resolve_data_dir` and where it came from (for messages): ``"--data-dir"``, ``"$GRADRETENTION_DATA"``..."""
    if data_dir is not None:
        return Path(data_dir).expanduser(), "--data-dir"
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV]).expanduser(), f"${DATA_ENV}"
    if os.environ.get("HF_DATASETS_CACHE"):
        return Path(os.environ["HF_DATASETS_CACHE"]).expanduser(), "$HF_DATASETS_CACHE"
    hf_home = Path(os.environ.get("HF_HOME") or Path.home() / ".cache" / "huggingface").expanduser()
    return hf_home / "datasets", "the Hugging Face datasets cache"


def dataset_source(dataset: str) -> DatasetSource:
    """The :class:`DatasetSource` of ``dataset``; ValueError listing the names otherwise."""
    if dataset not in DATASETS:
        close = difflib.get_close_matches(dataset, DATASETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown dataset: {dataset!r}; valid datasets: {', '.join(DATASETS)}.{hint}")
    return DATASETS[dataset]


def required_files(dataset: str) -> list[str]:
    """Relative paths the reader needs, in the primary layout (a trailing ``/`` is a folder).

    MNIST files may also end in ``.gz``; other accepted layouts are in :data:`DATASETS`.

    Example:
        >>> required_files("squad")
        ['squad/train-v1.1.json', 'squad/dev-v1.1.json']
    """
    layout = dataset_source(dataset).layouts[0]
    return [f"{layout.folder}/{names[0]}" for names in layout.entries]


def find_dataset(dataset: str, data_dir: str | os.PathLike[str] | None = None) -> Path:
    """The folder holding ``dataset``'s files in its original format (the reader's ``root``).

    Raises:
        ValueError: unknown dataset name.
        FileNotFoundError: no complete layout; the message lists which files to put where,
            the alternative Hugging Face folder, and ``--download`` where it is available.
    """
    source = dataset_source(dataset)
    root, origin = locate_data_dir(data_dir)
    for layout in source.layouts:
        if not layout.missing(root):
            return root / layout.folder
    primary = source.layouts[0]
    for folder in source.system_folders():
        if not primary.missing(folder.parent):
            return folder
    raise FileNotFoundError(missing_message(dataset, root, origin))


def missing_message(dataset: str, root: Path, origin: str = "--data-dir") -> str:
    """The full "put these files there" message for ``dataset`` under data dir ``root``."""
    source = dataset_source(dataset)
    primary = source.layouts[0]
    lines = [f"{source.title} not found in the data directory {root} (from {origin}).", "Put these files there:"]
    lines += [f"  {root / primary.folder}/{names[0]}" + _alternatives(names) for names in primary.entries]
    missing = primary.missing(root)
    if len(missing) < len(primary.entries):
        lines.append(f"  Still missing there: {', '.join(missing)}")
    lines.append(f"  Source: {source.origin}.")
    for layout in source.layouts[1:]:
        lines.append(f"Or this layout: {', '.join(f'{root / layout.folder}/{names[0]}' for names in layout.entries)}")
    if source.apt_package is not None:
        lines.append(f"Or install it system-wide: {apt_command(dataset)} "
                     f"(puts it in {' or '.join(str(f) for f in source.system_folders())}, found there).")
    if source.hub_id is not None:
        lines.append(
            f"Or a Hugging Face dataset under {root / dataset}/ (a `save_to_disk` folder or parquet files), "
            f"or pass --download to fetch '{source.hub_id}' with the `datasets` library."
        )
    else:
        lines.append(f"{source.title} has no Hugging Face copy this tool can fetch; --download does not apply.")
    lines.append(f"Choose the data directory with --data-dir or ${DATA_ENV}.")
    return "\n".join(lines)


def apt_command(dataset: str) -> str:
    """The shell command that installs ``dataset`` system-wide; ValueError if no package does."""
    package = dataset_source(dataset).apt_package
    if package is None:
        raise ValueError(f"{dataset!r} has no system package; datasets with one: "
                         f"{', '.join(n for n, s in DATASETS.items() if s.apt_package) or 'none'}")
    return f"sudo apt-get install {package}"


def _alternatives(names: tuple[str, ...]) -> str:
    return f"  (or {', '.join(names[1:])})" if len(names) > 1 else ""
