"""The views draw what the presenter holds: bars, bands, controller scalars, saved PNGs."""

from __future__ import annotations

from pathlib import Path

import pytest
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import PolyCollection
from PIL import Image

from gradretention.bench.events import EvalLogged, RunStarted, StepLogged
from gradretention.bench.results import RunConfig
from gradretention.gui.messages import LayerSnapshot, OptimizerTraits, SessionStarted
from gradretention.gui.presenter import Presenter
from gradretention.gui.views import VIEW_NAMES, Views


def config(optimizer: str, seed: int) -> RunConfig:
    return RunConfig(task="spiral", optimizer=optimizer, seed=seed)


@pytest.fixture()
def presenter() -> Presenter:
    """Two optimizers, two seeds, three epochs; SGD-HD with a hypergradient in its telemetry."""
    presenter = Presenter()
    presenter.handle(SessionStarted("spiral", ("rescaled_sgd", "sgd_hd"), (0, 1), 24, ("layers.0.weight",)))
    for optimizer in ("rescaled_sgd", "sgd_hd"):
        for seed in (0, 1):
            presenter.handle(RunStarted(config(optimizer, seed), 6))
            for epoch in (1, 2, 3):
                telemetry = {"lr/g0": 0.01 * epoch, "hypergradient/g0": 0.1 * seed} if optimizer == "sgd_hd" else {}
                presenter.handle(StepLogged(config(optimizer, seed), 2 * epoch, epoch, 1.0 / epoch, (0.01,), telemetry))
                presenter.handle(EvalLogged(config(optimizer, seed), 2 * epoch, epoch, "val",
                                            {"loss": 1.0 / epoch, "accuracy": 0.3 * epoch + 0.05 * seed}))
    lrs = (0.001, 0.004, 0.002)
    presenter.handle(LayerSnapshot(config("rescaled_sgd", 1), 6, "layers.0.weight", (0.1, -0.4, 0.2),
                                   (1.0, 2.0, -3.0), lrs))
    presenter.handle(LayerSnapshot(config("sgd_hd", 1), 6, "layers.0.weight", (0.3, 0.0, -0.1), (0.5, 0.5, 0.5), None))
    return presenter


def test_weight_bars_hold_every_element_of_every_optimizer_within_the_y_range(presenter: Presenter) -> None:
    views = Views()
    views.draw(presenter, y_multiplier=2.0)
    update_ax, grad_ax = views.figures["weights"].axes
    heights = [patch.get_height() for patch in update_ax.patches]
    assert sorted(heights) == sorted([0.1, -0.4, 0.2, 0.3, 0.0, -0.1])
    assert update_ax.get_ylim() == pytest.approx((-0.8, 0.8))  # 2 × max |Δθ|
    assert grad_ax.get_ylim() == pytest.approx((-6.0, 6.0))
    assert "layers.0.weight" in update_ax.get_title()


def test_learning_rate_view_shows_eta_bars_alpha_and_the_hypergradient(presenter: Presenter) -> None:
    views = Views()
    views.draw(presenter)
    per_element, alpha, scalars = views.figures["learning_rates"].axes
    assert [patch.get_height() for patch in per_element.patches] == pytest.approx([0.001, 0.004, 0.002])
    lines = {line.get_label(): line for line in alpha.get_lines()}
    assert list(lines["sgd_hd"].get_ydata()) == pytest.approx([0.01, 0.02, 0.03])  # α from the telemetry
    assert list(lines["rescaled_sgd"].get_ydata()) == pytest.approx([0.01] * 3)
    (hypergradient,) = scalars.get_lines()
    assert hypergradient.get_label() == "sgd_hd: hypergradient"
    assert list(hypergradient.get_ydata()) == pytest.approx([0.05] * 3)  # mean of seeds 0 and 1


def test_curves_draw_the_seed_mean_with_a_std_band(presenter: Presenter) -> None:
    views = Views()
    views.draw(presenter)
    axes = {ax.get_title(): ax for ax in views.figures["curves"].axes}
    accuracy = axes["validation accuracy"]
    (rescaled, _) = accuracy.get_lines()
    assert list(rescaled.get_xdata()) == [1.0, 2.0, 3.0]
    assert list(rescaled.get_ydata()) == pytest.approx([0.325, 0.625, 0.925])
    assert any(isinstance(c, PolyCollection) for c in accuracy.collections)  # seeds differ: a band
    assert not axes["train loss"].get_lines()  # nothing logged for the train split


def test_save_writes_one_png_per_view(presenter: Presenter, tmp_path: Path) -> None:
    views = Views()
    views.draw(presenter)
    paths = views.save(tmp_path / "graphs")
    assert [path.name for path in paths] == [f"{name}.png" for name in VIEW_NAMES]
    for path in paths:
        with Image.open(path) as image:
            assert image.format == "PNG" and image.width > 300


