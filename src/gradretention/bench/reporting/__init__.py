"""The report side: blocks (``blocks``), their Markdown/HTML renderers (``render``), the
interactive plotly figures (``figures``) and the per-group sections (``sections``).
:mod:`gradretention.bench.report` assembles them into ``report.html`` and ``report.md``."""
