import json

import pytest
import torch

from gradretention.tasks.models.text import PAD_ID, UNK_ID, LSTMClassifier, Vocabulary, tokenize

HEADER = {"format": "gradretention.vocabulary", "version": 1}
TEXTS = ["The film was good, the cast was GOOD.", "A bad film.<br /><br />Bad, bad!", "It's the end."]


def test_tokenize_lowercases_drops_markup_and_keeps_apostrophe_words():
    assert tokenize("It's GREAT!<br />10/10, don't") == ["it's", "great", "10", "10", "don't"]
    assert tokenize("") == []


def test_vocabulary_orders_by_frequency_then_alphabet_after_the_specials():
    vocab = Vocabulary.build(TEXTS)
    # Counts: bad 3; the 3; film 2, good 2, was 2; then a, cast, end, it's once each.
    assert vocab.tokens == ["<pad>", "<unk>", "bad", "the", "film", "good", "was", "a", "cast", "end", "it's"]
    assert vocab.id_of("<pad>") == PAD_ID and vocab.id_of("<unk>") == UNK_ID


def test_min_freq_and_max_size_trim_the_table():
    assert Vocabulary.build(TEXTS, min_freq=3).tokens == ["<pad>", "<unk>", "bad", "the"]
    assert Vocabulary.build(TEXTS, max_size=5).tokens == ["<pad>", "<unk>", "bad", "the", "film"]


def test_encode_pads_truncates_and_maps_unknown_words_to_unk():
    vocab = Vocabulary.build(TEXTS)
    ids, lengths = vocab.encode(["the GOOD zebra", "bad " * 10, ""], max_len=4)
    assert ids.dtype == torch.long and lengths.dtype == torch.long
    assert ids.tolist() == [[3, 5, UNK_ID, PAD_ID], [2, 2, 2, 2], [PAD_ID] * 4]
    assert lengths.tolist() == [3, 4, 0]


def test_vocabulary_survives_a_json_round_trip():
    vocab = Vocabulary.build(TEXTS, min_freq=2)
    restored = Vocabulary.from_dict(json.loads(json.dumps(vocab.to_dict())))
    assert restored.tokens == vocab.tokens
    assert torch.equal(restored.encode(TEXTS, 8)[0], vocab.encode(TEXTS, 8)[0])


@pytest.mark.parametrize(("data", "message"), [
    ({"format": "other", "version": 1, "tokens": ["<pad>", "<unk>"]}, "not a vocabulary dict: format='other'"),
    ({"format": "gradretention.vocabulary", "version": 9, "tokens": []}, "version=9"),
    ({"format": "gradretention.vocabulary", "version": 1, "tokens": "abc"}, "must be a list of strings"),
    ({**HEADER, "tokens": ["a", "b"]}, r"must start with \['<pad>', '<unk>'\]"),
    ({**HEADER, "tokens": ["<pad>", "<unk>", "x", "x"]}, r"duplicates \['x'\]"),
])
def test_from_dict_rejects_foreign_or_broken_data(data, message):
    with pytest.raises(ValueError, match=message):
        Vocabulary.from_dict(data)


def _model() -> LSTMClassifier:
    torch.manual_seed(0)
    return LSTMClassifier(vocab_size=20, num_classes=3, embed_dim=8, hidden=6).eval()


def test_padding_does_not_change_a_sequences_logits():
    model = _model()
    sequence = [4, 9, 2, 7]
    short = torch.tensor([sequence + [0], [5, 6, 0, 0, 0]])
    long = torch.tensor([sequence + [0] * 8, [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3]])
    with torch.no_grad():
        from_short = model(short, torch.tensor([4, 2]))
        from_long = model(long, torch.tensor([4, 12]))
        # Oracle: the unpadded sequence through the same layers, no packing at all.
        _, (hidden, _) = model.lstm(model.embedding(torch.tensor([sequence])))
        alone = model.head(hidden[-1])
    torch.testing.assert_close(from_short[0], alone[0])
    torch.testing.assert_close(from_long[0], alone[0])


def test_lengths_default_to_the_non_padding_count():
    model = _model()
    ids = torch.tensor([[4, 9, 2, 0, 0], [1, 5, 0, 0, 0]])
    with torch.no_grad():
        torch.testing.assert_close(model(ids), model(ids, torch.tensor([3, 2])))


def test_an_empty_text_still_gives_finite_logits():
    with torch.no_grad():
        logits = _model()(torch.zeros(2, 5, dtype=torch.long), torch.tensor([0, 0]))
    assert logits.shape == (2, 3) and bool(torch.isfinite(logits).all())


def test_a_few_adam_steps_lower_the_lstm_loss(loss_before_after):
    vocab = Vocabulary.build(TEXTS)
    ids, lengths = vocab.encode(TEXTS, max_len=10)
    model = LSTMClassifier(len(vocab), num_classes=2, embed_dim=16, hidden=16)
    before, after = loss_before_after(model, {"input_ids": ids, "lengths": lengths}, torch.tensor([1, 0, 1]), lr=1e-2)
    assert after < before


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"vocab_size": 0}, "vocab_size must be >= 1, got 0"),
    ({"vocab_size": 5, "padding_idx": 5}, r"padding_idx must be in \[0, 5\), got 5"),
])
def test_lstm_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LSTMClassifier(**kwargs)
