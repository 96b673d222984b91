"""Sentence pairs shaped like GLUE RTE, for the speed rows on a machine without RTE.

Speed depends on how many pairs there are and how long they are, not on what they say. These
pairs have RTE's split sizes, its balanced labels, and per-sentence token counts drawn from
RTE's own distribution (the quantiles below, counted with the embedded model's tokenizer on
train). The words are made-up syllable strings, so a vocabulary learnt from them (the bench's
stand-in model) holds each as one token and a pair is as long in tokens as an RTE pair; labels
are random, so accuracies on these pairs are chance.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

TRAIN_ROWS, VALIDATION_ROWS = 2490, 277  # RTE's train and validation splits
# token counts per sentence at the 0, 5, ..., 100th percentiles of RTE train
PREMISE_QUANTILES = (5, 16, 20, 23, 26, 28, 31, 33, 35, 37, 39, 42, 45, 49, 56, 70, 90, 107, 122,
                     143, 280)
HYPOTHESIS_QUANTILES = (3, 6, 7, 7, 8, 8, 9, 9, 9, 10, 10, 11, 11, 12, 12, 13, 14, 16, 18, 23, 51)
WORDS = 5000  # few enough that a 30522-entry WordPiece vocabulary keeps each one whole


def _lexicon() -> list[str]:
    onsets = "b d f g k l m n p r s t v z".split()
    syllables = [c + v for c in onsets for v in "aeiou"]  # 70
    return [a + b for a in syllables for b in syllables][:WORDS]


def _lengths(rng: np.random.Generator, quantiles: tuple[int, ...], n: int) -> np.ndarray:
    """n token counts by inverse-CDF sampling between the stored quantiles."""
    return np.rint(np.interp(rng.random(n), np.linspace(0, 1, len(quantiles)),
                             quantiles)).astype(int)


def _sentences(rng: np.random.Generator, lexicon: list[str], lengths: np.ndarray) -> list[str]:
    # Zipf-like word frequencies, as in text; the full stop is one of the sentence's tokens
    weights = 1 / np.arange(1, len(lexicon) + 1)
    counts = np.maximum(lengths - 1, 1)
    words = rng.choice(np.array(lexicon), size=int(counts.sum()), p=weights / weights.sum())
    return [" ".join(chunk) + "." for chunk in np.split(words, np.cumsum(counts)[:-1])]


def write(folder: Path, seed: int = 0) -> Path:
    """train.parquet and validation.parquet (sentence1, sentence2, label, idx) in `folder`."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    lexicon = _lexicon()
    folder.mkdir(parents=True, exist_ok=True)
    for split, rows in (("train", TRAIN_ROWS), ("validation", VALIDATION_ROWS)):
        pd.DataFrame({
            "sentence1": _sentences(rng, lexicon, _lengths(rng, PREMISE_QUANTILES, rows)),
            "sentence2": _sentences(rng, lexicon, _lengths(rng, HYPOTHESIS_QUANTILES, rows)),
            "label": rng.permutation(np.arange(rows) % 2),
            "idx": np.arange(rows),
        }).to_parquet(folder / f"{split}.parquet", index=False)
    return folder
