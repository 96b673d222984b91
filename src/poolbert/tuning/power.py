"""The primary test between two heads, its minimum detectable effect, and study planning.

Two sources of noise move a head's dev score: which examples the dev set holds, and which seed
trained the model. With per-example pseudo-values phi[s, i] of S runs (pseudo.py; for accuracy
phi is 0/1 correctness), the difference D of the heads' seed-mean metric has variance

    Var(D) = Var_i(p_A(i) - p_B(i)) / N + sigma2_A / S_A + sigma2_B / S_B

where p_h(i) is head h's expected pseudo-value on example i over seeds and sigma2_h the variance
of one run's score over seeds (dev fixed). Both parts are estimated without bias: sigma2_h by the
runs' sample variance s2_h; the first by the per-example variance of the seed-averaged
difference d_i less the seeds' own flips on each example, which it also holds:

    V = max(0, var_i(d_i) - v_A / S_A - v_B / S_B) / N + s2_A / S_A + s2_B / S_B

(v_h: the mean over examples of head h's per-example variance over its runs). The statistic
D / sqrt(V) is referred to Student's t with Welch-Satterthwaite degrees of freedom (N - 1 for
the example part, S_h - 1 for each seed part): with 3 to 5 seeds the seed part is known only
roughly, and a resampling of seeds would under-state it (bench/validity.py measures both).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize, special

MAX_DF = 1e6  # beyond this Student's t is the normal distribution


@dataclass(frozen=True)
class SeedNoise:
    """A head's seed noise from its runs' pseudo-values (S, N).

    seed_var: sample variance over runs of the run means (ddof 1), sigma2 of the module
    docstring; flip_var: the mean over examples of the per-example variance over runs; df:
    degrees of freedom of seed_var (runs - 1; pooled when borrowed); source: "own",
    "borrowed" (a head with one run takes the others' pooled values) or "none"."""

    runs: int
    seed_var: float
    flip_var: float
    df: float
    source: str = "own"


def seed_noise(phi: np.ndarray) -> SeedNoise:
    """SeedNoise of one head's (S, N) pseudo-values; with one run nothing is known yet."""
    runs = phi.shape[0]
    if runs < 2:
        return SeedNoise(runs, 0.0, 0.0, 0.0, "none")
    return SeedNoise(runs, float(phi.mean(axis=1).var(ddof=1)),
                     float(phi.var(axis=0, ddof=1).mean()), runs - 1.0)


def borrowed(noises: Sequence[SeedNoise], runs: int) -> SeedNoise:
    """For a head with `runs` runs, too few to measure its own: the seed and flip variances
    pooled (weighted by degrees of freedom) over the heads that measured theirs; none without
    any."""
    own = [x for x in noises if x.source == "own"]
    df = sum(x.df for x in own)
    if df == 0:
        return SeedNoise(runs, 0.0, 0.0, 0.0, "none")
    seed_var = sum(x.df * x.seed_var for x in own) / df
    flip_var = sum(x.df * x.flip_var for x in own) / df
    return SeedNoise(runs, seed_var, flip_var, df, "borrowed")


def satterthwaite(parts: Sequence[tuple[float, float]]) -> tuple[float, float]:
    """Sum of variance components (value, degrees of freedom) and its Welch-Satterthwaite
    degrees of freedom (at least 1; MAX_DF when every component is exact)."""
    var = float(sum(v for v, _ in parts))
    denom = sum(v * v / df for v, df in parts if v > 0 and df > 0)
    df = var * var / denom if denom > 0 else MAX_DF
    return max(var, 0.0), float(min(max(df, 1.0), MAX_DF))


def two_level_parts(phi_a: np.ndarray, phi_b: np.ndarray, noise_a: SeedNoise,
                    noise_b: SeedNoise) -> tuple[list[tuple[float, float]], float]:
    """The variance components of D (module docstring) and the per-example variance of the
    heads' difference without the seeds' flips, Var_i(p_A - p_B), what `plan` calls the
    example variance."""
    d = phi_a.mean(axis=0) - phi_b.mean(axis=0)
    n = len(d)
    flips = sum(x.flip_var / x.runs for x in (noise_a, noise_b) if x.source != "none")
    example = max(0.0, (float(d.var(ddof=1)) if n > 1 else 0.0) - flips)
    parts = [(example / n, n - 1.0)]
    parts += [(x.seed_var / x.runs, x.df) for x in (noise_a, noise_b) if x.source != "none"]
    return parts, example


def t_test(difference: float, var: float, df: float, alpha: float,
           alternative: str = "two-sided") -> dict:
    """Student's t of `difference` with standard error sqrt(var): statistic, p-value
    ("two-sided" or "greater": difference > 0) and the two-sided (1 - alpha) interval."""
    se = math.sqrt(var)
    if se == 0:
        p = 1.0 if difference == 0 or (alternative == "greater" and difference < 0) else 0.0
        stat = 0.0 if difference == 0 else math.copysign(math.inf, difference)
        return {"statistic": stat, "p_value": p, "se": 0.0, "df": df,
                "ci95": [difference, difference]}
    stat = difference / se
    # scipy.special's Student t (stdtr, stdtrit) and noncentral t (nctdtr) functions: the
    # same numbers as scipy.stats.t / nct, without their argument checks (the bench calls
    # this some 10^5 times)
    p = 2 * special.stdtr(df, -abs(stat)) if alternative == "two-sided" else \
        special.stdtr(df, -stat)
    half = float(special.stdtrit(df, 1 - alpha / 2)) * se
    return {"statistic": stat, "p_value": float(min(1.0, p)), "se": se, "df": df,
            "ci95": [difference - half, difference + half]}


def power_at(effect: float, se: float, df: float, alpha: float, sides: int = 2) -> float:
    """Probability that the t-test at level alpha rejects when the true difference is
    `effect` (noncentral t with noncentrality effect / se)."""
    crit = float(special.stdtrit(df, 1 - alpha / sides))
    ncp = effect / se
    reject = 1.0 - float(special.nctdtr(df, ncp, crit))
    if sides == 1:
        return reject
    wrong_side = float(special.nctdtr(df, abs(ncp), -crit))  # NaN far in the tail: 0
    return reject + (0.0 if math.isnan(wrong_side) else wrong_side)


def min_detectable_effect(se: float, df: float, alpha: float, power: float = 0.8,
                          sides: int = 2) -> float:
    """The smallest true difference the t-test at level alpha detects with probability
    `power`, in the metric's units."""
    if se <= 0:
        return 0.0
    hi = float(special.stdtrit(df, 1 - alpha / sides) + special.stdtrit(df, power)) + 10.0
    x = optimize.brentq(lambda k: power_at(k * se, se, df, alpha, sides) - power, 0.0, hi)
    return float(x) * se


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True)
class Plan:
    """`plan`'s answer: the MDE of the design asked about, and the seeds (at its dev size) and
    dev examples (at its seeds) that bring the MDE down to the effect; None: not reachable."""

    effect: float
    mde: float
    seeds_needed: int | None
    n_eval_needed: int | None
    example_var: float
    alpha_per_pair: float


