"""IMDB movie reviews: the Stanford ``aclImdb/`` tree, or a two-column CSV.

``aclImdb/`` (Maas et al., 2011) holds ``train/pos``, ``train/neg``, ``test/pos`` and
``test/neg``, one UTF-8 review per ``<id>_<rating>.txt`` file; a negative review has a
rating 1-4 and a positive one 7-10 (the dataset's README). The texts are returned as
they are, ``<br />`` tags included, so the tokenizer decides what to do with them.

The CSV form has a header with ``text,label`` columns (``review,sentiment`` as in the
widely shared 50k-review CSV works too) and labels ``0``/``1``, ``neg``/``pos`` or
``negative``/``positive`` (any case).

Labels are 0 = negative, 1 = positive.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

from .errors import DatasetFormatError

SPLITS = ("train", "test")
CLASSES = ("neg", "pos")
COLUMN_PAIRS = (("text", "label"), ("review", "sentiment"))
_LABEL_WORDS = {"0": 0, "1": 1, "neg": 0, "pos": 1, "negative": 0, "positive": 1}
_REVIEW_NAME = re.compile(r"(\d+)_(\d+)\.txt")
_RATINGS = {"neg": range(1, 5), "pos": range(7, 11)}


def read_aclimdb(root: str | Path, split: str) -> tuple[list[str], list[int]]:
    """Reviews and labels of one split of the ``aclImdb/`` tree.

    Args:
        root: the ``aclImdb`` folder.
        split: ``"train"`` or ``"test"`` (25 000 reviews each; ``unsup`` is ignored).

    Returns:
        ``(texts, labels)``: negatives first then positives, each in numeric id order.

    Raises:
        FileNotFoundError: ``root/split/neg`` or ``root/split/pos`` is missing.
        DatasetFormatError: a ``.txt`` file not named ``<id>_<rating>.txt``, a rating that
            does not fit its folder, text that is not UTF-8, or no review at all; the
            message names the file or folder.

    Example:
        >>> texts, labels = read_aclimdb("data/aclImdb", "test")  # doctest: +SKIP
        >>> len(texts), sum(labels)                               # doctest: +SKIP
        (25000, 12500)
    """
    _check_split(split)
    texts: list[str] = []
    labels: list[int] = []
    for label, polarity in enumerate(CLASSES):
        folder = Path(root) / split / polarity
        if not folder.is_dir():
            raise FileNotFoundError(f"IMDB folder not found: {folder} (expected aclImdb/{split}/{polarity}/*.txt)")
        for path in _review_files(folder, polarity):
            texts.append(_read_text(path))
            labels.append(label)
    if not texts:
        raise DatasetFormatError(
            f"{Path(root) / split}: holds no reviews; expected <id>_<rating>.txt files in {split}/neg and {split}/pos"
        )
    return texts, labels


def _review_files(folder: Path, polarity: str) -> list[Path]:
    numbered = []
    # Hidden files (macOS "._1_3.txt" forks, ".DS_Store") are archive debris, not reviews.
    for path in folder.glob("*.txt"):
        if path.name.startswith("."):
            continue
        match = _REVIEW_NAME.fullmatch(path.name)
        if not path.is_file():
            raise DatasetFormatError(f"{path}: expected a review file, found a folder or special file")
        if match is None:
            raise DatasetFormatError(f"{path}: expected a review file named <id>_<rating>.txt, found {path.name!r}")
        rating = int(match.group(2))
        if rating not in _RATINGS[polarity]:
            allowed = _RATINGS[polarity]
            raise DatasetFormatError(
                f"{path}: a '{polarity}' review must have a rating {allowed.start}-{allowed.stop - 1}, found {rating}"
            )
        numbered.append((int(match.group(1)), path))
    return [path for _, path in sorted(numbered)]


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise DatasetFormatError(f"{path}: expected UTF-8 text, found undecodable bytes ({error})") from error


def read_imdb_csv(path: str | Path) -> tuple[list[str], list[int]]:
    """Reviews and 0/1 labels from a CSV with a ``text,label`` (or ``review,sentiment``) header.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: the columns are missing (the message lists those expected and
            found), a label is not one of ``0 1 neg pos negative positive``, or no row.
    """
    path = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    with open(path, newline="", encoding="utf-8-sig") as handle:  # -sig: tolerate a BOM
        try:
            reader = csv.DictReader(handle)
            text_column, label_column = _find_columns(path, reader.fieldnames or [])
            for row in reader:
                texts.append(row[text_column] or "")
                labels.append(_parse_label(path, reader.line_num, row[label_column]))
        except (csv.Error, UnicodeDecodeError) as error:
            raise DatasetFormatError(f"{path}: not a readable UTF-8 CSV ({error})") from error
    if not texts:
        raise DatasetFormatError(f"{path}: holds no reviews; expected rows under its text,label header")
    return texts, labels


def _find_columns(path: Path, found: list[str]) -> tuple[str, str]:
    stripped = {name.strip().lower(): name for name in found}
    for text_column, label_column in COLUMN_PAIRS:
        if text_column in stripped and label_column in stripped:
            return stripped[text_column], stripped[label_column]
    expected = " or ".join(",".join(pair) for pair in COLUMN_PAIRS)
    raise DatasetFormatError(f"{path}: expected columns {expected}, found columns {found}")


def _parse_label(path: Path, line: int, value: str | None) -> int:
    label = _LABEL_WORDS.get((value or "").strip().lower())
    if label is None:
        raise DatasetFormatError(
            f"{path}, line {line}: label must be one of {', '.join(_LABEL_WORDS)}, found {value!r}"
        )
    return label


def read_imdb(root: str | Path, split: str) -> tuple[list[str], list[int]]:
    """One IMDB split from ``root``: the ``aclImdb`` tree if ``root/split/`` exists, else ``root/<split>.csv``."""
    _check_split(split)
    root = Path(root)
    if (root / split).is_dir():
        return read_aclimdb(root, split)
    if (root / f"{split}.csv").is_file():
        return read_imdb_csv(root / f"{split}.csv")
    raise FileNotFoundError(
        f"IMDB {split} split not found: expected the folder {root / split}/{{neg,pos}}/ (aclImdb) "
        f"or the CSV {root / split}.csv with text,label columns"
    )


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"Invalid IMDB split: {split!r}; valid splits: {', '.join(SPLITS)}")
