"""Markdown and HTML renderings of a list of report blocks.

Every string that came from the results (task and optimizer names, failure reasons) is
escaped for the format it lands in. The HTML is one self-contained file: CSS inline and
plotly.js embedded once (no CDN), so it opens offline; Markdown links its figures to
their anchors in the HTML file.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import string
from importlib import resources

import plotly.io as pio
from plotly.offline import get_plotlyjs

import gradretention
from gradretention.bench.reporting.blocks import Block, Bullets, Figure, Heading, Paragraph, TextTable

TITLE = "GradRetentionNet benchmark report"
_CONFIG = {"displaylogo": False, "responsive": True, "toImageButtonOptions": {"format": "png", "scale": 2}}


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def markdown(blocks: list[Block], subtitle: str, html_name: str = "report.html") -> str:
    """The report as GitHub-flavoured Markdown; figures are links into the HTML report."""
    lines = [f"# {TITLE}", "", _md(subtitle), ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + _md(block.text), ""]
        elif isinstance(block, Paragraph):
            lines += [_md(block.text), ""]
        elif isinstance(block, Bullets):
            lines += ([f"**{_md(block.title)}**", ""] if block.title else []) + [f"- {_md(i)}" for i in block.items] + [""]
        elif isinstance(block, TextTable):
            lines += [*_md_table(block), ""]
        else:
            links = (f"[{_md(_plain(f.figure))}]({html_name}#{f.name})" for f in block.items)
            lines += ["Interactive figures in the HTML report: " + " · ".join(links), ""]
    return "\n".join(lines)


def _plain(figure: dict) -> str:
    return html.unescape(str(figure["layout"]["title"]["text"]))


def _md_table(table: TextTable) -> list[str]:
    def row(cells: tuple[str, ...], index: int) -> str:
        shown = (f"**{_md(c)}**" if (index, j) in table.tones and c else _md(c) for j, c in enumerate(cells))
        return "| " + " | ".join(shown) + " |"

    align = ("---:" if j in table.numeric else "---" for j in range(len(table.headers)))
    lines = ["| " + " | ".join(_md(h) for h in table.headers) + " |", "| " + " | ".join(align) + " |"]
    lines += [row(cells, i) for i, cells in enumerate(table.rows)]
    return lines + ([f"\n*{_md(table.caption)}*"] if table.caption else [])


def _md(text: str) -> str:
    """Escape Markdown syntax and raw HTML; keep ``_`` inside words (``adam_hd``) readable."""
    text = " ".join(str(text).split())
    text = re.sub(r"([\\`*\[\]|#])", r"\\\1", text)
    text = re.sub(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])", r"\\_", text)
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def html_page(blocks: list[Block], subtitle: str) -> str:
    """The report as one self-contained HTML page with interactive figures."""
    body, nav, headings = [], [], 0
    for block in blocks:
        if isinstance(block, Heading):
            # Every heading gets its own id (the nav links the level-2 ones): ids must be unique in a page.
            anchor, headings = f"s{headings}", headings + 1
            if block.level == 2:
                nav.append(f'<a href="#{anchor}">{html.escape(block.text)}</a>')
            body.append(f'<h{block.level} id="{anchor}">{html.escape(block.text)}</h{block.level}>')
        elif isinstance(block, Paragraph):
            kind = f' class="{block.kind}"' if block.kind else ""
            body.append(f"<p{kind}>{html.escape(block.text)}</p>")
        elif isinstance(block, Bullets):
            title = f"<strong>{html.escape(block.title)}</strong>" if block.title else ""
            items = "".join(f"<li>{html.escape(item)}</li>" for item in block.items)
            body.append(f'<div class="{block.kind}">{title}<ul>{items}</ul></div>')
        elif isinstance(block, TextTable):
            body.append(_html_table(block))
        else:
            body.append('<div class="figures">' + "".join(_html_figure(f) for f in block.items) + "</div>")
    template = string.Template(resources.files("gradretention.bench").joinpath("report_template.html").read_text("utf-8"))
    return template.substitute(title=html.escape(TITLE), subtitle=html.escape(subtitle), nav="".join(nav),
                               body="\n".join(body), version=html.escape(gradretention.__version__), generated=now(),
                               plotlyjs=get_plotlyjs())  # fmt: skip


def _html_table(table: TextTable) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in table.headers)
    rows = []
    for i, cells in enumerate(table.rows):
        tds = []
        for j, cell in enumerate(cells):
            tone = table.tones.get((i, j), "")
            classes = " ".join(c for c in ("num" if j in table.numeric else "", tone,
                                           "wrap" if len(cell) > 28 else "") if c)  # fmt: skip
            attribute = f' class="{classes}"' if classes else ""
            tds.append(f"<td{attribute}>{html.escape(cell)}</td>")
        rows.append("<tr>" + "".join(tds) + "</tr>")
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return (f'<div class="table-wrap"><table>{caption}<thead><tr>{head}</tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table></div>')  # fmt: skip


def _html_figure(figure: Figure) -> str:
    plot = pio.to_html(figure.figure, include_plotlyjs=False, full_html=False, div_id=figure.name,
                       validate=False, config=_CONFIG, default_width="100%", default_height=f"{figure.figure['layout']['height']}px")  # fmt: skip
    caption = html.escape(figure.caption)
    return f'<figure id="fig-{figure.name}" class="plot">{plot}<figcaption>{caption}</figcaption></figure>'
