"""SQuAD v1.1 extractive question answering with a pretrained encoder and a span head.

Data: ``<data_dir>/squad/train-v1.1.json`` and ``dev-v1.1.json``, else a Hugging Face
``squad`` folder (``id``, ``title``, ``context``, ``question``, ``answers``), else
``--download``. The train file is split per data seed *by article* (5 % of the titles go
to validation, so no paragraph is seen in both); the dev file is the test split.

Each question and its paragraph are tokenised once (``[CLS] question [SEP] context
[SEP]``, the context truncated to fit ``max_len``, 384 by default) and cached beside the
data. The first reference answer is the training target; an answer cut off by the
truncation points at ``[CLS]``, the BERT convention. Unlike BERT's reference script there
is no sliding window over long paragraphs: one window per question.

Metrics are the official v1.1 ``exact_match`` and ``f1`` (answers lower-cased, stripped of
punctuation and of a/an/the, whitespace collapsed; best over the reference answers),
reported as fractions in [0, 1] like every other metric here (the official script
prints percentages). :func:`squad_metrics` decodes each prediction from the start/end
logits: the best span of at most 30 tokens inside the context, mapped back to the
paragraph's characters through the token offsets kept in the split's targets.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.datacache import (
    MemoisedLoad,
    Payload,
    carve_validation,
    load_cached,
    require_examples,
)
from gradretention.tasks.readers.errors import DatasetFormatError
from gradretention.tasks.splits import check_data_seed
from gradretention.tasks.text_tasks import (
    checked_model_folder,
    load_tokenizer,
    max_length,
    model_path,
    tokenizer_fingerprint,
)

DATASET = "squad"
DEFAULT_LEN = 384
MAX_ANSWER_TOKENS = 30  # longest predicted answer, as in BERT's SQuAD evaluation
VAL_FRACTION = 0.05  # of the train file's articles
_SPAN_CHUNK = 64  # examples scored at once: best_span builds a (chunk, T, T) score table
INPUTS = ("input_ids", "attention_mask", "token_type_ids")
_FEATURE_DTYPES = {
    "input_ids": torch.int32, "attention_mask": torch.int8, "token_type_ids": torch.int8,
    "start_positions": torch.long, "end_positions": torch.long, "offset_mapping": torch.int32,
    "context_mask": torch.bool,
}  # fmt: skip
# reference key -> (context, answers) per example; the metric looks predictions up here.
_REFERENCES: dict[int, list[Any]] = {}


def _examples_payload(examples: list[Any], max_len: int, tokenizer: Any) -> Payload:
    from gradretention.tasks.models.bert import squad_features

    features = squad_features(
        tokenizer, [ex.question for ex in examples], [ex.context for ex in examples],
        [ex.answer_starts[0] for ex in examples], [ex.answer_texts[0] for ex in examples], max_len,
    )  # fmt: skip
    payload: Payload = {name: features[name].to(dtype) for name, dtype in _FEATURE_DTYPES.items()}
    # Plain lists load under weights_only; the metric needs the texts, the split needs the titles.
    payload["examples"] = [[ex.id, ex.title, ex.context, list(ex.answer_texts)] for ex in examples]
    return payload


def squad_payload(splits: dict[str, list[Any]], max_len: int, folder: Path) -> Payload:
    """``{"train": ..., "test": ...}`` features and reference texts from :class:`SquadExample` lists."""
    tokenizer = load_tokenizer(folder)
    return {split: _examples_payload(examples, max_len, tokenizer) for split, examples in splits.items()}


def read_squad_files(root: Path) -> dict[str, list[Any]]:
    """The train file's and the dev file's examples (dev becomes the test split)."""
    from gradretention.tasks.readers import read_squad_split

    splits = {"train": read_squad_split(root, "train").examples, "test": read_squad_split(root, "dev").examples}
    _check_articles(splits["train"], str(root / "train-v1.1.json"))
    return splits


def _check_articles(examples: list[Any], where: str) -> None:
    # Checked before tokenizing: validation is carved by article, so one article is not enough.
    titles = {example.title for example in examples}
    if len(titles) < 2:
        raise DatasetFormatError(
            f"{where}: holds {len(titles)} articles; the SQuAD train split needs at least 2 to carve a validation split"
        )


def hf_squad(dataset_dict: Any) -> dict[str, list[Any]]:
    """The same from a Hugging Face ``squad`` DatasetDict (splits ``train``, ``validation``)."""
    from gradretention.tasks.readers import split_columns

    out = {}
    for split, hf_split in (("train", "train"), ("test", "validation")):
        columns = split_columns(dataset_dict, hf_split, ["id", "title", "question", "context", "answers"])
        examples = [_hf_example(columns, row, hf_split) for row in range(len(columns["answers"]))]
        require_examples(len(examples), 1, f"Hugging Face squad, split {hf_split!r}")
        out[split] = examples
    _check_articles(out["train"], "Hugging Face squad, split 'train'")
    return out


def _hf_example(columns: dict[str, list[Any]], row: int, hf_split: str) -> Any:
    from gradretention.tasks.readers import SquadExample
    from gradretention.tasks.readers.squad import check_answer_span

    answers = columns["answers"][row]
    if not isinstance(answers, dict) or not answers.get("text") or "answer_start" not in answers:
        raise DatasetFormatError(
            f"Hugging Face squad, split {hf_split!r}, row {row}: expected answers "
            f"{{'text': [...], 'answer_start': [...]}} with at least one answer, found {answers!r:.80}"
        )
    values = [columns[name][row] for name in ("id", "title", "question", "context")]
    texts, starts = tuple(answers["text"]), tuple(answers["answer_start"])
    where = f"Hugging Face squad, split {hf_split!r}, question id {values[0]!r}"
    if len(texts) != len(starts) or not all(type(start) is int for start in starts):
        raise DatasetFormatError(f"{where}: expected one int answer_start per answer text, found {answers!r:.80}")
    for index, (text, start) in enumerate(zip(texts, starts)):
        check_answer_span(values[3], text, start, f"{where} (answer {index})")
    return SquadExample(*values, texts, starts)


def load_squad(data_seed: int, data_dir: Path | None = None) -> TaskData:
    """Question/context token ids; targets hold the answer tokens and what decoding needs.

    Raises:
        FileNotFoundError: no SQuAD (the message says what to put where) or no model folder.
        DatasetFormatError: the files are there but malformed.
    """
    seed = check_data_seed(data_seed)
    max_len = max_length(DEFAULT_LEN)
    folder = checked_model_folder(model_path())
    recipe = f"bert-len{max_len}-tok{tokenizer_fingerprint(folder)[:12]}-v1"
    payload, source = load_cached(
        DATASET, data_dir, recipe,
        lambda root: squad_payload(read_squad_files(root), max_len, folder),
        lambda hf: squad_payload(hf_squad(hf), max_len, folder),
    )  # fmt: skip
    splits = {name: _full_split(payload[name], f"{source.fingerprint}|{recipe}|{name}") for name in ("train", "test")}
    train_index, val_index = _carve_by_article(payload["train"]["examples"], seed)
    info = {"source": f"{source.kind}: {source.root}", "max_len": max_len, "model_path": str(folder), "data_seed": seed}
    train = splits["train"]
    # num_classes is the head's two outputs per token (start, end); the span model ignores it.
    return TaskData(Split(*train.batch(train_index)), Split(*train.batch(val_index)), splits["test"], 2, info)


def _full_split(part: Payload, key_text: str) -> Split:
    key = int(hashlib.sha256(key_text.encode()).hexdigest()[:15], 16)
    _REFERENCES[key] = [(context, answers) for _, _, context, answers in part["examples"]]
    n = len(part["examples"])
    inputs = {name: part[name].long() for name in INPUTS}
    targets = {name: part[name] for name in ("start_positions", "end_positions", "offset_mapping", "context_mask")}
    targets["example_index"] = torch.arange(n)
    targets["reference_key"] = torch.full((n,), key, dtype=torch.long)
    return Split(inputs, targets)


def _carve_by_article(examples: list[list[Any]], seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    titles = sorted({example[1] for example in examples})
    if len(titles) < 2:
        raise ValueError(
            f"the SQuAD train file needs at least 2 articles to carve a validation split, found {len(titles)}"
        )
    _, val_titles = carve_validation(len(titles), VAL_FRACTION, seed)
    held_out = {titles[i] for i in val_titles.tolist()}
    in_val = torch.tensor([example[1] in held_out for example in examples])
    return torch.nonzero(~in_val).flatten(), torch.nonzero(in_val).flatten()


def squad_metrics(outputs: list[dict[str, torch.Tensor]], targets: list[dict[str, torch.Tensor]]) -> dict[str, float]:
    """Official v1.1 exact match and F1 (as fractions) of the best spans of the logits."""
    from gradretention.tasks.models.bert import best_span
    from gradretention.tasks.readers.squad import exact_match_score, f1_score, metric_max_over_ground_truths

    exact = f1 = 0.0
    count = 0
    for output, target in zip(outputs, targets):
        for start in range(0, output["start_logits"].shape[0], _SPAN_CHUNK):
            rows = slice(start, start + _SPAN_CHUNK)
            starts, ends = best_span(output["start_logits"][rows], output["end_logits"][rows], MAX_ANSWER_TOKENS,
                                     target["context_mask"][rows].bool())  # fmt: skip
            offsets = target["offset_mapping"][rows].tolist()
            keys, indices = target["reference_key"][rows].tolist(), target["example_index"][rows].tolist()
            for offset, s, e, key, index in zip(offsets, starts.tolist(), ends.tolist(), keys, indices):
                context, answers = _reference(key, index)
                prediction = "" if s == 0 and e == 0 else context[offset[s][0] : offset[e][1]]
                exact += metric_max_over_ground_truths(exact_match_score, prediction, answers)
                f1 += metric_max_over_ground_truths(f1_score, prediction, answers)
                count += 1
    if count == 0:
        raise ValueError("squad_metrics needs at least one example, got none")
    return {"exact_match": exact / count, "f1": f1 / count}


def _reference(key: int, index: int) -> tuple[str, list[str]]:
    references = _REFERENCES.get(key)
    if references is None:
        raise ValueError("these SQuAD targets were not loaded in this process; load the task with load_squad first")
    return references[index]


def build_span_model(num_classes: int) -> nn.Module:
    """The encoder at :func:`~gradretention.tasks.text_tasks.model_path` with a start/end head."""
    from gradretention.tasks.models.bert import BertSpanQA, load_encoder

    encoder, _ = load_encoder(model_path())
    return BertSpanQA(encoder)


def _span_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    from gradretention.tasks.models.bert import span_loss

    return span_loss(outputs, targets)


SQUAD_BERT = Task(
    name="squad-bert",
    description="SQuAD v1.1 (JSON / HF); pretrained MiniLM encoder + span head (--model-path)",
    load=MemoisedLoad(load_squad),
    build_model=build_span_model,
    target_metric="f1",
    target_value=0.6,
    metrics=("exact_match", "f1"),
    default_epochs=2,
    default_batch_size=32,
    default_lr=5e-5,
    loss_fn=_span_loss,
    metric_fn=squad_metrics,
    needs_download=True,
    eval_batch_size=32,  # 384-token question + context pairs through the encoder
    evaluate_train=False,
)

TASKS: tuple[Task, ...] = (SQUAD_BERT,)
TASK_DATASETS: dict[str, str] = {"squad-bert": DATASET}
