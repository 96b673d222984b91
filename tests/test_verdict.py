"""poolbert.tuning's verdict: baselines, pseudo-values, the primary test with Holm, the minimum
detectable effect and the verdict text, on inputs with known answers."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import stats as sps

from poolbert.tuning.baseline import baseline
from poolbert.tuning.evidence import BaselineEvidence, HeadEvidence, metric_value
from poolbert.tuning.power import min_detectable_effect, power_at
from poolbert.tuning.pseudo import pseudo_values
from poolbert.tuning.verdict import PRIMARY, compare_heads, holm


def study(rng: np.random.Generator, accs: list[float], seeds: int = 5, n: int = 277,
          seed_shift: float = 0.0) -> tuple[dict[str, HeadEvidence], np.ndarray]:
    """Heads with these true accuracies on n binary examples; each seed run shifts all of a
    head's examples together by `seed_shift` (probit units) on top of per-example flips."""
    y = (rng.random(n) >= 146 / 277).astype(np.int64)
    difficulty = rng.standard_normal(n)
    heads = {}
    for i, acc in enumerate(accs):
        shift = seed_shift * rng.standard_normal((seeds, 1))
        total = math.sqrt(1 + 0.36 + 0.25 + seed_shift ** 2)
        score = (sps.norm.ppf(acc) * total + difficulty + 0.6 * rng.standard_normal(n)
                 + shift + 0.5 * rng.standard_normal((seeds, n)))
        preds = np.where(score > 0, y, 1 - y)
        heads[f"h{i}"] = HeadEvidence(preds)
    return heads, y


def verdict_of(heads: dict[str, HeadEvidence], y: np.ndarray, metric: str = "accuracy"):
    base = baseline(y, "single_label", metric, 2)
    return compare_heads(heads, base, "single_label", metric, y, n_resamples=200)


# ----------------------------------------------------------------------------- Holm


def holm_reference(p: list[float]) -> list[float]:
    """Holm by its definition: adjusted p_(i) = max over j <= i of min(1, (m - j + 1) p_(j))."""
    m = len(p)
    order = sorted(range(m), key=lambda i: p[i])
    out = [0.0] * m
    for rank, i in enumerate(order):
        out[i] = max(min(1.0, (m - j) * p[order[j]]) for j in range(rank + 1))
    return out


def test_holm_hand_example_and_reference():
    assert holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])
    assert holm([0.5]) == [0.5]
    assert holm([0.6, 0.9]) == pytest.approx([1.0, 1.0])
    rng = np.random.default_rng(0)
    for _ in range(200):
        p = rng.random(rng.integers(1, 8)) ** 3
        assert holm(p.tolist()) == pytest.approx(holm_reference(p.tolist()))


# ----------------------------------------------------------------------------- baselines


def test_baseline_single_label():
    dev = np.array([0] * 146 + [1] * 131)
    acc = baseline(dev, "single_label", "accuracy", 2, ["entailment", "not"])
    assert acc.value == pytest.approx(146 / 277) and "'entailment'" in acc.name
    assert (acc.preds == 0).all()
    # F1 of the positive class: "always positive" is the best constant (always 0 has F1 0)
    f1 = baseline(dev, "single_label", "f1", 2)
    assert (f1.preds == 1).all()
    assert f1.value == pytest.approx(2 * 131 / (277 + 131))
    assert baseline(dev, "single_label", "mcc", 2).value == 0.0
    macro = baseline(dev, "single_label", "macro_f1", 2)
    assert macro.value == pytest.approx((2 * 146 / (277 + 146)) / 2)
    loss = baseline(dev, "single_label", "loss", 2)
    prior = np.array([146, 131]) / 277
    assert loss.value == pytest.approx(-np.log(prior[dev]).mean())


def test_baseline_is_the_best_constant_on_dev_not_trains_majority():
    # A training subset whose majority is dev's minority (RTE, 200 examples): a constant
    # chosen on train scores below chance on dev; the baseline is dev's best constant, so a
    # head that always says 'entailment' does not beat it.
    dev = np.array([0] * 146 + [1] * 131)
    base = baseline(dev, "single_label", "accuracy", 2, ["entailment", "not_entailment"],
                    train_labels=np.repeat([0, 1], [95, 105]))
    assert base.value == pytest.approx(146 / 277) and (base.preds == 0).all()
    always = HeadEvidence(np.zeros((3, 277), dtype=np.int64))
    verdict = compare_heads({"cls": always}, base, "single_label", "accuracy", dev)
    assert verdict.heads["cls"]["beats_baseline"] is False