def test_empty_presenter_draws_placeholders_without_error() -> None:
    views = Views()
    views.draw(Presenter())
    update_ax = views.figures["weights"].axes[0]
    assert [text.get_text() for text in update_ax.texts] == ["waiting for the first step"]


def test_learning_rate_view_drops_the_scalar_panel_when_no_controller_reports_one() -> None:
    presenter = Presenter()
    presenter.handle(SessionStarted("spiral", ("sgd",), (0,), 6, ("layers.0.weight",)))
    presenter.handle(RunStarted(config("sgd", 0), 6))
    presenter.handle(StepLogged(config("sgd", 0), 1, 0.2, 1.0, (0.01,), {}))
    views = Views()
    views.draw(presenter)
    assert len(views.figures["learning_rates"].axes) == 2


def _busy_presenter() -> Presenter:
    """Four optimizers, each with several controller scalars: the most crowded legends the GUI draws."""
    specs = ("rescaled_sgd", "sgd_hd", "adam_hd_adam", "enhanced_sgd")
    presenter = Presenter()
    presenter.handle(SessionStarted("spiral", specs, (0,), 40, ("layers.0.weight",)))
    for spec in specs:
        presenter.handle(RunStarted(config(spec, 0), 10))
        for at in range(1, 11):
            telemetry = {"lr/g0": 0.01 * at, "lr_mean/g0": 0.005, "hypergradient/g0": 0.1 * at,
                         "epsilon/g0": 0.5 / at, "grad_scale/g0": 1.0 + at, "momentum/g0": 0.9}
            presenter.handle(StepLogged(config(spec, 0), at, at / 5, 2.0 / at, (0.01 * at,), telemetry))
            presenter.handle(EvalLogged(config(spec, 0), at, at / 5, "train", {"loss": 2.0 / at, "accuracy": at / 10}))
        presenter.handle(LayerSnapshot(config(spec, 0), 10, "layers.0.weight", (0.1, -0.2) * 8, (1.0, -1.0) * 8,
                                       (0.01, 0.02) * 8 if spec == "rescaled_sgd" else None))
    return presenter


def test_no_legend_covers_a_plot() -> None:
    views = Views()
    views.draw(_busy_presenter())
    for name, figure in views.figures.items():
        canvas = FigureCanvasAgg(figure)
        canvas.draw()
        renderer = canvas.get_renderer()
        legends = list(figure.legends) + [ax.get_legend() for ax in figure.axes if ax.get_legend() is not None]
        assert legends, f"the {name} view has no legend"
        for legend in legends:
            box = legend.get_window_extent(renderer)
            for ax in figure.axes:
                assert not box.overlaps(ax.get_window_extent(renderer)), f"a legend covers a plot of {name}"
            assert 0 <= box.x0 and box.x1 <= figure.bbox.width and 0 <= box.y0 and box.y1 <= figure.bbox.height


def test_per_element_panel_waits_for_rescaled_sgd_instead_of_saying_it_is_absent() -> None:
    traits = (OptimizerTraits("rescaled_sgd[lr=0.0316]", 0.0316, per_element_lr=True, retention=True),
              OptimizerTraits("sgd[lr=1]", 1.0))
    presenter = Presenter()
    presenter.handle(SessionStarted("spiral", tuple(t.spec for t in traits), (0,), 6, ("layers.0.weight",), traits))
    views = Views()
    views.draw(presenter)
    per_element = views.figures["learning_rates"].axes[0]
    assert [" ".join(text.get_text().split()) for text in per_element.texts] == [
        "waiting for the first step of rescaled_sgd[lr=0.0316]"]  # wrapped to fit the panel
    presenter.handle(SessionStarted("spiral", ("sgd[lr=1]",), (0,), 6, ("layers.0.weight",), traits[1:]))
    views.draw(presenter)
    (note,) = views.figures["learning_rates"].axes[0].texts
    assert " ".join(note.get_text().split()).startswith("no per-element lr: sgd[lr=1] keeps")


def test_a_long_placeholder_does_not_shrink_its_panel() -> None:
    views = Views(figsize=(3.4, 4.0))  # as narrow as a view gets on a 1024 px screen
    views.draw(Presenter())  # the per-element panel holds a long note before any session
    figure = views.figures["learning_rates"]
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    per_element, alpha = figure.axes
    note_width = per_element.get_window_extent().width
    assert note_width >= 0.9 * alpha.get_window_extent().width  # the layout ignores the note, the panels align
    (note,) = per_element.texts
    assert note.get_window_extent(canvas.get_renderer()).width <= figure.bbox.width