def planned_mde(n_eval: int, seeds: int, example_var: float, seed_var: float, alpha: float,
                power: float = 0.8) -> float:
    """MDE of a comparison of two heads with `seeds` runs each on `n_eval` dev examples, per-
    example variance of their difference `example_var` and per-run variance `seed_var`."""
    if seeds < 2 or n_eval < 2:
        raise ValueError("planning needs at least 2 seeds and 2 dev examples")
    var, df = satterthwaite([(example_var / n_eval, n_eval - 1.0),
                             (seed_var / seeds, seeds - 1.0), (seed_var / seeds, seeds - 1.0)])
    return min_detectable_effect(math.sqrt(var), df, alpha, power)


def example_variance(level: float, correlation: float) -> float:
    """Per-example variance of two heads' correctness difference at accuracy `level` when their
    per-example correctness has this correlation: 2 p (1 - p) (1 - rho)."""
    return 2 * level * (1 - level) * (1 - correlation)


def plan(effect: float, seed_std: float, n_eval: int, seeds: int, example_var: float,
         n_pairs: int = 3, alpha: float = 0.05, power: float = 0.8, max_seeds: int = 1000,
         max_eval: int = 10_000_000) -> Plan:
    """Seeds and dev examples needed to detect a true difference `effect` (metric units) with
    probability `power` at the Holm family's strictest level alpha / n_pairs. The seed
    variance is taken as the whole per-run variance (its flip part counted twice: on the
    safe side)."""
    level = alpha / max(n_pairs, 1)
    seed_var = seed_std ** 2

    def mde(n: int, s: int) -> float:
        return planned_mde(n, s, example_var, seed_var, level, power)

    seeds_needed = _smallest(lambda s: mde(n_eval, s) <= effect, 2, max_seeds)
    n_needed = _smallest(lambda n: mde(n, seeds) <= effect, 2, max_eval)
    return Plan(effect, mde(n_eval, seeds), seeds_needed, n_needed, example_var, level)


def _smallest(ok: Callable[[int], bool], lo: int, hi: int) -> int | None:
    """The smallest integer in [lo, hi] where `ok` holds; None if none. The MDE need not fall
    monotonically (more dev examples leave the seeds' few degrees of freedom to dominate), so
    a geometric scan finds the first point that holds, then bisection the step before it."""
    grid = sorted({*np.unique(np.geomspace(lo, hi, 200).astype(int)), lo, hi})
    before = lo
    for point in grid:
        if ok(int(point)):
            lo, hi = before, int(point)
            break
        before = int(point) + 1
    else:
        return None
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if ok(mid) else (mid + 1, hi)
    return lo
