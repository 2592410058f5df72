"""Parametrized optimizer names: ``adam_hd[lr=0.001,hypergrad_lr=1e-07]``.

One name per configuration, used in the CLI, the results store, legends and the GUI.
Values are parsed by a small grammar — numbers, booleans, ``None``, bare or quoted words,
and parenthesised tuples — never by ``eval``: a spec is untrusted text (a results table, a
shared config), so any input either parses into plain values or raises ``ValueError``.
Integers must fit in 64 bits and tuples nest at most :data:`MAX_DEPTH` deep, so that no
value can overflow a later float conversion or the parser's recursion.
"""

from __future__ import annotations

import math
import re
from typing import Any

# A registry name, or an external one (optim/peers.py): ``pt:adabelief`` or ``package.module:Class``.
_SPEC = re.compile(r"^\s*((?:[A-Za-z_][A-Za-z0-9_.]*:)?[A-Za-z][A-Za-z0-9_]*)\s*(?:\[(.*)\])?\s*$", re.DOTALL)
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_WORD = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*$")
_NUMBER = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")
_LITERALS = {"true": True, "false": False, "none": None, "null": None}
MAX_DEPTH = 8
"""Deepest tuple nesting a value may have; ``betas=(0.9,0.999)`` is depth 1."""
_INT64_MAX = 2**63 - 1


def parse_spec(spec: str) -> tuple[str, dict[str, Any]]:
    """Split ``name[k=v,...]`` into the lowercase name and a dict of parsed values.

    Raises:
        ValueError: malformed spec, duplicate key or unparsable value, naming the spec.
    """
    if not isinstance(spec, str):
        raise ValueError(f"An optimizer spec must be a string such as 'adam_hd[lr=0.001]', got {spec!r}")
    match = _SPEC.match(spec)
    if match is None:
        raise ValueError(f"Malformed optimizer spec {spec!r}; expected NAME or NAME[key=value,...], "
                         "e.g. 'adam_hd[lr=0.001,hypergrad_lr=1e-07]'")
    name, body = match.group(1), match.group(2)
    # Registry and pytorch-optimizer names are case-insensitive; a MODULE:CLASS path is Python's, case and all.
    name = name if ":" in name and not name.lower().startswith("pt:") else name.lower()
    values: dict[str, Any] = {}
    for item in _split_top_level(body or "", spec):
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or not _KEY.match(key):
            raise ValueError(f"Malformed item {item.strip()!r} in optimizer spec {spec!r}; expected key=value")
        if key in values:
            raise ValueError(f"Duplicate key {key!r} in optimizer spec {spec!r}")
        values[key] = parse_value(raw, spec)
    return name, values


def parse_value(raw: str, context: str = "", depth: int = 0) -> Any:
    """One value: int, float, bool, None, a (possibly quoted) word, or a tuple of values.

    Raises:
        ValueError: unparsable text, an integer outside the 64-bit range, or tuples
            nested deeper than :data:`MAX_DEPTH`, naming the value and ``context``.
    """
    text = raw.strip()
    if text.startswith("(") and text.endswith(")"):
        if depth >= MAX_DEPTH:
            raise ValueError(f"Tuples nested more than {MAX_DEPTH} deep in {context!r}")
        return tuple(parse_value(part, context, depth + 1) for part in _split_top_level(text[1:-1], context))
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    if text.lower() in _LITERALS:
        return _LITERALS[text.lower()]
    if _NUMBER.match(text):
        number = float(text)
        is_integer = re.fullmatch(r"[+-]?\d+", text) is not None
        return _checked_int(text, context) if is_integer else number
    if text.lower() in ("inf", "+inf", "-inf", "nan"):
        return float(text) if text.lower() != "nan" else math.nan
    if _WORD.match(text):
        return text
    raise ValueError(f"Cannot parse value {text!r} in {context!r}: expected a number, true/false, none, "
                     "a word or a (tuple)")


def _checked_int(text: str, context: str) -> int:
    # Digits first: int() of a huge literal is slow, and Python refuses > 4300 digits with a cryptic message.
    if len(text.lstrip("+-0")) > 19 or abs(value := int(text)) > _INT64_MAX:
        shown = text if len(text) <= 30 else f"{text[:12]}...{text[-6:]} ({len(text)} characters)"
        raise ValueError(f"Integer {shown} in {context!r} is out of range: integers must lie within ±{_INT64_MAX}")
    return value


def format_spec(name: str, values: dict[str, Any]) -> str:
    """The canonical spec string: keys sorted, floats in repr form (round-trips through parse_spec)."""
    if not values:
        return name
    return f"{name}[{','.join(f'{key}={_format_value(values[key])}' for key in sorted(values))}]"


def _format_value(value: Any) -> str:
    if isinstance(value, tuple | list):
        return "(" + ",".join(_format_value(item) for item in value) + ")"
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str) and not (_WORD.match(value) and parse_value(value) == value):
        # Quoted, so that '1.5', 'none', 'inf', '' or 'a b' read back as the same string.
        return f"'{value}'"
    return repr(value) if isinstance(value, float) else str(value)


def _split_top_level(body: str, context: str) -> list[str]:
    """Split at commas outside parentheses; empty input gives no items."""
    parts, depth, current = [], 0, []
    for char in body:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                raise ValueError(f"Unbalanced ')' in {context!r}")
        if char == "," and depth == 0:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    if depth != 0:
        raise ValueError(f"Unbalanced '(' in {context!r}")
    parts.append("".join(current))
    return [part for part in parts if part.strip()]
