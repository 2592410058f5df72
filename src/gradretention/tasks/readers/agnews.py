"""AG_NEWS in the original ``ag_news_csv`` format (Zhang, Zhao & LeCun, 2015).

``train.csv`` (120 000 rows) and ``test.csv`` (7 600 rows) have no header and three
quoted columns: the class index 1-4 (World, Sports, Business, Sci/Tech), the title and
the description. Fields may hold commas and doubled quotes (standard CSV quoting), and
the original line breaks inside a description survive as a lone backslash
(``"... worries\\about the economy"``); each backslash becomes a space here.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .errors import DatasetFormatError

SPLITS = ("train", "test")
CLASSES = ("World", "Sports", "Business", "Sci/Tech")


def read_ag_news_csv(path: str | Path) -> tuple[list[str], list[int]]:
    """Texts and labels from one AG_NEWS CSV file.

    Args:
        path: ``train.csv`` or ``test.csv`` of the original release.

    Returns:
        ``(texts, labels)``: each text is ``title + " " + description`` with the
        backslash line-break markers replaced by spaces; labels are the class index
        minus one, so 0-3 in the order of :data:`CLASSES`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: no row at all, a row without exactly three columns or a
            class outside 1-4; the message names the file and line.

    Example:
        >>> texts, labels = read_ag_news_csv("data/ag_news/test.csv")  # doctest: +SKIP
        >>> len(texts), labels[:3]                                     # doctest: +SKIP
        (7600, [2, 3, 3])
    """
    path = Path(path)
    texts: list[str] = []
    labels: list[int] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        line = 1  # where the current record starts: a quoted field may span several lines
        try:
            for row in reader:
                labels.append(_parse_class(path, line, row))
                title, description = row[1], row[2]
                texts.append(f"{title} {description}".replace("\\", " "))
                line = reader.line_num + 1
        except (csv.Error, UnicodeDecodeError) as error:
            raise DatasetFormatError(f"{path}, line {line}: not a readable UTF-8 CSV ({error})") from error
    if not texts:
        raise DatasetFormatError(
            f"{path}: holds no rows; expected AG_NEWS CSV rows of class index (1-4), title, description"
        )
    return texts, labels


def _parse_class(path: Path, line: int, row: list[str]) -> int:
    if len(row) != 3:
        raise DatasetFormatError(
            f"{path}, line {line}: expected 3 columns (class index, title, description), found {len(row)}"
        )
    value = row[0].strip()
    if value not in {"1", "2", "3", "4"}:
        raise DatasetFormatError(f"{path}, line {line}: class index must be 1-4, found {row[0]!r}")
    return int(value) - 1


def read_ag_news(root: str | Path, split: str) -> tuple[list[str], list[int]]:
    """One AG_NEWS split, ``root/train.csv`` or ``root/test.csv``; see :func:`read_ag_news_csv`."""
    if split not in SPLITS:
        raise ValueError(f"Invalid AG_NEWS split: {split!r}; valid splits: {', '.join(SPLITS)}")
    return read_ag_news_csv(Path(root) / f"{split}.csv")
