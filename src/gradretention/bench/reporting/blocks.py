"""What a report is made of: headings, paragraphs, lists, tables and figures.

A report is a list of blocks that :mod:`gradretention.bench.reporting.render` turns into
Markdown and HTML, so both formats say the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Tone = Literal["better", "worse"]


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str
    kind: str = ""  # a CSS class in HTML: "protocol", "note", "caveats"


@dataclass(frozen=True)
class Bullets:
    """A list of sentences, e.g. a group's caveats."""

    items: tuple[str, ...]
    title: str = ""
    kind: str = "caveats"


@dataclass(frozen=True)
class TextTable:
    """Formatted cells that the report renders as Markdown and as HTML.

    ``tones`` maps ``(row, column)`` to ``"better"`` (green, bold) or ``"worse"`` (red,
    bold): only a significant verdict gets a tone; a tie gets none. ``numeric`` holds the
    columns aligned right.
    """

    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    tones: dict[tuple[int, int], Tone] = field(default_factory=dict)
    numeric: frozenset[int] = frozenset()
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    """An interactive figure: a plotly figure as plain data, with a caption."""

    name: str
    figure: dict[str, Any] = field(repr=False)
    caption: str = ""


@dataclass(frozen=True)
class FigureRow:
    """Figures shown side by side."""

    items: tuple[Figure, ...]


Block = Heading | Paragraph | Bullets | TextTable | FigureRow
