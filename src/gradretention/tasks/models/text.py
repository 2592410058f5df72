"""Word-level text classification: a vocabulary built from training texts and an LSTM.

The pair serves IMDB-style sentiment tasks: :meth:`Vocabulary.encode` turns raw strings
into right-padded id tensors plus lengths, and :class:`LSTMClassifier` reads each
sequence up to its length and classifies its last valid hidden state.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Iterable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

PAD_TOKEN, UNK_TOKEN = "<pad>", "<unk>"
PAD_ID, UNK_ID = 0, 1
_FORMAT = "gradretention.vocabulary"
_VERSION = 1
# HTML line breaks are common in IMDB reviews; they are markup, not words.
_MARKUP = re.compile(r"<[^>]+>")
_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(text: str) -> list[str]:
    """Lowercase word tokens: letters/digits with an optional ``'s``-style suffix; tags dropped.

    Example:
        >>> tokenize("It's GREAT!<br />10/10")
        ["it's", 'great', '10', '10']
    """
    return _WORD.findall(_MARKUP.sub(" ", text.lower()))


class Vocabulary:
    """Token <-> id table with ``<pad>`` = 0 and ``<unk>`` = 1.

    Ids after the two specials follow descending training frequency, ties broken
    alphabetically, so the same texts always give the same table.

    Args:
        tokens: the full id-ordered token list, starting with ``<pad>``, ``<unk>``.

    Example:
        >>> vocab = Vocabulary.build(["a good film", "a bad film"], min_freq=2)
        >>> vocab.tokens
        ['<pad>', '<unk>', 'a', 'film']
        >>> vocab.encode(["a great film"], max_len=4)
        (tensor([[2, 1, 3, 0]]), tensor([3]))
    """

    def __init__(self, tokens: list[str]) -> None:
        if tokens[:2] != [PAD_TOKEN, UNK_TOKEN]:
            raise ValueError(f"tokens must start with {[PAD_TOKEN, UNK_TOKEN]}, got {tokens[:2]}")
        if len(set(tokens)) != len(tokens):
            duplicates = sorted(token for token, count in Counter(tokens).items() if count > 1)
            raise ValueError(f"tokens must be unique, got duplicates {duplicates[:5]}")
        self.tokens = list(tokens)
        self._ids = {token: index for index, token in enumerate(self.tokens)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int | None = None) -> "Vocabulary":
        """The vocabulary of ``texts``: words seen at least ``min_freq`` times.

        Args:
            texts: training texts only (building on test texts leaks information).
            min_freq: rarer words map to ``<unk>``.
            max_size: cap on the table size, the two specials included.
        """
        if min_freq < 1:
            raise ValueError(f"min_freq must be >= 1, got {min_freq}")
        if max_size is not None and max_size < 2:
            raise ValueError(f"max_size must be >= 2 (room for {PAD_TOKEN} and {UNK_TOKEN}), got {max_size}")
        counts = Counter(token for text in texts for token in tokenize(text))
        counts.pop(PAD_TOKEN, None)
        counts.pop(UNK_TOKEN, None)
        ranked = sorted((token for token, count in counts.items() if count >= min_freq), key=lambda t: (-counts[t], t))
        if max_size is not None:
            ranked = ranked[: max_size - 2]
        return cls([PAD_TOKEN, UNK_TOKEN, *ranked])

    def __len__(self) -> int:
        return len(self.tokens)

    def id_of(self, token: str) -> int:
        """The id of ``token``, ``UNK_ID`` when it is not in the table."""
        return self._ids.get(token, UNK_ID)

    def encode(self, texts: Iterable[str], max_len: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids ``(N, max_len)`` and lengths ``(N,)``, both ``torch.long``.

        Texts longer than ``max_len`` tokens keep their first ``max_len``; an empty text
        has length 0.
        """
        if max_len < 1:
            raise ValueError(f"max_len must be >= 1, got {max_len}")
        rows = [[self.id_of(token) for token in tokenize(text)[:max_len]] for text in texts]
        ids = torch.full((len(rows), max_len), PAD_ID, dtype=torch.long)
        for index, row in enumerate(rows):
            ids[index, : len(row)] = torch.tensor(row, dtype=torch.long)
        return ids, torch.tensor([len(row) for row in rows], dtype=torch.long)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description; :meth:`from_dict` reads it back."""
        return {"format": _FORMAT, "version": _VERSION, "tokens": list(self.tokens)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Vocabulary":
        """The vocabulary that :meth:`to_dict` wrote; rejects other formats and versions."""
        if data.get("format") != _FORMAT or data.get("version") != _VERSION:
            raise ValueError(
                f"not a vocabulary dict: format={data.get('format')!r} version={data.get('version')!r}, "
                f"expected format={_FORMAT!r} version={_VERSION}"
            )
        tokens = data.get("tokens")
        if not isinstance(tokens, list) or not all(isinstance(token, str) for token in tokens):
            raise ValueError("vocabulary dict 'tokens' must be a list of strings")
        return cls(tokens)


class LSTMClassifier(nn.Module):
    """Embedding -> one-layer LSTM -> linear head on the last valid hidden state.

    The recurrent sentiment baseline of the IMDB benchmark (Maas et al. 2011 data;
    Hochreiter & Schmidhuber 1997 cell). Sequences are packed by length, so padding
    never enters the recurrence: a sequence gives the same logits however far it is
    padded.

    Args:
        vocab_size: number of token ids (``len(vocabulary)``).
        num_classes: number of output logits.
        embed_dim: embedding width.
        hidden: LSTM hidden-state width.
        padding_idx: the padding id; its embedding stays zero and untrained.

    Example:
        >>> model = LSTMClassifier(vocab_size=50, num_classes=2, embed_dim=8, hidden=8)
        >>> model(torch.tensor([[5, 6, 0]]), torch.tensor([2])).shape
        torch.Size([1, 2])
    """

    def __init__(
        self, vocab_size: int, num_classes: int = 2, embed_dim: int = 128, hidden: int = 128, padding_idx: int = PAD_ID
    ) -> None:
        super().__init__()
        sizes = {"vocab_size": vocab_size, "num_classes": num_classes, "embed_dim": embed_dim, "hidden": hidden}
        for name, value in sizes.items():
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if not 0 <= padding_idx < vocab_size:
            raise ValueError(f"padding_idx must be in [0, {vocab_size}), got {padding_idx}")
        self.padding_idx = padding_idx
        self.embedding = nn.Embedding(vocab_size, embed_dim, padding_idx=padding_idx)
        self.lstm = nn.LSTM(embed_dim, hidden, batch_first=True)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, input_ids: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        """Logits ``(N, num_classes)`` for right-padded ``input_ids`` ``(N, T)``.

        Args:
            input_ids: token ids, padding on the right.
            lengths: valid tokens per row; when omitted, the count of non-padding ids.
        """
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be 2-D (N, T), got shape {tuple(input_ids.shape)}")
        if lengths is None:
            lengths = (input_ids != self.padding_idx).sum(dim=1)
        # An empty text reads one padding step rather than breaking the packing.
        lengths = lengths.clamp(min=1, max=input_ids.shape[1]).cpu()
        packed = pack_padded_sequence(self.embedding(input_ids), lengths, batch_first=True, enforce_sorted=False)
        _, (last_hidden, _) = self.lstm(packed)
        # pack_padded_sequence restores the caller's order in h_n, so row i is sequence i.
        return self.head(last_hidden[-1])
