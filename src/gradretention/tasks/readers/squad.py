"""SQuAD v1.1 (``train-v1.1.json``, ``dev-v1.1.json``) and its official evaluation.

The file is ``{"version": "1.1", "data": [{"title", "paragraphs": [{"context", "qas":
[{"id", "question", "answers": [{"text", "answer_start"}]}]}]}]}``. :func:`read_squad`
flattens it to one :class:`SquadExample` per question and checks every answer span:
``context[answer_start : answer_start + len(text)] == text``. A wrong *structure* raises,
so does a file without questions or an answer that does not lie inside its context
(``0 <= answer_start <= len(context) - len(text)``, else it would silently train as "no
answer"); a span inside the context whose text does not match is counted (the official
data has a few), not fatal.

The scores follow the official ``evaluate-v1.1.py`` exactly: answers are normalised
(lower case, punctuation removed, the articles a/an/the removed, whitespace collapsed);
exact match and token-overlap F1 take the maximum over the ground truths; the split
scores are percentages and an unanswered question scores 0.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from .errors import DatasetFormatError

SPLIT_FILES = {"train": "train-v1.1.json", "dev": "dev-v1.1.json"}
MAX_FILE_BYTES = 1 << 30  # the train file is 30 MB
_PUNCTUATION = frozenset(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


@dataclass(frozen=True)
class SquadExample:
    """One question with its paragraph and every reference answer (dev has three)."""

    id: str
    title: str
    question: str
    context: str
    answer_texts: tuple[str, ...]
    answer_starts: tuple[int, ...]


@dataclass(frozen=True)
class SquadFile:
    """A parsed SQuAD file: its version string, the flat examples, and the span check."""

    version: str
    examples: list[SquadExample]
    answer_mismatches: int


def read_squad(path: str | Path) -> SquadFile:
    """Parse and check one SQuAD v1.1 JSON file.

    Returns:
        A :class:`SquadFile` whose ``answer_mismatches`` counts answers whose text is not
        found at ``answer_start`` in the context.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        DatasetFormatError: not JSON, a field missing or of the wrong type, no question at
            all, or an answer outside its context; the message names the file and the JSON
            path (``data[0].paragraphs[2].qas[1].id``) or the question id.

    Example:
        >>> squad = read_squad("data/squad/dev-v1.1.json")  # doctest: +SKIP
        >>> len(squad.examples), squad.examples[0].answer_texts  # doctest: +SKIP
        (10570, ('Denver Broncos', 'Denver Broncos', 'Denver Broncos'))
    """
    path = Path(path)
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise DatasetFormatError(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a SQuAD file can be")
    try:
        document = json.loads(path.read_bytes())
    except (ValueError, RecursionError) as error:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise DatasetFormatError(f"{path}: expected SQuAD JSON, found unparsable text ({error})") from error
    check = _Checker(path)
    articles = check.field(document, "data", list, "")
    version = document.get("version", "")
    examples: list[SquadExample] = []
    mismatches = 0
    for a, article in enumerate(articles):
        where = f"data[{a}]"
        title = check.field(article, "title", str, where)
        for p, paragraph in enumerate(check.field(article, "paragraphs", list, where)):
            context = check.field(paragraph, "context", str, f"{where}.paragraphs[{p}]")
            for q, qa in enumerate(check.field(paragraph, "qas", list, f"{where}.paragraphs[{p}]")):
                example = _parse_question(check, qa, f"{where}.paragraphs[{p}].qas[{q}]", title, context)
                mismatches += sum(
                    context[start : start + len(text)] != text
                    for text, start in zip(example.answer_texts, example.answer_starts)
                )
                examples.append(example)
    if not examples:
        raise DatasetFormatError(
            f"{path}: holds no questions ({len(articles)} articles); expected SQuAD v1.1 with at least one "
            "article whose paragraphs have questions"
        )
    return SquadFile(str(version), examples, mismatches)


class _Checker:
    """Typed field access that names the file and JSON path when the structure is wrong."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def field(self, node: Any, key: str, kind: type, where: str) -> Any:
        if not isinstance(node, dict):
            raise DatasetFormatError(f"{self.path}: {where or 'top level'}: expected an object, found {_kind(node)}")
        if key not in node:
            raise DatasetFormatError(f"{self.path}: {where or 'top level'}: missing key {key!r}, found {sorted(node)}")
        value = node[key]
        # bool is an int subclass; an answer_start of true is still a broken file.
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            label = f"{where}.{key}" if where else key
            raise DatasetFormatError(f"{self.path}: {label}: expected {kind.__name__}, found {_kind(value)}")
        return value


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string"}.get(type(value), type(value).__name__)


