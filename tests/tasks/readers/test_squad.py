"""SQuAD v1.1 reader (structure and span checks) and the official EM / F1 definitions."""

from __future__ import annotations

import copy

import pytest

from gradretention.tasks.readers import (
    DatasetFormatError,
    SquadExample,
    exact_match_score,
    f1_score,
    normalize_answer,
    read_squad,
    read_squad_split,
    squad_scores,
)

from .realformats import squad_document, write_json


def test_examples_are_flattened_with_every_answer(tmp_path):
    write_json(tmp_path / "dev-v1.1.json", squad_document())
    squad = read_squad_split(tmp_path, "dev")
    assert squad.version == "1.1" and squad.answer_mismatches == 0
    assert [example.id for example in squad.examples] == ["q1", "q2", "q3"]
    first = squad.examples[0]
    assert first.title == "Super_Bowl_50" and first.question == "Who won Super Bowl 50?"
    assert first.answer_texts == ("Denver Broncos", "the Denver Broncos")
    assert first.answer_starts == (29, 25)
    assert first.context[29:43] == "Denver Broncos"
    assert squad.examples[2].context.startswith("The Normans") and squad.examples[2].answer_starts == (53,)


def test_answer_span_mismatches_are_counted_not_fatal(tmp_path):
    document = squad_document()
    document["data"][0]["paragraphs"][0]["qas"][0]["answers"][1]["answer_start"] += 1
    # (an answer_start past the end of the context is an error: tests/tasks/test_readers_hostile.py)
    squad = read_squad(write_json(tmp_path / "train-v1.1.json", document))
    assert squad.answer_mismatches == 1 and len(squad.examples) == 3


def _broken(edit):
    document = squad_document()
    edit(document)
    return document


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda d: d.pop("data"), r"top level: missing key 'data', found \['version'\]"),
        (lambda d: d.update(data={}), r"data: expected list, found object"),
        (lambda d: d["data"][1]["paragraphs"][0].pop("context"), r"data\[1\]\.paragraphs\[0\]: missing key 'context'"),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][1]["answers"][0].update(answer_start="32"),
            r"data\[0\]\.paragraphs\[0\]\.qas\[1\]\.answers\[0\]\.answer_start: expected int, found string",
        ),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][0]["answers"][0].update(answer_start=True),
            r"answers\[0\]\.answer_start: expected int, found bool",
        ),
        (lambda d: d["data"][0]["paragraphs"][0]["qas"][0].update(id=7), r"qas\[0\]\.id: expected str, found int"),
        (
            lambda d: d["data"][0]["paragraphs"][0]["qas"][1].update(answers=[], is_impossible=True),
            r"qas\[1\]\.answers: expected at least one answer .* \(SQuAD v2\.0\) are not supported",
        ),
        (lambda d: d["data"].append("article"), r"data\[2\]: expected an object, found string"),
    ],
)
def test_wrong_structure_names_file_and_json_path(tmp_path, edit, message):
    path = write_json(tmp_path / "train-v1.1.json", _broken(edit))
    with pytest.raises(DatasetFormatError, match=message) as caught:
        read_squad(path)
    assert str(path) in str(caught.value)


def test_not_json_is_refused(tmp_path):
    path = tmp_path / "dev-v1.1.json"
    path.write_text('{"version": "1.1", "data": [')
    with pytest.raises(DatasetFormatError, match=r"dev-v1\.1\.json: expected SQuAD JSON, found unparsable text"):
        read_squad(path)


def test_missing_file_and_bad_split(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_squad_split(tmp_path, "train")
    with pytest.raises(ValueError, match="Invalid SQuAD split: 'test'; valid splits: train, dev"):
        read_squad_split(tmp_path, "test")


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The  Quick, brown-fox!", "quick brownfox"),
        ("theatre then", "theatre then"),  # \b: only whole-word articles go
        ("A cat, an owl and THE dog.", "cat owl and dog"),
        ("the.", ""),  # punctuation goes first, then the bare article
        ("a-b", "ab"),
        ("Don’t stop", "don’t stop"),  # only ASCII string.punctuation is removed, as officially
        ("  tabs\tand\nnewlines ", "tabs and newlines"),
    ],
)
def test_normalize_answer_matches_official_order(text, normalized):
    assert normalize_answer(text) == normalized


def test_exact_match_and_f1_hand_computed():
    assert exact_match_score("The Denver Broncos!", "denver broncos")
    assert not exact_match_score("Broncos", "Denver Broncos")
    # pred {cat, sat} vs truth {cat, sat, on, mat}: precision 1, recall 1/2, F1 2/3.
    assert f1_score("the cat sat", "cat sat on the mat") == pytest.approx(2 / 3)
    # Tokens count with multiplicity: common {x: 1, y: 1}, so P = R = 2/3.
    assert f1_score("x x y", "x y y") == pytest.approx(2 / 3)
    assert f1_score("nothing shared", "else") == 0.0
    assert f1_score("the", "a") == 0.0  # both normalise to no tokens


def test_squad_scores_take_max_over_ground_truths_and_zero_for_missing():
    examples = [
        SquadExample("q1", "t", "?", "c", ("Denver Broncos", "the Denver Broncos"), (0, 0)),
        SquadExample("q2", "t", "?", "c", ("Carolina Panthers",), (0,)),
        SquadExample("q3", "t", "?", "c", ("France",), (0,)),
    ]
    predictions = {"q1": "Broncos", "q2": "Carolina Panthers."}
    # q1: F1 vs "denver broncos" = 2*(1*0.5)/1.5 = 2/3, EM 0; q2: EM 1, F1 1; q3 missing: 0.
    scores = squad_scores(examples, predictions)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)


def test_squad_scores_on_read_examples(tmp_path):
    squad = read_squad(write_json(tmp_path / "dev-v1.1.json", copy.deepcopy(squad_document())))
    perfect = {example.id: example.answer_texts[0] for example in squad.examples}
    assert squad_scores(squad.examples, perfect) == {"exact_match": 100.0, "f1": 100.0}
    with pytest.raises(ValueError, match="at least one example"):
        squad_scores([], perfect)
