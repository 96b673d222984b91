"""Statistics for comparing heads: seed summaries and paired tests. Pure functions, no I/O.

Correctness vectors are boolean arrays over the same validation examples in the same order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from scipy import special, stats


def seed_summary(values: Sequence[float], confidence: float = 0.95) -> dict:
    """Mean, sample standard deviation (ddof=1) and the t-interval of the mean.

    With one value the spread is unknown: std and the interval are None.
    """
    x = np.asarray(values, dtype=float)
    if len(x) == 0:
        return {"mean": None, "std": None, "ci95": None}
    mean = float(x.mean())
    if len(x) < 2:
        return {"mean": mean, "std": None, "ci95": None}
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + confidence / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return {"mean": mean, "std": std, "ci95": [mean - half, mean + half]}


def majority_correct(correct_per_seed: Sequence[np.ndarray],
                     tie_break: np.ndarray | None = None) -> np.ndarray:
    """Per example: right in more than half of the seed runs. A tie (even K) takes `tie_break`
    (e.g. whether the seed-averaged probabilities pick the true label), else counts as wrong."""
    matrix = np.asarray(correct_per_seed, dtype=bool)  # (K, N)
    votes, k = matrix.sum(axis=0) * 2, matrix.shape[0]
    out = votes > k
    if tie_break is not None:
        out = np.where(votes == k, np.asarray(tie_break, dtype=bool), out)
    return out


def discordant(a_correct: np.ndarray, b_correct: np.ndarray) -> tuple[int, int]:
    """(examples A gets right and B wrong, examples B gets right and A wrong)."""
    a, b = np.asarray(a_correct, dtype=bool), np.asarray(b_correct, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired vectors differ in length: {a.shape} vs {b.shape}")
    return int((a & ~b).sum()), int((~a & b).sum())


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value: a binomial test of b successes in b + c at 1/2."""
    if b + c == 0:
        return 1.0
    # what stats.binomtest(min(b, c), b + c, 0.5) answers (at 1/2 the two tails are mirror
    # images), from the binomial distribution function directly: a hundred times faster
    return float(min(1.0, 2 * special.bdtr(min(b, c), b + c, 0.5)))


def paired_bootstrap(a_correct: np.ndarray, b_correct: np.ndarray, n_resamples: int = 10_000,
                     seed: int = 0, confidence: float = 0.95) -> dict:
    """Accuracy difference A - B, its percentile interval over resampled examples, and a
    two-sided p-value (twice the smaller share of resampled differences on either side of 0)."""
    a = np.asarray(a_correct, dtype=float)
    b = np.asarray(b_correct, dtype=float)
    diff = a - b  # per example: -1, 0 or 1
    rng = np.random.default_rng(seed)
    means = np.empty(n_resamples)
    for start in range(0, n_resamples, 500):  # blocks: memory stays small on large dev sets
        size = min(500, n_resamples - start)
        means[start:start + size] = diff[rng.integers(0, len(diff), (size, len(diff)))].mean(1)
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(means, [tail, 1 - tail])
    p = min(1.0, 2 * min(float((means <= 0).mean()), float((means >= 0).mean())))
    return {"difference": float(diff.mean()), "ci95": [float(lo), float(hi)], "p_value": p,
            "n_resamples": n_resamples}


def paired_t(a_values: Sequence[float], b_values: Sequence[float]) -> dict | None:
    """Paired t-test over seeds (seed k of A with seed k of B); None below two pairs or when
    every difference is the same (no spread to test)."""
    a, b = np.asarray(a_values, dtype=float), np.asarray(b_values, dtype=float)
    if len(a) != len(b) or len(a) < 2 or np.ptp(a - b) <= 1e-12:  # rounding noise is no spread
        return None
    d = a - b
    # scipy.stats.ttest_rel's statistic and p-value, computed here: the simulation bench
    # calls this 10^4 times and ttest_rel's argument handling costs milliseconds a call
    statistic = float(d.mean() / (d.std(ddof=1) / math.sqrt(len(d))))
    p_value = float(2 * special.stdtr(len(d) - 1, -abs(statistic)))
    return {"statistic": statistic, "p_value": p_value, "difference": float(d.mean())}


def paired_squared_errors(a_pred: np.ndarray, b_pred: np.ndarray, targets: np.ndarray) -> dict:
    """Regression: Wilcoxon's signed-rank test on the per-example squared errors of A and B,
    and the difference of their mean squared errors (A - B)."""
    a_err = (np.asarray(a_pred, dtype=float) - targets) ** 2
    b_err = (np.asarray(b_pred, dtype=float) - targets) ** 2
    diff = a_err - b_err
    if np.all(np.abs(diff) <= 1e-12):
        return {"statistic": 0.0, "p_value": 1.0, "difference": 0.0}
    result = stats.wilcoxon(a_err, b_err)
    return {"statistic": float(result.statistic), "p_value": float(result.pvalue),
            "difference": float(diff.mean())}


def bootstrap_correlation(a_pred: np.ndarray, b_pred: np.ndarray, targets: np.ndarray,
                          n_resamples: int = 2_000, seed: int = 0,
                          confidence: float = 0.95) -> dict:
    """Regression: the Pearson correlation difference r(A) - r(B) with targets, its percentile
    interval over resampled examples, and a two-sided p-value as in `paired_bootstrap`."""
    a, b, y = (np.asarray(v, dtype=float) for v in (a_pred, b_pred, targets))

    def pearson(x: np.ndarray, t: np.ndarray) -> np.ndarray:  # rows of x against rows of t
        x, t = x - x.mean(1, keepdims=True), t - t.mean(1, keepdims=True)
        denom = np.sqrt((x ** 2).sum(1) * (t ** 2).sum(1))
        return np.divide((x * t).sum(1), denom, out=np.zeros(len(x)), where=denom > 0)

    rng = np.random.default_rng(seed)
    diffs = np.empty(n_resamples)
    for start in range(0, n_resamples, 500):
        size = min(500, n_resamples - start)
        rows = rng.integers(0, len(y), (size, len(y)))
        diffs[start:start + size] = pearson(a[rows], y[rows]) - pearson(b[rows], y[rows])
    tail = (1 - confidence) / 2
    lo, hi = np.quantile(diffs, [tail, 1 - tail])
    observed = float(pearson(a[None], y[None])[0] - pearson(b[None], y[None])[0])
    p = min(1.0, 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    return {"difference": observed, "ci95": [float(lo), float(hi)], "p_value": p,
            "n_resamples": n_resamples}
