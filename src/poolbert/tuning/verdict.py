"""A study's verdict: each head against the trivial baseline, every pair of heads by one primary
test corrected for multiplicity, the secondary tests, minimum detectable effects, and a short
plain text. Pure: arrays in, a Verdict out; summary.py writes it.

- Primary test (power.py): a t-test of the difference of the heads' seed-mean metric whose
  variance counts both the dev examples and the seeds. Its p-values are adjusted with Holm's
  step-down method across all pairs of the study; "significant" reads the adjusted value.
- Baseline (baseline.py): each head against the trivial predictor by the same test, one-sided
  (does the head do better?), Holm-adjusted across heads as a family of its own.
- Minimum detectable effect: the true difference the primary test detects with 80% power at
  the family's strictest Holm level alpha / (number of pairs), from the observed variance.
- Secondary tests, each Holm-adjusted within its own test across pairs: classification exact
  McNemar and a paired bootstrap on the seeds' majority vote; regression Wilcoxon on squared
  errors and a bootstrap of the Pearson difference on the seeds' mean prediction; and a paired
  t-test over seeds (seed k of A with seed k of B).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import numpy as np

from ..metrics import LABELS, PERCENT, higher_is_better
from . import stats
from .evidence import BaselineEvidence, HeadEvidence, keep_labelled, metric_value
from .power import (
    SeedNoise,
    borrowed,
    min_detectable_effect,
    satterthwaite,
    seed_noise,
    t_test,
    two_level_parts,
)
from .pseudo import pseudo_values, run_pseudo_values

PRIMARY = "two_level_t"
POWER = 0.8


@dataclass
class Verdict:
    """compare_heads' answer; `to_dict()` is what summary.json stores."""

    text: str
    primary_test: str
    metric: str
    alpha: float
    baseline: dict
    heads: dict[str, dict]
    comparisons: list[dict] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class _Head:
    name: str
    phi: np.ndarray  # (S, N) pseudo-values
    values: np.ndarray  # (S,) the metric of each run
    noise: SeedNoise


def holm(p_values: Sequence[float]) -> list[float]:
    """Holm's step-down adjusted p-values: the i-th smallest times (m - i + 1), made
    non-decreasing in that order, at most 1. Reject where adjusted < alpha."""
    p = np.asarray(p_values, dtype=float)
    m = len(p)
    order = np.argsort(p, kind="stable")
    adjusted = np.minimum(1.0, np.maximum.accumulate(p[order] * (m - np.arange(m))))
    out = np.empty(m)
    out[order] = adjusted
    return out.tolist()


def compare_heads(evidence: dict[str, HeadEvidence], baseline: BaselineEvidence,
                  problem_type: str, metric: str, labels: np.ndarray, alpha: float = 0.05,
                  seed: int = 0, num_labels: int | None = None,
                  n_resamples: int | None = None) -> Verdict:
    """The verdict over heads run on the same dev examples (module docstring). Rows without a
    label are dropped first. `seed` seeds the secondary bootstraps; `n_resamples` (default:
    stats.py's) is their size."""
    labels, evidence, baseline = keep_labelled(np.asarray(labels), evidence, baseline)
    k = num_labels or _num_labels(labels, evidence, problem_type)
    heads = _prepare(evidence, labels, problem_type, metric, k)
    base_phi = pseudo_values(labels, baseline.preds, problem_type, metric, k, baseline.probs)
    base = _Head("baseline", base_phi[None], np.array([baseline.value]),
                 SeedNoise(1, 0.0, 0.0, 0.0, "exact"))
    per_head = against_baseline(heads, base, metric, alpha)
    rows = primary_rows(heads, metric, alpha)
    rows += secondary_rows(evidence, heads, labels, problem_type, alpha, seed, n_resamples)
    _attach_discordant(rows)
    summary = {"name": baseline.name, "value": baseline.value}
    return Verdict(verdict_text(metric, summary, per_head, rows), PRIMARY, metric, alpha,
                   summary, per_head, rows)


def _num_labels(labels: np.ndarray, evidence: dict[str, HeadEvidence], problem_type: str) -> int:
    if problem_type == "multi_label":
        return int(labels.shape[1])
    if problem_type == "regression":
        return 1
    top = max([int(labels.max(initial=0))] + [int(np.max(e.preds, initial=0))
                                               for e in evidence.values()])
    widths = [e.probs.shape[-1] for e in evidence.values() if e.probs is not None]
    return max([top + 1, *widths])


def _prepare(evidence: dict[str, HeadEvidence], labels: np.ndarray, problem_type: str,
             metric: str, k: int) -> list[_Head]:
    """Pseudo-values, run values and seed noise per head; a head with one run borrows the
    others' shared seed variance."""
    heads = []
    for name, e in evidence.items():
        preds = np.asarray(e.preds)
        phi = run_pseudo_values(labels, preds, problem_type, metric, k, e.probs)
        values = (np.asarray(e.values, dtype=float) if e.values is not None else np.array(
            [metric_value(labels, preds[s], problem_type, metric, k,
                          None if e.probs is None else e.probs[s]) for s in range(len(preds))]))
        noise = seed_noise(phi) if e.seeded else SeedNoise(len(phi), 0, 0, 0, "none")
        heads.append(_Head(name, phi, values, noise))
    noises = [h.noise for h in heads]
    return [h if h.noise.source == "own" else
            _Head(h.name, h.phi, h.values, borrowed(noises, h.noise.runs)) for h in heads]