def _parse_question(check: _Checker, qa: Any, where: str, title: str, context: str) -> SquadExample:
    answers = check.field(qa, "answers", list, where)
    if not answers:
        raise DatasetFormatError(
            f"{check.path}: {where}.answers: expected at least one answer (SQuAD v1.1), found none; "
            "unanswerable questions (SQuAD v2.0) are not supported"
        )
    places = [(answer, f"{where}.answers[{i}]") for i, answer in enumerate(answers)]
    texts = tuple(check.field(answer, "text", str, place) for answer, place in places)
    starts = tuple(check.field(answer, "answer_start", int, place) for answer, place in places)
    question = check.field(qa, "question", str, where)
    question_id = check.field(qa, "id", str, where)
    for index, (text, start) in enumerate(zip(texts, starts)):
        check_answer_span(context, text, start, f"{check.path}: question id {question_id!r} ({where}.answers[{index}])")
    return SquadExample(question_id, title, question, context, texts, starts)


def check_answer_span(context: str, text: str, start: int, where: str) -> None:
    """DatasetFormatError naming ``where`` unless ``context[start : start + len(text)]`` lies inside ``context``.

    The text there need not equal ``text`` (the official data has a few such answers);
    the span must only be a real place in the context, so an answer can never turn
    into the "no answer" target unnoticed.
    """
    last = len(context) - len(text)
    if not 0 <= start <= last:
        valid = f"0..{last}" if last >= 0 else "none: the answer is longer than the context"
        raise DatasetFormatError(
            f"{where}: answer_start {start} puts the {len(text)}-character answer {text!r:.40} outside its "
            f"{len(context)}-character context; valid answer_start: {valid}"
        )


def read_squad_split(root: str | Path, split: str) -> SquadFile:
    """``root/train-v1.1.json`` or ``root/dev-v1.1.json``; see :func:`read_squad`."""
    if split not in SPLIT_FILES:
        raise ValueError(f"Invalid SQuAD split: {split!r}; valid splits: {', '.join(SPLIT_FILES)}")
    return read_squad(Path(root) / SPLIT_FILES[split])


def normalize_answer(text: str) -> str:
    """Lower-case, drop punctuation, drop the articles a/an/the, collapse whitespace (official order)."""
    lowered = text.lower()
    without_punctuation = "".join(char for char in lowered if char not in _PUNCTUATION)
    without_articles = _ARTICLES.sub(" ", without_punctuation)
    return " ".join(without_articles.split())


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    """Whether the two answers are equal after :func:`normalize_answer`."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-overlap F1 of the normalised answers (bag of tokens, counted with multiplicity)."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    common = Counter(prediction_tokens) & Counter(truth_tokens)
    overlap = sum(common.values())
    if overlap == 0:
        return 0.0
    precision = overlap / len(prediction_tokens)
    recall = overlap / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def metric_max_over_ground_truths(
    metric: Callable[[str, str], float | bool], prediction: str, ground_truths: Iterable[str]
) -> float:
    """The best score of ``prediction`` against any reference answer."""
    return max(float(metric(prediction, truth)) for truth in ground_truths)


def squad_scores(examples: Iterable[SquadExample], predictions: Mapping[str, str]) -> dict[str, float]:
    """Official SQuAD v1.1 ``exact_match`` and ``f1``, in percent, over ``examples``.

    A question missing from ``predictions`` scores 0, as in the official script.

    Example:
        >>> example = SquadExample("q1", "t", "Who?", "The Broncos won.", ("the Broncos",), (0,))
        >>> squad_scores([example], {"q1": "Broncos!"})
        {'exact_match': 100.0, 'f1': 100.0}
    """
    exact = f1 = 0.0
    total = 0
    for example in examples:
        total += 1
        if example.id not in predictions:
            continue
        prediction = predictions[example.id]
        exact += metric_max_over_ground_truths(exact_match_score, prediction, example.answer_texts)
        f1 += metric_max_over_ground_truths(f1_score, prediction, example.answer_texts)
    if total == 0:
        raise ValueError("squad_scores needs at least one example, got none")
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}
