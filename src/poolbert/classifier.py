"""A trained classifier as a notebook holds it: `poolbert.load(folder)` and then `predict`.

It loads what `poolbert predict` loads (a run directory, a study's best head, a model folder or
an exported one) and scores texts as `poolbert predict` scores them: the calibration stored in
the model (temperature, multi-label threshold) included.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import PoolbertError
from .exporting.sources import resolve_source
from .prediction import PredictOptions, Predictor

Texts = Sequence[str] | Sequence[tuple[str, str]] | Sequence[Sequence[str]]


class Classifier:
    """A loaded poolbert model: `predict` gives labels, `predict_proba` calibrated probabilities.

    Build it with `poolbert.load(path)`.

    Example:
        >>> clf = poolbert.load("runs/mm")
        >>> clf.predict([("A man sleeps.", "A man is sleeping.")])
        ['entailment']
    """

    def __init__(self, predictor: Predictor) -> None:
        self._predictor = predictor

    @classmethod
    def load(cls, path: str | os.PathLike, head: str = "best", device: str = "auto",
             batch_size: int = 64, max_length: int | None = None,
             backend: str = "torch", precision: str = "auto") -> Classifier:
        """See `poolbert.load`."""
        options = PredictOptions(batch_size=batch_size, max_length=max_length, device=device,
                                 head=head, backend=backend, precision=precision)
        return cls(Predictor.load(resolve_source(path, head), options))

    @property
    def labels(self) -> list[str]:
        """The label names, in the order of `predict_proba`'s columns."""
        return list(self._predictor.labels)

    @property
    def problem_type(self) -> str:
        """single_label, multi_label or regression."""
        return self._predictor.problem_type

    def predict_proba(self, texts: Texts) -> np.ndarray:
        """Calibrated probabilities, (n, labels); for regression the predicted values, (n, 1).

        Args:
            texts: single sentences (strings) or sentence pairs ((a, b) tuples), as the model
                was trained on.

        Returns:
            A float array with one row per text, in the input's order.
        """
        texts_a, texts_b = _columns(texts)
        return self._predictor.probs(texts_a, texts_b)

    def predict(self, texts: Texts) -> list[Any]:
        """The prediction for each text: a label name (single-label), the list of label names
        at or above the model's threshold (multi-label), or a number (regression).

        Args:
            texts: single sentences (strings) or sentence pairs ((a, b) tuples).

        Returns:
            A list with one prediction per text, in the input's order.
        """
        probs = self.predict_proba(texts)
        if self.problem_type == "regression":
            return [float(v) for v in probs[:, 0]]
        if self.problem_type == "multi_label":
            threshold = self._predictor.threshold
            return [[n for n, p in zip(self.labels, row, strict=True) if p >= threshold]
                    for row in probs]
        return [self.labels[i] for i in probs.argmax(axis=1)]


def _columns(texts: Texts) -> tuple[list[str], list[str] | None]:
    """Strings are single sentences; pairs are (a, b) tuples or lists; not both in one call."""
    if isinstance(texts, str):
        raise PoolbertError("predict takes a list of texts, not one string (wrap it in [ ])")
    rows = list(texts)
    if all(isinstance(t, str) for t in rows):
        return [str(t) for t in rows], None
    if all(isinstance(t, (tuple, list)) and len(t) == 2 for t in rows):
        return [str(t[0]) for t in rows], [str(t[1]) for t in rows]
    raise PoolbertError("predict takes strings (single sentences) or (a, b) pairs, not a mix")