def against_baseline(heads: list[_Head], base: _Head, metric: str,
                     alpha: float) -> dict[str, dict]:
    """Per head: does it beat the baseline? One-sided primary test, Holm across heads."""
    sign = 1.0 if higher_is_better(metric) else -1.0
    out: dict[str, dict] = {}
    for h in heads:
        raw = float(h.values.mean() - base.values[0])
        var, df = satterthwaite(two_level_parts(h.phi, base.phi, h.noise, base.noise)[0])
        test = t_test(sign * raw, var, df, alpha, "greater")
        lo, hi = (sign * x for x in test["ci95"])
        out[h.name] = {"runs": h.noise.runs, "mean": float(h.values.mean()),
                       "seed_std": float(h.values.std(ddof=1)) if len(h.values) > 1 else None,
                       "seed_noise": h.noise.source, "baseline_difference": raw,
                       "baseline_ci95": sorted([lo, hi]), "baseline_statistic": test["statistic"],
                       "baseline_p_value": test["p_value"]}
    names = list(out)
    for name, p in zip(names, holm([out[n]["baseline_p_value"] for n in names]), strict=True):
        out[name].update(baseline_p_adjusted=p, beats_baseline=bool(p < alpha))
    return out


def primary_rows(heads: list[_Head], metric: str, alpha: float) -> list[dict]:
    """Every pair by the primary test; Holm across the pairs; MDE at alpha / pairs."""
    pairs = list(itertools.combinations(heads, 2))
    rows = []
    for a, b in pairs:
        parts, example_var = two_level_parts(a.phi, b.phi, a.noise, b.noise)
        var, df = satterthwaite(parts)
        diff = float(a.values.mean() - b.values.mean())
        test = t_test(diff, var, df, alpha)
        level = alpha / len(pairs)
        rows.append({"a": a.name, "b": b.name, "test": PRIMARY, "primary": True, **test,
                     "difference": diff, "alpha": alpha,
                     "min_detectable_effect": min_detectable_effect(test["se"], df, level, POWER),
                     "mde_alpha": level, "mde_power": POWER,
                     "example_sd": float(np.sqrt(example_var)),
                     "basis": _basis(a, b, metric)})
    for row, p in zip(rows, holm([r["p_value"] for r in rows]), strict=True):
        row.update(p_adjusted=p, significant=bool(p < alpha))
    return rows


def _basis(a: _Head, b: _Head, metric: str) -> str:
    def runs(h: _Head) -> str:
        noise = {"own": "", "borrowed": ", seed noise borrowed from the other heads",
                 "none": ", seed noise unknown (not counted)"}[h.noise.source]
        return f"{h.noise.runs} run(s) of {h.name}{noise}"

    return (f"{LABELS[metric]} of {runs(a)} vs {runs(b)} on {a.phi.shape[1]} dev examples; "
            "variance from examples and seeds, Welch-Satterthwaite degrees of freedom")


def secondary_rows(evidence: dict[str, HeadEvidence], heads: list[_Head], labels: np.ndarray,
                   problem_type: str, alpha: float, seed: int,
                   n_resamples: int | None) -> list[dict]:
    """The secondary tests of every pair, each Holm-adjusted within its own test."""
    reps = {h: _representative(e, labels, problem_type) for h, e in evidence.items()}
    values = {h.name: h.values for h in heads}
    extra = {} if n_resamples is None else {"n_resamples": n_resamples}
    rows: list[dict] = []
    for a, b in itertools.combinations(evidence, 2):
        (ra, basis_a), (rb, basis_b) = reps[a], reps[b]
        pair = {"a": a, "b": b, "alpha": alpha, "primary": False,
                "basis": basis_a if basis_a == basis_b else f"{a}: {basis_a}; {b}: {basis_b}"}
        if problem_type == "regression":
            errors = stats.paired_squared_errors(ra, rb, labels)
            boot = stats.bootstrap_correlation(ra, rb, labels, seed=seed, **extra)
            rows += [{**pair, "test": "wilcoxon_squared_errors", **errors},
                     {**pair, "test": "bootstrap_pearson_difference", **_boot(boot)}]
        else:
            right_wrong, wrong_right = stats.discordant(ra, rb)
            pair.update(a_correct_b_wrong=right_wrong, b_correct_a_wrong=wrong_right)
            boot = stats.paired_bootstrap(ra, rb, seed=seed, **extra)
            rows += [{**pair, "test": "mcnemar", "statistic": min(right_wrong, wrong_right),
                      "p_value": stats.mcnemar_exact(right_wrong, wrong_right)},
                     {**pair, "test": "paired_bootstrap", **_boot(boot)}]
        if evidence[a].seeded and evidence[b].seeded:
            t = stats.paired_t(values[a].tolist(), values[b].tolist())
            if t is not None:
                rows.append({"a": a, "b": b, "test": "paired_t_seeds", "alpha": alpha,
                             "primary": False, **t,
                             "basis": f"the metric of seed run k of {a} vs seed run k of {b}"})
    for test in dict.fromkeys(r["test"] for r in rows):
        family = [r for r in rows if r["test"] == test]
        for row, p in zip(family, holm([r["p_value"] for r in family]), strict=True):
            row.update(p_adjusted=p, significant=bool(p < alpha))
    return rows


