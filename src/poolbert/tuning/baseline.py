"""The trivial predictor a head must beat: it sees train's labels and never the text.

- single-label: one class for every example, the one that scores best on train under the
  study's metric; ties go to the majority class, so for accuracy, micro-F1, macro-F1 and MCC it
  is the majority class of train (every constant has MCC 0, undefined and counted as 0 by
  metrics.py). For F1 of the positive class it is "always positive" when train has positives.
- multi-label: the most frequent label set of train. No other simple constant does better on
  train: "no label at all" matches exactly no more rows than the most frequent set (which may
  be that empty set) and has micro- and macro-F1 0.
- regression: the mean of train's targets. A constant has no correlation: Pearson and Spearman
  are undefined and counted as 0, so a head beats it by a correlation above 0.
- the loss: train's class (or label) frequencies as probabilities, smoothed by half a count so
  an unseen class costs a finite loss; for regression the mean's squared error.

The choice is made on train, never on dev, and scored on dev with metrics.py's functions.
"""

from __future__ import annotations

import numpy as np

from ..metrics import LABELS, better, labelled
from .evidence import BaselineEvidence, metric_value


def baseline(train_labels: np.ndarray, dev_labels: np.ndarray, problem_type: str, metric: str,
             num_labels: int, label_names: list[str] | None = None) -> BaselineEvidence:
    """The trivial predictor of `problem_type` (module docstring), fitted on train's labelled
    rows and scored on dev's."""
    train = train_labels[labelled(train_labels)]
    dev = dev_labels[labelled(dev_labels)]
    if len(train) == 0:
        raise ValueError("the baseline needs labelled training examples")
    names = label_names or [str(i) for i in range(num_labels)]
    if problem_type == "regression":
        mean = float(np.mean(train))
        preds = np.full(len(dev), mean)
        return BaselineEvidence(f"mean of train ({mean:.4g})",
                                metric_value(dev, preds, problem_type, metric, num_labels), preds)
    if problem_type == "multi_label":
        return _multi_label(train, dev, metric, names)
    return _single_label(train, dev, metric, names)


def _single_label(train: np.ndarray, dev: np.ndarray, metric: str,
                  names: list[str]) -> BaselineEvidence:
    k = len(names)
    counts = np.bincount(train, minlength=k)
    majority = int(np.argmax(counts))  # ties: the lowest class index
    if metric == "loss":
        prior = (counts + 0.5) / (counts.sum() + 0.5 * k)
        probs = np.tile(prior, (len(dev), 1))
        preds = np.full(len(dev), majority)
        value = metric_value(dev, preds, "single_label", metric, k, probs)
        return BaselineEvidence("class frequencies of train", value, preds, probs)
    best, best_score = majority, _on_train(train, majority, metric, k)
    for c in np.argsort(-counts, kind="stable"):  # most frequent first: ties keep it
        score = _on_train(train, int(c), metric, k)
        if better(score, best_score, metric):
            best, best_score = int(c), score
    preds = np.full(len(dev), best)
    name = (f"majority class of train ('{names[best]}')" if best == majority else
            f"always '{names[best]}' (the constant class with the best train "
            f"{LABELS[metric]})")
    return BaselineEvidence(name, metric_value(dev, preds, "single_label", metric, k), preds)


def _on_train(train: np.ndarray, c: int, metric: str, k: int) -> float:
    return metric_value(train, np.full(len(train), c), "single_label", metric, k)


def _multi_label(train: np.ndarray, dev: np.ndarray, metric: str,
                 names: list[str]) -> BaselineEvidence:
    k = train.shape[1]
    if metric == "loss":
        freq = (train.sum(axis=0) + 0.5) / (len(train) + 1.0)
        probs = np.tile(freq, (len(dev), 1))
        preds = np.tile((freq >= 0.5).astype(train.dtype), (len(dev), 1))
        value = metric_value(dev, preds, "multi_label", metric, k, probs)
        return BaselineEvidence("label frequencies of train", value, preds, probs)
    sets, counts = np.unique(train.astype(np.int8), axis=0, return_counts=True)
    row = sets[int(np.argmax(counts))].astype(train.dtype)  # ties: the first in sorted order
    shown = "; ".join(names[i] for i in np.flatnonzero(row)) or "no label"
    preds = np.tile(row, (len(dev), 1))
    return BaselineEvidence(f"most frequent label set of train ({shown})",
                            metric_value(dev, preds, "multi_label", metric, k), preds)
