"""The GUI's three views as matplotlib figures, drawn from a :class:`Presenter` (no Tk here).

- ``weights``: the watched layer's last update Δθ and gradient, element by element, one
  bar colour per optimizer (the seed tool's view);
- ``learning_rates``: RescaledSGD's per-element η; the lr α over steps (hypergradient α,
  EnhancedSGD's α = lr·lr_scale); the controllers' scalars (scales, ε, hypergradient);
- ``curves``: train / validation loss and accuracy per epoch, mean ± std over seeds.

The window embeds the figures with ``FigureCanvasTkAgg``; "Save graphs" and the tests
render them with Agg. Figures are built with :class:`matplotlib.figure.Figure`, never
pyplot, so no global backend state is touched from any thread.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from gradretention.gui.controls import symmetric_limits, upper_limits
from gradretention.gui.presenter import Band, Presenter

VIEW_NAMES = ("weights", "learning_rates", "curves")
CURVE_TITLES = {"train_loss": "train loss", "val_loss": "validation loss",
                "train_accuracy": "train accuracy", "val_accuracy": "validation accuracy"}


class Views:
    """Owns one figure per view; :meth:`draw` repaints them all from the presenter."""

    def __init__(self, figsize: tuple[float, float] = (5.4, 5.8), dpi: int = 80) -> None:
        self.figures = {name: Figure(figsize=figsize, dpi=dpi, layout="constrained") for name in VIEW_NAMES}

    def draw(self, presenter: Presenter, y_multiplier: float = 1.0) -> None:
        """Redraw every view; ``y_multiplier`` scales the bar views' y-range."""
        colours = {opt: f"C{i}" for i, opt in enumerate(presenter.optimizers)}
        _draw_weights(self.figures["weights"], presenter, colours, y_multiplier)
        _draw_learning_rates(self.figures["learning_rates"], presenter, colours, y_multiplier)
        _draw_curves(self.figures["curves"], presenter, colours)

    def save(self, directory: Path) -> list[Path]:
        """Write ``<view>.png`` for each view into ``directory`` (created if missing)."""
        directory.mkdir(parents=True, exist_ok=True)
        paths = []
        for name, figure in self.figures.items():
            path = directory / f"{name}.png"
            figure.savefig(path, dpi=100)
            paths.append(path)
        return paths


def _grouped_bars(ax: Axes, values: dict[str, tuple[float, ...]], colours: dict[str, str]) -> None:
    width = 0.8 / max(len(values), 1)
    for i, (opt, series) in enumerate(values.items()):
        x = np.arange(len(series)) + (i - (len(values) - 1) / 2) * width
        ax.bar(x, series, width=width, color=colours.get(opt, "grey"), label=opt)


def _placeholder(ax: Axes, text: str) -> None:
    # Wrapped and kept out of the layout: the constrained layout would shrink the axes to fit a long line.
    wrapped = "\n".join(textwrap.fill(line, 38) for line in text.split("\n"))
    note = ax.text(0.5, 0.5, wrapped, ha="center", va="center", transform=ax.transAxes, color="grey", fontsize=9)
    note.set_in_layout(False)


def _draw_weights(figure: Figure, presenter: Presenter, colours: dict[str, str], multiplier: float) -> None:
    figure.clear()
    top, bottom = figure.subplots(2, 1)
    layer = presenter.watched_layer() or "first weights"
    for ax, kind, title in ((top, "update", "update Δθ"), (bottom, "grad", "gradient")):
        values = presenter.bars(kind)
        ax.set_title(f"{title} · {layer}", fontsize=10)
        if not values:
            _placeholder(ax, "waiting for the first step")
            continue
        _grouped_bars(ax, values, colours)
        ax.set_ylim(*symmetric_limits([v for series in values.values() for v in series], multiplier))
        ax.axhline(0.0, color="black", linewidth=0.5)
    bottom.set_xlabel("element")
    _figure_legend(figure, [top, bottom], "outside upper center")


