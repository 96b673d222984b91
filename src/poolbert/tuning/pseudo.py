"""Per-example jackknife pseudo-values of a metric: what lets one test treat every metric as a
mean over examples.

For a run with metric value theta on N examples, example i's pseudo-value is
N * theta - (N - 1) * theta_without_i. For a mean over examples (accuracy, the loss) it is the
example's own contribution (correct 0/1, its loss); for macro-F1, MCC, F1 or a correlation it is
the example's influence, and the pseudo-values' variance / N is the jackknife variance of the
metric. Leave-one-out values are exact: a classification metric depends only on the confusion
counts, so examples with the same (label, prediction) share one; Pearson's r is updated from
running sums; Spearman's rho re-ranks the others (with average ranks for ties, a rank drops
by 1 above the example that leaves and by 1/2 among its ties), in blocks of rows.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from .evidence import example_losses, metric_value

MEANS = {  # metrics that are a plain mean over examples, per problem type
    "single_label": ("accuracy", "micro_f1"),
    "multi_label": ("accuracy",),
    "regression": (),
}


def pseudo_values(labels: np.ndarray, preds: np.ndarray, problem_type: str, metric: str,
                  num_labels: int, probs: np.ndarray | None = None) -> np.ndarray:
    """(N,) pseudo-values of one run's `metric` over its examples (module docstring)."""
    if metric == "loss":
        return example_losses(labels, preds, probs, problem_type)
    if metric in MEANS[problem_type]:
        right = preds == labels
        return (right.all(axis=1) if right.ndim == 2 else right).astype(float)
    if problem_type == "regression":
        x = np.asarray(preds, dtype=float)
        y = np.asarray(labels, dtype=float)
        if len(y) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
            return np.zeros(len(y))  # a constant predictor: 0, as metrics.py counts it
        if metric == "spearman":
            rx, ry = stats.rankdata(x), stats.rankdata(y)
            theta, without = _pearson_full(rx, ry), _spearman_leave_one_out(x, y, rx, ry)
        else:
            theta, without = _pearson_full(x, y), _pearson_leave_one_out(x, y)
        return len(y) * theta - (len(y) - 1) * without
    return _grouped_pseudo_values(labels, preds, problem_type, metric, num_labels)


def run_pseudo_values(labels: np.ndarray, preds: np.ndarray, problem_type: str, metric: str,
                      num_labels: int, probs: np.ndarray | None = None) -> np.ndarray:
    """(S, N) pseudo-values of each of S runs (preds and probs stacked over runs)."""
    return np.stack([pseudo_values(labels, preds[s], problem_type, metric, num_labels,
                                   None if probs is None else probs[s])
                     for s in range(len(preds))])


def _grouped_pseudo_values(labels: np.ndarray, preds: np.ndarray, problem_type: str,
                           metric: str, num_labels: int) -> np.ndarray:
    """Classification: leave-one-out values per distinct (label, prediction) row content."""
    n = len(labels)
    if problem_type == "multi_label":
        rows = np.concatenate([labels, preds], axis=1).astype(np.int8)
        _, first, group = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    else:
        _, first, group = np.unique(np.asarray(labels) * num_labels + np.asarray(preds),
                                    return_index=True, return_inverse=True)
    theta = metric_value(labels, preds, problem_type, metric, num_labels)
    keep = np.ones(n, dtype=bool)
    without = np.empty(len(first))
    for g, i in enumerate(first):
        keep[i] = False
        without[g] = metric_value(labels[keep], preds[keep], problem_type, metric, num_labels)
        keep[i] = True
    return n * theta - (n - 1) * without[np.ravel(group)]


def _pearson_full(x: np.ndarray, y: np.ndarray) -> float:
    x, y = x - x.mean(), y - y.mean()
    return float(x @ y) / float(np.sqrt((x @ x) * (y @ y)))


def _pearson_leave_one_out(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """(N,) Pearson's r without example i, from the sums less example i's terms."""
    x, y = x - x.mean(), y - y.mean()  # centred first: the sums lose no precision
    m = len(x) - 1
    sx, sy = x.sum() - x, y.sum() - y
    sxx, syy, sxy = (x @ x) - x * x, (y @ y) - y * y, (x @ y) - x * y
    cov = sxy - sx * sy / m
    var = (sxx - sx * sx / m) * (syy - sy * sy / m)
    ok = var > 1e-20 * (x @ x) * (y @ y)  # constant without example i: 0
    return np.divide(cov, np.sqrt(np.where(ok, var, 1.0)), out=np.zeros_like(cov), where=ok)


def _spearman_leave_one_out(x: np.ndarray, y: np.ndarray, rx: np.ndarray,
                            ry: np.ndarray, block: int = 256) -> np.ndarray:
    """(N,) Spearman's rho without example i: the others' average ranks updated exactly."""
    n = len(x)
    out = np.empty(n)
    for start in range(0, n, block):
        rows = np.arange(start, min(n, start + block))
        own = np.zeros((len(rows), n), dtype=bool)
        own[np.arange(len(rows)), rows] = True
        a = rx - (x > x[rows, None]) - 0.5 * (x == x[rows, None])  # (B, N) ranks without i
        b = ry - (y > y[rows, None]) - 0.5 * (y == y[rows, None])
        a, b = np.where(own, 0.0, a), np.where(own, 0.0, b)
        mean_a, mean_b = a.sum(1, keepdims=True) / (n - 1), b.sum(1, keepdims=True) / (n - 1)
        a, b = np.where(own, 0.0, a - mean_a), np.where(own, 0.0, b - mean_b)
        denom = np.sqrt((a * a).sum(1) * (b * b).sum(1))
        out[rows] = np.divide((a * b).sum(1), denom, out=np.zeros(len(rows)), where=denom > 0)
    return out