def _boot(boot: dict) -> dict:
    return {"statistic": boot["difference"], **boot}


def _representative(e: HeadEvidence, labels: np.ndarray,
                    problem_type: str) -> tuple[np.ndarray, str]:
    """What stands for a head in the secondary tests: the seed runs' mean prediction
    (regression) or per-example correctness by majority vote, ties going to the seed-averaged
    probabilities (classification); a head with one run is that run."""
    preds = np.asarray(e.preds)
    runs = len(preds)
    if not e.seeded:
        basis = "the best trial's model"
    else:
        vote = "mean" if problem_type == "regression" else "majority vote"
        basis = f"{vote} over {runs} seed runs"
    if problem_type == "regression":
        return preds.astype(float).mean(axis=0), basis
    right = preds == labels
    correct = right.all(axis=2) if problem_type == "multi_label" else right
    tie = None
    if e.probs is not None:
        mean = np.asarray(e.probs).mean(axis=0)
        tie = (((mean >= 0.5) == (labels > 0)).all(1) if problem_type == "multi_label"
               else mean.argmax(axis=1) == labels)
    return stats.majority_correct(list(correct), tie_break=tie), basis


def _attach_discordant(rows: list[dict]) -> None:
    """The primary row of a pair shows the majority vote's discordant counts too."""
    counts = {(r["a"], r["b"]): r for r in rows if r["test"] == "mcnemar"}
    for row in rows:
        found = counts.get((row["a"], row["b"]))
        if row["test"] == PRIMARY and found:
            row.update(a_correct_b_wrong=found["a_correct_b_wrong"],
                       b_correct_a_wrong=found["b_correct_a_wrong"])


# ----------------------------------------------------------------------------- the text


def amount(x: float, metric: str) -> str:
    """A difference in the metric's units: points for percentages, else 3 decimals."""
    return f"{100 * x:.1f} points" if metric in PERCENT else f"{x:.3f}"


def level(x: float, metric: str) -> str:
    """A metric's value: a percentage, or 3 decimals."""
    return f"{100 * x:.1f}%" if metric in PERCENT else f"{x:.3f}"


def _bare(x: float, metric: str) -> str:
    return f"{100 * x:.1f}" if metric in PERCENT else f"{x:.3f}"


def verdict_text(metric: str, baseline: dict, heads: dict[str, dict], rows: list[dict]) -> str:
    """A few plain sentences: the baseline first, then each pair by the primary test."""
    shown = f"the baseline, {baseline['name']} ({level(baseline['value'], metric)} " \
            f"{LABELS[metric]})"
    losers = [h for h, v in heads.items() if not v["beats_baseline"]]
    if heads and len(losers) == len(heads):
        out = [f"No head beats {shown}; the differences between heads are not interpreted."]
    else:
        out = [f"Every head beats {shown}." if not losers else
               f"{', '.join(losers)} {'does' if len(losers) == 1 else 'do'} not beat {shown}."]
        out += [_pair_sentence(r, metric) for r in rows if r["test"] == PRIMARY]
    unmeasured = [h for h, v in heads.items() if v.get("seed_noise") == "none"]
    if unmeasured:
        out.append(f"Seed noise was not measured ({', '.join(unmeasured)}: one run, no other "
                   "head's seed runs to borrow from); the tests count the dev examples only and "
                   "are optimistic.")
    return " ".join(out)


def _pair_sentence(row: dict, metric: str) -> str:
    if not row["significant"]:
        return (f"{row['a']} vs {row['b']}: not distinguishable (minimum detectable effect "
                f"{amount(row['min_detectable_effect'], metric)}).")
    s = 1.0 if higher_is_better(metric) else -1.0  # gains in the better direction
    gain, (lo, hi) = s * row["difference"], sorted(s * x for x in row["ci95"])
    win, lose = row["a"], row["b"]
    if gain < 0:
        win, lose, gain, lo, hi = lose, win, -gain, -hi, -lo
    return (f"{win} {'>' if s > 0 else '<'} {lose} by {amount(gain, metric)} "
            f"[{_bare(lo, metric)}, {_bare(hi, metric)}], Holm-adjusted p = "
            f"{row['p_adjusted']:.3g}.")
