"""IMDB (aclImdb tree and CSV) and AG_NEWS (original CSV) readers."""

from __future__ import annotations

import pytest

from gradretention.tasks.readers import (
    DatasetFormatError,
    read_aclimdb,
    read_ag_news,
    read_ag_news_csv,
    read_imdb,
    read_imdb_csv,
)

from .realformats import write_aclimdb, write_ag_news, write_csv

REVIEWS = {
    "train/pos": {"10_8.txt": "Loved it.<br /><br />Ten out of ten, café scene!", "2_9.txt": "Great, \"really\" great."},
    "train/neg": {"7_1.txt": "Dull.", "0_4.txt": "Meh, not good."},
    "test/pos": {"5_7.txt": "Fine film."},
    "test/neg": {"3_2.txt": "Bad."},
    "train/unsup": {"0_0.txt": "unlabelled, ignored"},
}


def test_aclimdb_reads_negatives_then_positives_in_numeric_id_order(tmp_path):
    write_aclimdb(tmp_path / "aclImdb", REVIEWS)
    (tmp_path / "aclImdb" / "train" / "urls_pos.txt").write_text("http://example.org\n")  # real tree has these
    texts, labels = read_aclimdb(tmp_path / "aclImdb", "train")
    # neg ids 0, 7; pos ids 2, 10 (numeric, not lexicographic: 2 before 10)
    assert texts == ["Meh, not good.", "Dull.", 'Great, "really" great.', "Loved it.<br /><br />Ten out of ten, café scene!"]
    assert labels == [0, 0, 1, 1]
    assert read_imdb(tmp_path / "aclImdb", "test") == (["Bad.", "Fine film."], [0, 1])


def test_aclimdb_skips_hidden_archive_debris(tmp_path):
    write_aclimdb(tmp_path, {"test/pos": {"1_8.txt": "ok", "._1_8.txt": "\x00\x05"}, "test/neg": {}})
    assert read_aclimdb(tmp_path, "test") == (["ok"], [1])


def test_aclimdb_bad_file_name_is_named(tmp_path):
    write_aclimdb(tmp_path, {"test/pos": {"review.txt": "x"}, "test/neg": {}})
    with pytest.raises(DatasetFormatError, match=r"review\.txt: expected a review file named <id>_<rating>\.txt"):
        read_aclimdb(tmp_path, "test")


def test_aclimdb_rating_must_fit_its_folder(tmp_path):
    write_aclimdb(tmp_path, {"test/pos": {"4_3.txt": "x"}, "test/neg": {}})
    with pytest.raises(DatasetFormatError, match=r"4_3\.txt: a 'pos' review must have a rating 7-10, found 3"):
        read_aclimdb(tmp_path, "test")


def test_aclimdb_non_utf8_text_is_named(tmp_path):
    write_aclimdb(tmp_path, {"test/pos": {}, "test/neg": {}})
    (tmp_path / "test" / "neg" / "1_1.txt").write_bytes(b"caf\xe9")
    with pytest.raises(DatasetFormatError, match=r"1_1\.txt: expected UTF-8 text"):
        read_aclimdb(tmp_path, "test")


def test_aclimdb_missing_folder(tmp_path):
    write_aclimdb(tmp_path, {"train/pos": {"1_9.txt": "x"}})
    with pytest.raises(FileNotFoundError, match=r"train/neg"):
        read_aclimdb(tmp_path, "train")


def test_imdb_csv_text_label_with_quoted_commas_and_newlines(tmp_path):
    path = tmp_path / "train.csv"
    write_csv(path, ["text", "label"], [["Good, very good.\nSecond line", "1"], ["Bad \"bad\" bad", "0"], ["meh", "neg"]])
    assert read_imdb_csv(path) == (["Good, very good.\nSecond line", 'Bad "bad" bad', "meh"], [1, 0, 0])
    assert read_imdb(tmp_path, "train")[1] == [1, 0, 0]


def test_imdb_csv_review_sentiment_columns(tmp_path):
    path = tmp_path / "test.csv"
    write_csv(path, ["review", "sentiment"], [["A", "positive"], ["B", "Negative"], ["C", "POS"]])
    assert read_imdb_csv(path) == (["A", "B", "C"], [1, 0, 1])


