"""Models for the benchmark tasks: small ones here, larger ones in sibling modules."""

from gradretention.tasks.models.small import MLP, Conv1dNet, DigitsCNN, LogisticRegression

__all__ = ["MLP", "Conv1dNet", "DigitsCNN", "LogisticRegression"]
