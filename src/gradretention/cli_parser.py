"""How the command line parses and explains itself.

- :class:`Parser`: argparse with a one-line error (the problem, the flag, and where the help
  is) instead of twenty lines of usage before it.
- :class:`HelpFormatter`: every flag's help ends with its default where it has one.
- :func:`document_defaults`: the sweep flags, whose parser default is ``None`` ("not given",
  so that a ``--config`` file shows through), say the value that applies when neither sets them.
- :func:`joined_negative_values`: ``--lrs -0.1,0.2`` reaches the flag's own check (which says
  that an lr must be > 0) instead of argparse's "expected one argument".
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn

from gradretention.bench.config import SweepConfig

EXIT_USAGE = 2
_STATED_DEFAULT = re.compile(r"\s*\(default[ :][^)]*\)$")
_NEGATIVE_VALUE = re.compile(r"^-\.?\d")  # "-0.1,0.2", "-1e-5", "-.5": a value, never one of our flags


class HelpFormatter(argparse.HelpFormatter):
    """``(default: X)`` after each flag that has a default to show (argparse's own formatter says "None")."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        shown = action.default not in (None, False, argparse.SUPPRESS) and not isinstance(action.default, tuple)
        if shown and "default" not in text and action.option_strings:
            text += " (default: %(default)s)"
        return text


class Parser(argparse.ArgumentParser):
    """An :class:`argparse.ArgumentParser` whose usage errors fit on one line (exit 2)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def document_defaults(parser: argparse.ArgumentParser, defaults: Mapping[str, object]) -> None:
    """Append ``(default: X)`` to each sweep flag's help that names no default of its own.

    ``X`` is ``defaults[dest]`` (the command's own default, e.g. ``run``'s one seed) or else
    :class:`SweepConfig`'s field default; flags whose default is "not set" stay as they are.
    """
    fields = {field.name: field.default for field in dataclasses.fields(SweepConfig)}
    for action in parser._actions:  # argparse keeps no public list of a parser's actions
        if action.dest not in fields:
            continue
        text = action.help or ""
        if action.dest in defaults:  # the command's own default replaces the one the flag's help states
            text = _STATED_DEFAULT.sub("", text)
        value = defaults.get(action.dest, fields[action.dest])
        if "default" not in text and value is not None and value is not False and value != ():
            text = f"{text} (default: {str(value).replace('%', '%%')})"
        action.help = text


def joined_negative_values(argv: Sequence[str]) -> list[str]:
    """``argv`` with ``--flag -0.1,0.2`` written ``--flag=-0.1,0.2``.

    argparse reads a token starting with ``-`` as a flag unless it is a plain negative
    number, so a negative lr list or ``-1e-5`` would fail as "expected one argument"
    rather than reach the flag's check, which says what is wrong with the value.
    """
    out: list[str] = []
    for token in argv:
        if out and out[-1].startswith("--") and "=" not in out[-1] and _NEGATIVE_VALUE.match(token):
            out[-1] = f"{out[-1]}={token}"
        else:
            out.append(token)
    return out


def command_line(argv: Sequence[str]) -> str:
    """``argv`` as the shell command a user can paste: ``gradretention bench --tasks spiral``."""
    return shlex.join(["gradretention", *argv])