def _draw_learning_rates(figure: Figure, presenter: Presenter, colours: dict[str, str], multiplier: float) -> None:
    figure.clear()
    scalar_names = {opt: presenter.series_names(opt, "telemetry/") for opt in presenter.optimizers}
    has_scalars = any(scalar_names.values())
    # A third panel only when a controller reports scalars: an empty box helps nobody.
    axes = figure.subplots(3 if has_scalars else 2, 1)
    per_element, alpha = axes[0], axes[1]
    values = presenter.bars("effective_lr")
    per_element.set_title("per-element lr η (RescaledSGD)", fontsize=10)
    note = presenter.per_element_note()
    if note is None:
        _grouped_bars(per_element, values, colours)
        per_element.set_ylim(*upper_limits([v for series in values.values() for v in series], multiplier))
    else:
        _placeholder(per_element, note)
    alpha.set_title("lr α per step, mean ± std over seeds\n(dashed: mean η, shaded: η min–max)", fontsize=10)
    for opt in presenter.optimizers:
        _plot_band(alpha, presenter.band(opt, "lr"), colours[opt], opt)
        _plot_band(alpha, presenter.band(opt, "lr_mean"), colours[opt], f"{opt}: mean η", linestyle="--")
        _shade_range(alpha, presenter.band(opt, "lr_min"), presenter.band(opt, "lr_max"), colours[opt])
    alpha.set_yscale("log")
    axes[-1].set_xlabel("step")
    _figure_legend(figure, [per_element, alpha], "outside upper center")
    if has_scalars:
        _draw_scalars(axes[2], presenter, colours, scalar_names)
        _figure_legend(figure, [axes[2]], "outside lower center")


def _draw_scalars(ax: Axes, presenter: Presenter, colours: dict[str, str], names: dict[str, list[str]]) -> None:
    ax.set_title("controller scalars (scales, ε, hypergradient)", fontsize=10)
    drawn = 0
    for opt, opt_names in names.items():
        for name in opt_names:
            _plot_band(ax, presenter.band(opt, name), colours[opt], f"{opt}: {name.split('/', 1)[1]}",
                       linestyle=("-", "--", ":", "-.")[drawn % 4])
            drawn += 1
    ax.set_yscale("symlog", linthresh=1e-3)  # scales near 1, ε near 0, hypergradients of either sign


def _draw_curves(figure: Figure, presenter: Presenter, colours: dict[str, str]) -> None:
    figure.clear()
    axes = figure.subplots(2, 2, sharex=True)
    for ax, (name, title) in zip(axes.flat, CURVE_TITLES.items()):
        ax.set_title(title, fontsize=10)
        for opt in presenter.optimizers:
            _plot_band(ax, presenter.band(opt, name), colours[opt], opt)
    for ax in axes[1]:
        ax.set_xlabel("epoch")
    _figure_legend(figure, list(axes.flat), "outside upper center")


def _plot_band(ax: Axes, band: Band, colour: str, label: str, linestyle: str = "-") -> None:
    if not band.x:
        return
    x, mean, std = np.asarray(band.x), np.asarray(band.mean), np.asarray(band.std)
    ax.plot(x, mean, color=colour, label=label, linestyle=linestyle, linewidth=1.2)
    if std.any():
        ax.fill_between(x, mean - std, mean + std, color=colour, alpha=0.2, linewidth=0)


def _shade_range(ax: Axes, low: Band, high: Band, colour: str) -> None:
    """RescaledSGD's η from its smallest to its largest element, seed means, lightly shaded."""
    n = min(len(low.x), len(high.x))
    if n:
        ax.fill_between(low.x[:n], low.mean[:n], high.mean[:n], color=colour, alpha=0.08, linewidth=0)


def _figure_legend(figure: Figure, axes: list[Axes], loc: str) -> None:
    """One legend for ``axes``, outside every plot so it never hides a curve or a bar.

    The constrained layout makes room for an ``"outside ..."`` legend above or below the
    panels; labels repeated across panels are listed once. Nothing labelled, no legend.
    """
    entries: dict[str, object] = {}
    for ax in axes:
        for handle, label in zip(*ax.get_legend_handles_labels()):
            entries.setdefault(label, handle)
    if entries:
        figure.legend(list(entries.values()), list(entries), loc=loc, ncols=min(len(entries), 2), fontsize=8,
                      frameon=False)
