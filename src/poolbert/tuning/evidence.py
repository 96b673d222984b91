"""What the head comparison reads: each head's runs on the dev examples, and a metric's value of
one run. Pure arrays, no I/O: the study, the simulation bench and tests build the same objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..layout import Predictions
from ..metrics import (
    METRIC_KEYS,
    classification_metrics,
    labelled,
    multilabel_metrics,
    regression_metrics,
)

EPS = 1e-12  # probabilities are clipped here before a log: a loss stays finite


@dataclass(frozen=True)
class HeadEvidence:
    """One head's runs over the same dev examples, in the same order.

    preds: (S, N) class ids (single-label), (S, N, C) 0/1 (multi-label) or (S, N) numbers
    (regression), one row per seed run. values: (S,) the study's metric of each run as the run
    recorded it (None: computed from preds). probs: (S, N, C) probabilities, needed for the
    loss metric and used to break ties of the majority vote. seeded: False when no seed run
    exists and the best trial's model stands in as S = 1 (its seed noise is then borrowed from
    the other heads).
    """

    preds: np.ndarray
    values: np.ndarray | None = None
    probs: np.ndarray | None = None
    seeded: bool = True

    @property
    def n_runs(self) -> int:
        return int(np.asarray(self.preds).shape[0])


@dataclass(frozen=True)
class BaselineEvidence:
    """The trivial predictor on the dev examples: its name for people, its value under the
    study's metric, and its per-example predictions (and probabilities, for the loss)."""

    name: str
    value: float
    preds: np.ndarray  # (N,) | (N, C) as one run of a head
    probs: np.ndarray | None = None  # (N, C)


def head_evidence(runs: Sequence[Predictions], values: Sequence[float] | None = None,
                  seeded: bool = True) -> HeadEvidence:
    """HeadEvidence from a head's predictions files (its seed runs, or its best trial's model
    with seeded=False)."""
    if not runs:
        raise ValueError("a head needs at least one run's predictions")
    probs = [r.probs for r in runs]
    has_probs = all(p.ndim == 2 and p.shape[1] > 0 for p in probs)
    return HeadEvidence(np.stack([r.preds for r in runs]),
                        None if values is None else np.asarray(values, dtype=float),
                        np.stack(probs) if has_probs else None, seeded)


def keep_labelled(labels: np.ndarray, evidence: dict[str, HeadEvidence],
                  baseline: BaselineEvidence) -> tuple[np.ndarray, dict[str, HeadEvidence],
                                                       BaselineEvidence]:
    """Only the dev rows that carry a label (metrics.labelled), in every array."""
    rows = labelled(labels)
    if rows.all():
        return labels, evidence, baseline

    def cut(a: np.ndarray | None, axis: int) -> np.ndarray | None:
        return None if a is None else np.compress(rows, a, axis=axis)

    heads = {h: HeadEvidence(cut(e.preds, 1), e.values, cut(e.probs, 1), e.seeded)  # type: ignore[arg-type]
             for h, e in evidence.items()}
    base = BaselineEvidence(baseline.name, baseline.value, cut(baseline.preds, 0),  # type: ignore[arg-type]
                            cut(baseline.probs, 0))
    return labels[rows], heads, base


def example_losses(labels: np.ndarray, preds: np.ndarray, probs: np.ndarray | None,
                   problem_type: str) -> np.ndarray:
    """(N,) each example's share of the loss: cross-entropy of the true class, binary
    cross-entropy averaged over labels, or the squared error (regression, from preds)."""
    if problem_type == "regression":
        return (np.asarray(preds, dtype=float) - labels) ** 2
    if probs is None:
        raise ValueError("the loss per example needs the runs' probabilities")
    p = np.clip(np.asarray(probs, dtype=float), EPS, 1 - EPS)
    if problem_type == "multi_label":
        return np.asarray(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean(axis=1))
    return np.asarray(-np.log(p[np.arange(len(labels)), labels]))


def metric_value(labels: np.ndarray, preds: np.ndarray, problem_type: str, metric: str,
                 num_labels: int, probs: np.ndarray | None = None) -> float:
    """One run's value of `metric` on these examples, by poolbert's own metric functions (the
    loss: the mean of `example_losses`)."""
    if metric == "loss":
        return float(example_losses(labels, preds, probs, problem_type).mean())
    key = METRIC_KEYS[metric]
    if problem_type == "regression":
        return float(regression_metrics(np.asarray(labels, dtype=float),
                                        np.asarray(preds, dtype=float))[key])
    if problem_type == "multi_label":
        return float(multilabel_metrics(labels, preds)[key])
    return float(classification_metrics(labels, preds, num_labels)[key])
