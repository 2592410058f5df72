"""Entry parsing: what the window accepts and the messages it shows for what it refuses."""

from __future__ import annotations

import math

import pytest

from gradretention.gui.controls import (
    lr_from_slider, parse_base_lr, parse_int, parse_number, slider_from_lr, split_optimizer_list,
    symmetric_limits, upper_limits,
)


@pytest.mark.parametrize(
    ("text", "kwargs", "message"),
    [
        ("abc", {}, r"lr must be a number, got 'abc'"),
        ("nan", {}, r"lr must be a finite number, got 'nan'"),
        ("0", {"positive": True}, r"lr must be > 0, got '0'"),
        ("-1", {"minimum": 0.0}, r"lr must be >= 0, got '-1'"),
    ],
)
def test_parse_number_refuses_with_the_field_and_text(text: str, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_number(text, "lr", **kwargs)


def test_parse_number_accepts_scientific_notation_and_spaces() -> None:
    assert parse_number(" 1e-5 ", "base lr", positive=True) == 1e-5


def test_base_lr_above_the_peak_is_refused() -> None:
    assert parse_base_lr("0.001", peak=0.01) == 0.001
    assert parse_base_lr("0.01", peak=0.01) == 0.01  # equal to the peak is allowed (η constant)
    with pytest.raises(ValueError, match=r"base lr 0.5 is above the peak lr 0.01"):
        parse_base_lr("0.5", peak=0.01)
    assert parse_base_lr("0.5", peak=None) == 0.5  # no run yet: the worker checks against the real peak


def test_parse_int_refuses_fractions_and_small_values() -> None:
    assert parse_int("3", "seeds") == 3
    with pytest.raises(ValueError, match=r"seeds must be a whole number, got '2.5'"):
        parse_int("2.5", "seeds")
    with pytest.raises(ValueError, match=r"seeds must be >= 1, got '0'"):
        parse_int("0", "seeds")


def test_optimizer_list_keeps_commas_inside_brackets() -> None:
    assert split_optimizer_list("adam_hd[lr=0.001,hypergrad_lr=1e-08], sgd ,") == (
        "adam_hd[lr=0.001,hypergrad_lr=1e-08]", "sgd")


@pytest.mark.parametrize(("text", "message"), [("sgd[lr=1", r"unbalanced '\['"), ("sgd]", r"unbalanced '\]'"),
                                                (" , ", r"choose at least one optimizer")])
def test_optimizer_list_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        split_optimizer_list(text)


def test_slider_is_log10_of_the_lr_and_clamped() -> None:
    assert lr_from_slider(-2.0) == pytest.approx(0.01)
    assert slider_from_lr(1e-3) == pytest.approx(-3.0)
    assert slider_from_lr(1e-9) == -6.0 and slider_from_lr(100.0) == 0.0 and slider_from_lr(0.0) == -6.0


def test_y_limits_scale_with_the_multiplier() -> None:
    assert symmetric_limits([0.5, -2.0, math.nan], 1.5) == (-3.0, 3.0)
    assert upper_limits([0.1, 0.4], 0.5) == (0.0, 0.2)
    low, high = symmetric_limits([0.0], 2.0)
    assert low < 0 < high  # an all-zero view still gets a usable range