def test_baseline_multi_label_and_regression():
    train = np.array([[1, 0, 0]] * 5 + [[0, 1, 0]] * 3 + [[0, 0, 0]] * 2, dtype=float)
    dev = np.array([[1, 0, 0], [0, 1, 0], [1, 0, 0], [-1, -1, -1]], dtype=float)
    out = baseline(dev, "multi_label", "micro_f1", 3, ["a", "b", "c"], train_labels=train)
    assert "(a)" in out.name and out.preds.tolist() == [[1, 0, 0]] * 3  # unlabelled row left out
    assert out.value == pytest.approx(2 * 2 / (3 + 3))
    # a set only train holds is a candidate too: the best constant for b-heavy dev
    dev_b = np.array([[1, 1, 0], [0, 1, 0], [1, 1, 0]], dtype=float)
    both = baseline(dev_b, "multi_label", "micro_f1", 3, ["a", "b", "c"],
                    train_labels=np.array([[1, 1, 0]], dtype=float))
    assert both.preds.tolist() == [[1, 1, 0]] * 3
    targets = np.array([0.0, 4.0, np.nan])
    reg = baseline(targets, "regression", "loss", 1)
    assert reg.value == pytest.approx(((0 - 2) ** 2 + (4 - 2) ** 2) / 2)
    assert baseline(targets, "regression", "pearson", 1).value == 0.0


# ----------------------------------------------------------------------------- pseudo-values


def jackknife(labels, preds, problem_type, metric, k):
    n = len(labels)
    theta = metric_value(labels, preds, problem_type, metric, k)
    keep = np.ones(n, bool)
    out = []
    for i in range(n):
        keep[i] = False
        out.append(n * theta - (n - 1) * metric_value(labels[keep], preds[keep], problem_type,
                                                      metric, k))
        keep[i] = True
    return np.array(out)


@pytest.mark.parametrize("metric", ["accuracy", "macro_f1", "mcc", "f1"])
def test_pseudo_values_match_the_jackknife(metric):
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3 if metric != "f1" else 2, 60)
    p = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3 if metric != "f1" else 2, 60))
    k = 3 if metric != "f1" else 2
    assert pseudo_values(y, p, "single_label", metric, k) == pytest.approx(
        jackknife(y, p, "single_label", metric, k))


def test_pseudo_values_regression_and_multi_label():
    rng = np.random.default_rng(2)
    y = rng.standard_normal(40)
    p = y + rng.standard_normal(40)
    assert pseudo_values(y, p, "regression", "pearson", 1) == pytest.approx(
        jackknife(y, p, "regression", "pearson", 1))
    p[:6] = p[6]  # ties: average ranks
    assert pseudo_values(y, p, "regression", "spearman", 1) == pytest.approx(
        jackknife(y, p, "regression", "spearman", 1))
    assert (pseudo_values(y, np.zeros(40), "regression", "pearson", 1) == 0).all()
    ym = (rng.random((30, 4)) < 0.4).astype(float)
    pm = np.where(rng.random((30, 4)) < 0.8, ym, 1 - ym)
    assert pseudo_values(ym, pm, "multi_label", "macro_f1", 4) == pytest.approx(
        jackknife(ym, pm, "multi_label", "macro_f1", 4))


# ----------------------------------------------------------------------------- the primary test


def test_identical_heads_are_not_significant():
    heads, y = study(np.random.default_rng(3), [0.65])
    same = {"a": heads["h0"], "b": heads["h0"], "c": heads["h0"]}
    out = verdict_of(same, y)
    primary = [r for r in out.comparisons if r["test"] == PRIMARY]
    assert len(primary) == 3 and all(r["p_value"] == 1.0 for r in primary)
    assert not any(r["significant"] for r in out.comparisons)


def test_null_studies_with_shared_seed_noise_stay_near_alpha():
    """Seeds that move all examples together: a test over examples alone is fooled often
    (checked below); the primary test with Holm declares a pair in at most ~alpha of studies."""
    rng = np.random.default_rng(4)
    hits, naive = 0, 0
    for _ in range(100):
        heads, y = study(rng, [0.62, 0.62, 0.62], seeds=3, seed_shift=0.25)
        out = verdict_of(heads, y)
        hits += any(r["significant"] for r in out.comparisons if r["test"] == PRIMARY)
        a, b = ((heads[h].preds == y).mean(axis=0) for h in ("h0", "h1"))
        naive += sps.ttest_rel(a, b).pvalue < 0.05
    assert hits <= 10  # 100 studies at alpha 0.05: 5 expected; 10 or more has p < 0.03
    assert naive >= 20  # the examples-only test rejects far more often than 5%


