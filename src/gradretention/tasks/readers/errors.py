"""The one error type the readers raise for files that exist but are not the documented format."""

from __future__ import annotations


class DatasetFormatError(ValueError):
    """A dataset file was found but its content is not the format its reader expects.

    The message always names the file, what was expected and what was found, so a
    user can tell a truncated download from a wrong file in the right place.
    Missing files raise :class:`FileNotFoundError` instead. It subclasses
    :class:`ValueError` so callers that already handle bad input keep working.

    Example:
        >>> try:
        ...     raise DatasetFormatError("labels.idx: expected magic 0x00000801, found 0x00000803")
        ... except ValueError as error:
        ...     print(error)
        labels.idx: expected magic 0x00000801, found 0x00000803
    """