def test_imdb_csv_missing_columns_lists_expected_and_found(tmp_path):
    path = tmp_path / "train.csv"
    write_csv(path, ["sentence", "polarity"], [["A", "1"]])
    with pytest.raises(DatasetFormatError) as caught:
        read_imdb_csv(path)
    assert str(path) in str(caught.value)
    assert "expected columns text,label or review,sentiment, found columns ['sentence', 'polarity']" in str(caught.value)


def test_imdb_csv_bad_label_names_line_and_value(tmp_path):
    path = tmp_path / "train.csv"
    write_csv(path, ["text", "label"], [["A", "1"], ["B", "2"]])
    with pytest.raises(DatasetFormatError, match=r"train\.csv, line 3: label must be one of .*found '2'"):
        read_imdb_csv(path)


def test_imdb_neither_layout_says_both(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"test/\{neg,pos\}/ \(aclImdb\) or the CSV .*test\.csv"):
        read_imdb(tmp_path, "test")


AG_ROWS = [
    ("3", "Wall St. Bears Claw Back Into the Black (Reuters)",
     "Reuters - Short-sellers, Wall Street's dwindling\\band of ultra-cynics, are seeing green again."),
    ("1", 'Iraq says "no" to talks', "BAGHDAD, Iraq - A \"firm\" refusal,\nissued late."),
    ("4", "Title", "Description"),
    ("2", "Sox win", "BOSTON (AP)"),
]  # fmt: skip


def test_ag_news_reads_real_quoting_and_backslash_breaks(tmp_path):
    write_ag_news(tmp_path / "train.csv", AG_ROWS)
    raw = (tmp_path / "train.csv").read_text()
    assert raw.startswith('"3","Wall St. Bears Claw Back Into the Black (Reuters)","Reuters - Short-sellers, ')
    texts, labels = read_ag_news(tmp_path, "train")
    assert labels == [2, 0, 3, 1]
    assert texts[0] == (
        "Wall St. Bears Claw Back Into the Black (Reuters) "
        "Reuters - Short-sellers, Wall Street's dwindling band of ultra-cynics, are seeing green again."
    )
    assert texts[1] == 'Iraq says "no" to talks BAGHDAD, Iraq - A "firm" refusal,\nissued late.'
    assert texts[2] == "Title Description"


def test_ag_news_class_out_of_range_names_file_and_line(tmp_path):
    # Record 2 spans lines 2-3, so the bad record 3 starts on line 4.
    write_ag_news(tmp_path / "test.csv", [AG_ROWS[0], AG_ROWS[1], ("5", "t", "d")])
    with pytest.raises(DatasetFormatError, match=r"test\.csv, line 4: class index must be 1-4, found '5'"):
        read_ag_news_csv(tmp_path / "test.csv")


def test_ag_news_zero_class_is_out_of_range(tmp_path):
    write_ag_news(tmp_path / "test.csv", [("0", "t", "d")])
    with pytest.raises(DatasetFormatError, match=r"line 1: class index must be 1-4, found '0'"):
        read_ag_news_csv(tmp_path / "test.csv")


def test_ag_news_wrong_column_count(tmp_path):
    (tmp_path / "train.csv").write_text('"1","only a title"\n')
    with pytest.raises(DatasetFormatError, match=r"train\.csv, line 1: expected 3 columns .* found 2"):
        read_ag_news_csv(tmp_path / "train.csv")


def test_ag_news_header_row_is_not_the_real_format(tmp_path):
    (tmp_path / "train.csv").write_text("label,title,description\n1,a,b\n")
    with pytest.raises(DatasetFormatError, match="line 1: class index must be 1-4, found 'label'"):
        read_ag_news_csv(tmp_path / "train.csv")


def test_unknown_splits_list_valid_ones(tmp_path):
    with pytest.raises(ValueError, match="valid splits: train, test"):
        read_ag_news(tmp_path, "dev")
    with pytest.raises(ValueError, match="valid splits: train, test"):
        read_imdb(tmp_path, "unsup")
