"""What the window's entries accept: text in, a checked value out, or a message why not.

Pure functions (no Tk): the window shows a ``ValueError``'s message in its status line
and keeps running. The messages name the field, the bad text and what is allowed.

Example:
    >>> parse_number("0.01", "lr", positive=True)
    0.01
    >>> split_optimizer_list("adam_hd[lr=0.001,hypergrad_lr=1e-08], sgd")
    ('adam_hd[lr=0.001,hypergrad_lr=1e-08]', 'sgd')
"""

from __future__ import annotations

import math

LR_SLIDER_RANGE = (-6.0, 0.0)  # the lr slider moves log10(lr) between these


def parse_number(text: str, name: str, *, positive: bool = False, minimum: float | None = None) -> float:
    """``text`` as a finite float, optionally > 0 or >= ``minimum``.

    Raises:
        ValueError: ``"base lr must be a number, got 'abc'"`` and the like.
    """
    try:
        value = float(text.strip())
    except ValueError:
        raise ValueError(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {text!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {text!r}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum:g}, got {text!r}")
    return value


def parse_base_lr(text: str, peak: float | None) -> float:
    """The base lr typed in, refused above the running optimizer's peak ``lr`` (when known).

    Raises:
        ValueError: not a number, negative, or above ``peak``.
    """
    value = parse_number(text, "base lr", minimum=0.0)
    if peak is not None and value > peak:
        raise ValueError(f"base lr {value:g} is above the peak lr {peak:g}; lower it or raise the lr first")
    return value


def parse_int(text: str, name: str, minimum: int = 1) -> int:
    """``text`` as an int >= ``minimum``.

    Raises:
        ValueError: naming the field and the bad text.
    """
    try:
        value = int(text.strip())
    except ValueError:
        raise ValueError(f"{name} must be a whole number, got {text!r}") from None
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {text!r}")
    return value


def split_optimizer_list(text: str) -> tuple[str, ...]:
    """Comma-separated optimizer specs; commas inside ``[...]`` belong to a spec.

    Raises:
        ValueError: unbalanced brackets or an empty list.
    """
    specs, depth, current = [], 0, []
    for char in text:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth < 0:
            raise ValueError(f"unbalanced ']' in optimizer list {text!r}")
        if char == "," and depth == 0:
            specs.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"unbalanced '[' in optimizer list {text!r}")
    specs.append("".join(current).strip())
    specs = [spec for spec in specs if spec]
    if not specs:
        raise ValueError("choose at least one optimizer, e.g. 'rescaled_sgd,sgd'")
    return tuple(specs)


def lr_from_slider(position: float) -> float:
    """The lr for a slider at ``position`` (log10 scale)."""
    return 10.0 ** float(position)


def slider_from_lr(lr: float) -> float:
    """The slider position showing ``lr``, clamped to :data:`LR_SLIDER_RANGE`."""
    low, high = LR_SLIDER_RANGE
    return min(high, max(low, math.log10(lr))) if lr > 0 else low


def symmetric_limits(values: list[float], multiplier: float) -> tuple[float, float]:
    """y-limits ``±multiplier·max|v|`` for bars around zero (a multiplier < 1 zooms in)."""
    finite = [abs(v) for v in values if math.isfinite(v)]
    top = max(finite, default=0.0) * multiplier
    top = top if top > 0 else 1e-12  # an all-zero plot still needs a non-empty range
    return -top, top


def upper_limits(values: list[float], multiplier: float) -> tuple[float, float]:
    """y-limits ``[0, multiplier·max v]`` for non-negative bars (learning rates)."""
    finite = [v for v in values if math.isfinite(v)]
    top = max(finite, default=0.0) * multiplier
    return 0.0, top if top > 0 else 1e-12
