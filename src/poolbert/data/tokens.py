"""Tokenising: each split once per max_length, truncated and unpadded (batches pad)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from .load import TextSplit


@dataclass
class Encoded:
    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


class TokenCache:
    """Tokenise each split once per max_length; tuning trials reuse the same arrays."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        # values keep their split alive, so an id() in a key is never reused by another object
        self._cache: dict[tuple[str, int, int], tuple[TextSplit, Encoded]] = {}

    def get(self, split: TextSplit, max_length: int) -> Encoded:
        key = (split.name, id(split), max_length)
        if key not in self._cache:
            self._cache[key] = (split, encode(self.tokenizer, split, max_length))
        return self._cache[key][1]


def encode(tokenizer: Any, split: TextSplit, max_length: int) -> Encoded:
    """One batched call of the fast tokenizer; truncated, unpadded (padding happens per batch)."""
    out = tokenizer(split.texts_a, split.texts_b, truncation=True, max_length=max_length,
                    padding=False, return_attention_mask=False)
    as_arrays = lambda rows: [np.asarray(r, dtype=np.int64) for r in rows]  # noqa: E731
    input_ids = as_arrays(out["input_ids"])
    types = as_arrays(out["token_type_ids"]) if "token_type_ids" in out else None
    lengths = np.array([len(r) for r in input_ids], dtype=np.int64)
    return Encoded(input_ids, types, split.labels, lengths)