def test_large_difference_is_detected_and_said_first():
    heads, y = study(np.random.default_rng(5), [0.82, 0.67, 0.68])
    out = verdict_of(heads, y)
    rows = {(r["a"], r["b"]): r for r in out.comparisons if r["test"] == PRIMARY}
    assert rows[("h0", "h1")]["significant"] and rows[("h0", "h2")]["significant"]
    assert rows[("h0", "h1")]["difference"] > 0.1
    lo, hi = rows[("h0", "h1")]["ci95"]
    assert lo < rows[("h0", "h1")]["difference"] < hi
    assert all(v["beats_baseline"] for v in out.heads.values())
    assert out.text.startswith("Every head beats the baseline")
    assert "h0 > h1 by" in out.text and "Holm-adjusted p" in out.text


def test_significance_reads_the_holm_adjusted_value():
    heads, y = study(np.random.default_rng(6), [0.66, 0.62, 0.60])
    out = verdict_of(heads, y)
    for test in {r["test"] for r in out.comparisons}:
        rows = [r for r in out.comparisons if r["test"] == test]
        assert [r["p_adjusted"] for r in rows] == pytest.approx(holm([r["p_value"] for r in rows]))
        assert all(r["significant"] == (r["p_adjusted"] < 0.05) for r in rows)
    assert [r["primary"] for r in out.comparisons].count(True) == 3


def test_comparison_rows_keep_the_summary_keys():
    heads, y = study(np.random.default_rng(7), [0.65, 0.63])
    out = verdict_of(heads, y)
    by_test = {r["test"]: r for r in out.comparisons}
    assert set(by_test) == {PRIMARY, "mcnemar", "paired_bootstrap", "paired_t_seeds"}
    for r in out.comparisons:
        assert {"a", "b", "test", "statistic", "p_value", "p_adjusted", "significant", "alpha",
                "primary"} <= set(r)
    assert {"a_correct_b_wrong", "b_correct_a_wrong"} <= set(by_test["mcnemar"])
    assert {"difference", "ci95", "n_resamples"} <= set(by_test["paired_bootstrap"])
    assert {"difference", "ci95", "min_detectable_effect", "basis"} <= set(by_test[PRIMARY])


def test_heads_at_the_majority_class_do_not_beat_it():
    heads, y = study(np.random.default_rng(8), [146 / 277, 146 / 277, 0.5])
    out = verdict_of(heads, y)
    assert not any(v["beats_baseline"] for v in out.heads.values())
    assert out.text.startswith("No head beats the baseline, always '0', the best constant on dev")
    assert f"{100 * np.mean(y == 0):.1f}% accuracy" in out.text


def test_one_run_heads_borrow_seed_noise_and_unlabelled_rows_are_dropped():
    heads, y = study(np.random.default_rng(9), [0.7, 0.6])
    single = {"a": heads["h0"], "b": HeadEvidence(heads["h1"].preds[:1], seeded=False)}
    base = baseline(y, "single_label", "accuracy", 2)
    out = compare_heads(single, base, "single_label", "accuracy", y, n_resamples=200)
    assert out.heads["b"]["seed_noise"] == "borrowed" and out.heads["a"]["seed_noise"] == "own"
    assert "borrowed" in out.comparisons[0]["basis"]
    assert "Seed noise was not measured" not in out.text
    alone = {h: HeadEvidence(e.preds[:1], seeded=False) for h, e in heads.items()}
    out = compare_heads(alone, base, "single_label", "accuracy", y, n_resamples=200)
    assert out.heads["h0"]["seed_noise"] == "none"
    assert "Seed noise was not measured (h0, h1" in out.text
    hidden = y.copy()
    hidden[:50] = -1  # unlabelled rows count for nothing
    cut = compare_heads(heads, BaselineEvidence(base.name, base.value, base.preds),
                        "single_label", "accuracy", hidden, n_resamples=200)
    kept = {h: HeadEvidence(e.preds[:, 50:]) for h, e in heads.items()}
    same = compare_heads(kept, BaselineEvidence(base.name, base.value, base.preds[50:]),
                         "single_label", "accuracy", y[50:], n_resamples=200)
    assert cut.comparisons[0]["p_value"] == pytest.approx(same.comparisons[0]["p_value"])


