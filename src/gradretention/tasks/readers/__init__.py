"""Readers for the original file formats of the benchmark datasets.

Users bring the files they already have; nothing here downloads (except
:func:`load_hf_dataset` with ``download=True``). Every reader checks what it reads and
raises :class:`DatasetFormatError` (a ``ValueError``) naming the file, what was
expected and what was found; missing files raise ``FileNotFoundError``.

=================  =====================================  ===================================
dataset            reader (``root`` from find_dataset)    returns
=================  =====================================  ===================================
``mnist``          :func:`read_mnist`                     numpy uint8 (N,28,28), int64 (N,)
``cifar10``        :func:`read_cifar10`                   numpy uint8 (N,3,32,32), int64 (N,)
``imdb``           :func:`read_imdb`                      list[str], list[int] (0 neg, 1 pos)
``ag_news``        :func:`read_ag_news`                   list[str], list[int] (0-3)
``squad``          :func:`read_squad_split`               :class:`SquadFile`
``voc``            :func:`read_voc_segmentation`          torch uint8 (N,3,H,W), int64 (N,H,W)
=================  =====================================  ===================================
"""

from .agnews import read_ag_news, read_ag_news_csv
from .cifar import CifarUnpickler, load_cifar_pickle, read_cifar10, read_cifar10_label_names, read_cifar_batch
from .errors import DatasetFormatError
from .hf import import_datasets, load_hf_dataset, load_local_hf, split_columns
from .idx import read_idx, read_idx_images, read_idx_labels, read_mnist
from .imdb import read_aclimdb, read_imdb, read_imdb_csv
from .locate import DATASETS, find_dataset, required_files, resolve_data_dir
from .squad import (
    SquadExample,
    SquadFile,
    exact_match_score,
    f1_score,
    normalize_answer,
    read_squad,
    read_squad_split,
    squad_scores,
)
from .voc import read_voc_image, read_voc_mask, read_voc_segmentation

__all__ = [
    "DATASETS",
    "CifarUnpickler",
    "DatasetFormatError",
    "SquadExample",
    "SquadFile",
    "exact_match_score",
    "f1_score",
    "find_dataset",
    "import_datasets",
    "load_cifar_pickle",
    "load_hf_dataset",
    "load_local_hf",
    "normalize_answer",
    "read_aclimdb",
    "read_ag_news",
    "read_ag_news_csv",
    "read_cifar10",
    "read_cifar10_label_names",
    "read_cifar_batch",
    "read_idx",
    "read_idx_images",
    "read_idx_labels",
    "read_imdb",
    "read_imdb_csv",
    "read_mnist",
    "read_squad",
    "read_squad_split",
    "read_voc_image",
    "read_voc_mask",
    "read_voc_segmentation",
    "required_files",
    "resolve_data_dir",
    "split_columns",
    "squad_scores",
]
