"""poolbert.tuning.stats on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from poolbert.tuning import stats


def test_mcnemar_exact_known_value():
    p = stats.mcnemar_exact(10, 2)
    assert p == pytest.approx(sps.binomtest(2, 12, 0.5).pvalue)
    assert p == pytest.approx(0.0386, abs=1e-4)
    assert stats.mcnemar_exact(2, 10) == p  # symmetric
    assert stats.mcnemar_exact(0, 0) == 1.0
    assert stats.mcnemar_exact(5, 5) == pytest.approx(1.0)


def test_discordant_counts():
    a = np.array([1, 1, 0, 0, 1], dtype=bool)
    b = np.array([1, 0, 1, 0, 0], dtype=bool)
    assert stats.discordant(a, b) == (2, 1)
    with pytest.raises(ValueError):
        stats.discordant(a, b[:3])


def test_seed_summary_known_values():
    out = stats.seed_summary([0.6, 0.7, 0.8])
    assert out["mean"] == pytest.approx(0.7)
    assert out["std"] == pytest.approx(0.1)
    half = 4.302652729911275 * 0.1 / math.sqrt(3)  # t(0.975, df=2)
    assert out["ci95"] == pytest.approx([0.7 - half, 0.7 + half])


def test_seed_summary_small_samples():
    assert stats.seed_summary([0.65]) == {"mean": 0.65, "std": None, "ci95": None}
    assert stats.seed_summary([]) == {"mean": None, "std": None, "ci95": None}


def test_majority_vote_and_ties():
    runs = [[1, 1, 0, 0], [1, 0, 0, 1], [0, 1, 0, 1]]
    assert stats.majority_correct(runs).tolist() == [True, True, False, True]
    even = [[1, 1, 0], [0, 1, 0]]  # example 0 is a tie
    assert stats.majority_correct(even).tolist() == [False, True, False]
    assert stats.majority_correct(even, tie_break=[True, False, True]).tolist() == [
        True, True, False]


def test_paired_bootstrap():
    a = np.array([True] * 30 + [False] * 10)
    same = stats.paired_bootstrap(a, a, n_resamples=2000)
    assert same["difference"] == 0 and same["p_value"] == 1.0 and same["ci95"] == [0.0, 0.0]
    better = stats.paired_bootstrap(np.ones(40, bool), np.zeros(40, bool), n_resamples=2000)
    assert better["difference"] == 1.0 and better["p_value"] == 0.0
    mixed = stats.paired_bootstrap(a, np.roll(a, 5), n_resamples=2000, seed=1)
    assert mixed["ci95"][0] <= mixed["difference"] <= mixed["ci95"][1]
    assert stats.paired_bootstrap(a, np.roll(a, 5), n_resamples=2000, seed=1) == mixed


def test_paired_t_over_seeds():
    a, b = [0.70, 0.72, 0.75], [0.60, 0.66, 0.61]
    out = stats.paired_t(a, b)
    expected = sps.ttest_rel(a, b)
    assert out["statistic"] == pytest.approx(expected.statistic)
    assert out["p_value"] == pytest.approx(expected.pvalue)
    assert out["difference"] == pytest.approx(np.mean(np.subtract(a, b)))
    assert stats.paired_t([0.7], [0.6]) is None
    assert stats.paired_t([0.7, 0.8], [0.6, 0.7]) is None  # constant difference: no spread