def test_regression_and_loss_direction():
    rng = np.random.default_rng(10)
    y = rng.standard_normal(200)
    good = y + 0.5 * rng.standard_normal((3, 200))
    bad = y + 2.0 * rng.standard_normal((3, 200))
    heads = {"good": HeadEvidence(good), "bad": HeadEvidence(bad)}
    for metric in ("pearson", "loss"):
        base = baseline(y, "regression", metric, 1)
        out = compare_heads(heads, base, "regression", metric, y, n_resamples=200)
        assert out.heads["good"]["beats_baseline"]
        assert out.comparisons[0]["significant"]
        sign = ">" if metric == "pearson" else "<"
        assert f"good {sign} bad by" in out.text
    tests = {r["test"] for r in out.comparisons}
    assert {"wilcoxon_squared_errors", "bootstrap_pearson_difference"} <= tests


# ----------------------------------------------------------------------------- power


def test_mde_has_the_stated_power_and_shrinks_with_data():
    mde = min_detectable_effect(0.01, 20, 0.05 / 3)
    assert power_at(mde, 0.01, 20, 0.05 / 3) == pytest.approx(0.8, abs=1e-6)
    z = sps.norm.ppf(1 - 0.05 / 2) + sps.norm.ppf(0.8)  # large df: the normal formula
    assert min_detectable_effect(0.01, 1e6, 0.05) == pytest.approx(z * 0.01, rel=1e-3)
    assert min_detectable_effect(0.01, 4, 0.05) > min_detectable_effect(0.01, 40, 0.05)
    rng = np.random.default_rng(11)
    mdes = {}
    for seeds, n in ((3, 277), (10, 277), (3, 1000)):
        heads, y = study(rng, [0.62, 0.62], seeds=seeds, n=n, seed_shift=0.2)
        mdes[seeds, n] = verdict_of(heads, y).comparisons[0]["min_detectable_effect"]
    assert mdes[10, 277] < mdes[3, 277] and mdes[3, 1000] < mdes[3, 277]


def test_power_is_the_share_detected_in_simulation():
    """Monte Carlo of the t-test at its MDE: about 80% of draws reject."""
    rng = np.random.default_rng(12)
    se, df, alpha = 0.02, 8, 0.05
    mde = min_detectable_effect(se, df, alpha)
    t = (mde + se * rng.standard_normal(20000)) / (se * np.sqrt(rng.chisquare(df, 20000) / df))
    assert (np.abs(t) > sps.t.ppf(1 - alpha / 2, df)).mean() == pytest.approx(0.8, abs=0.015)


def test_pairs_are_every_combination():
    heads, y = study(np.random.default_rng(13), [0.6, 0.6, 0.6, 0.6])
    out = verdict_of(heads, y)
    pairs = [(r["a"], r["b"]) for r in out.comparisons if r["test"] == PRIMARY]
    assert pairs == list(itertools.combinations(heads, 2))
    assert all(r["mde_alpha"] == pytest.approx(0.05 / 6) for r in out.comparisons if r["primary"])


def test_multi_label_and_loss_studies():
    rng = np.random.default_rng(14)
    y = (rng.random((120, 4)) < 0.3).astype(float)
    runs = {h: np.where(rng.random((3, 120, 4)) < acc, y, 1 - y)
            for h, acc in (("good", 0.97), ("bad", 0.75))}
    heads = {h: HeadEvidence(p) for h, p in runs.items()}
    base = baseline(y, "multi_label", "micro_f1", 4)
    out = compare_heads(heads, base, "multi_label", "micro_f1", y, n_resamples=200)
    assert out.heads["good"]["beats_baseline"] and out.comparisons[0]["difference"] > 0
    assert out.comparisons[0]["significant"]
    # the loss of single-label runs reads their probabilities; lower is better
    labels = rng.integers(0, 2, 200)
    probs = {h: np.clip(np.where(labels[None, :, None] == [0, 1], p, 1 - p), 0.01, 0.99)
             for h, p in (("sharp", 0.9), ("vague", 0.45))}
    heads = {h: HeadEvidence(p.argmax(axis=2), probs=p) for h, p in probs.items()}
    heads = {h: HeadEvidence(np.repeat(e.preds, 3, 0), probs=np.repeat(e.probs, 3, 0))
             for h, e in heads.items()}
    loss_base = baseline(labels, "single_label", "loss", 2)
    out = compare_heads(heads, loss_base, "single_label", "loss", labels, n_resamples=200)
    assert out.heads["sharp"]["mean"] == pytest.approx(-np.log(0.9))
    assert out.heads["sharp"]["beats_baseline"] and not out.heads["vague"]["beats_baseline"]
    assert "sharp < vague by" in out.text
