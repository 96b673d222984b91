"""The baseline a head must beat: the best prediction that never reads the text, on dev.

A head that ignores its input can score, in expectation, no more than the best constant
prediction on the examples it is scored on (a random guess scores a mix of the constants), so
that constant is the bar for "this head learnt something from the text". It is chosen on dev
itself: a constant chosen on train can land below chance on dev, as RTE showed (200 training
examples whose majority is 'not_entailment' scored 47.3% on dev, where always 'entailment'
scores 52.7%; a head that always said 'entailment' would "beat" it without reading a word).
Choosing on dev favours the baseline only, so the test against it stays conservative; no head
is chosen or tuned on it.

- single-label: one class for every example, the one that scores best on dev under the study's
  metric; ties go to the lower class index. For accuracy it is dev's most frequent class;
  every constant has MCC 0 (undefined, counted as 0 by metrics.py).
- multi-label: one label set for every example, the best on dev among the sets dev and train
  hold and every "m most frequent labels of dev" (m = 0..k: where the F1 optimum lies).
- regression: a constant has no correlation: Pearson and Spearman are undefined and counted as
  0, so a head beats it by a correlation above 0; for the loss, the mean of dev's targets.
- the loss: dev's class (or label) frequencies as probabilities, the constant prediction of
  least cross-entropy on dev.
"""

from __future__ import annotations

import numpy as np

from ..metrics import better, labelled
from .evidence import BaselineEvidence, metric_value


def baseline(dev_labels: np.ndarray, problem_type: str, metric: str, num_labels: int,
             label_names: list[str] | None = None,
             train_labels: np.ndarray | None = None) -> BaselineEvidence:
    """The best text-blind predictor of `problem_type` (module docstring), scored on dev's
    labelled rows; `train_labels` add candidate label sets for multi-label."""
    dev = dev_labels[labelled(dev_labels)]
    if len(dev) == 0:
        raise ValueError("the baseline needs labelled dev examples")
    names = label_names or [str(i) for i in range(num_labels)]
    if problem_type == "regression":
        mean = float(np.mean(dev))
        preds = np.full(len(dev), mean)
        return BaselineEvidence(f"a constant ({mean:.4g}, the mean of dev)",
                                metric_value(dev, preds, problem_type, metric, num_labels), preds)
    if problem_type == "multi_label":
        train = None if train_labels is None else train_labels[labelled(train_labels)]
        return _multi_label(dev, train, metric, names)
    return _single_label(dev, metric, names)


def _single_label(dev: np.ndarray, metric: str, names: list[str]) -> BaselineEvidence:
    k = len(names)
    if metric == "loss":
        prior = np.bincount(dev, minlength=k) / len(dev)
        probs = np.tile(prior, (len(dev), 1))
        preds = np.full(len(dev), int(np.argmax(prior)))
        value = metric_value(dev, preds, "single_label", metric, k, probs)
        return BaselineEvidence("class frequencies of dev", value, preds, probs)
    best, best_score = 0, _constant_score(dev, 0, metric, k)
    for c in range(1, k):
        score = _constant_score(dev, c, metric, k)
        if better(score, best_score, metric):
            best, best_score = c, score
    return BaselineEvidence(f"always '{names[best]}', the best constant on dev", best_score,
                            np.full(len(dev), best))


def _constant_score(dev: np.ndarray, c: int, metric: str, k: int) -> float:
    return metric_value(dev, np.full(len(dev), c), "single_label", metric, k)


def _multi_label(dev: np.ndarray, train: np.ndarray | None, metric: str,
                 names: list[str]) -> BaselineEvidence:
    k = dev.shape[1]
    if metric == "loss":
        freq = dev.mean(axis=0)
        probs = np.tile(freq, (len(dev), 1))
        preds = np.tile((freq >= 0.5).astype(dev.dtype), (len(dev), 1))
        value = metric_value(dev, preds, "multi_label", metric, k, probs)
        return BaselineEvidence("label frequencies of dev", value, preds, probs)
    # the F1 optimum among constants is "the m most frequent labels" for some m, which need
    # not occur as a row: every such prefix is a candidate too
    order = np.argsort(-dev.sum(axis=0), kind="stable")
    prefixes = np.zeros((k + 1, k), dev.dtype)
    for m in range(1, k + 1):
        prefixes[m:, order[m - 1]] = 1
    seen = [dev, prefixes] + ([] if train is None else [train])
    candidates = np.unique(np.concatenate(seen).astype(np.int8), axis=0).astype(dev.dtype)
    scores = [metric_value(dev, np.tile(row, (len(dev), 1)), "multi_label", metric, k)
              for row in candidates]
    best = 0
    for i, score in enumerate(scores):
        if better(score, scores[best], metric):
            best = i
    row = candidates[best]
    shown = "; ".join(names[i] for i in np.flatnonzero(row)) or "no label"
    return BaselineEvidence(f"always ({shown}), the best constant label set on dev",
                            scores[best], np.tile(row, (len(dev), 1)))
