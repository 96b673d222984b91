"""Racing heads (`--race`): which heads stop getting trials because their best score is
confidently below the leader's. A pure rule over the trial values seen so far; the worker loop
asks it after each finished trial and keeps a stopped head stopped.

The rule, per head h other than the leader L (the head with the best score so far):

    stop h  when  every head has >= min_trials finished trials  and
                  best_L - best_h > z * sqrt(sd_L^2 + sd_h^2) + sd_L * (e(k_L) - e(k_h))+

- sd: the noise of one trial's score as a measure of its settings: the selection set's
  sampling noise (n examples) and the training seed's, sqrt(sel^2 + seed_std^2). sel is the
  binomial sqrt(b (1 - b) / n) at the head's best b for accuracy and micro-F1, twice that
  variance for F1 and macro-F1 (fewer examples per class), (1 - b^2) / sqrt(n - 3) for a
  correlation (Pearson, Spearman, MCC). seed_std defaults to SEED_STD, the top of the seed-to-
  seed spread of fine-tuning on small sets such as RTE (1 to 3 points); give it when known. The
  loss needs `noise_sd` (no rule of thumb): without it no head stops.
- z: the one-sided normal quantile at (1 - confidence) / (number of challengers), a Bonferroni
  bound over the heads that could be stopped.
- e(k): the expected maximum of k standard normals. A best of k trials is optimistic by about
  sd * e(k); both bests are, so only the leader's extra optimism (more trials than h) is added.
- min_trials: no head is judged before every head has had this many trials (the sampler's
  random start-up trials: a head's search has not found its good region before).

bench/validity.py simulates races with known truth (trial quality spread, seed noise, failed
trials) and reports how often the truly best head was stopped and how many trials were saved.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import special

PROPORTIONS = ("accuracy", "micro_f1")
F1S = ("f1", "macro_f1")
CORRELATIONS = ("mcc", "pearson", "spearman")
SEED_STD = 0.03  # in the metric's units (accuracy 3 points, a correlation 0.03)
MIN_TRIALS = 10  # the TPE sampler's random start-up trials (worker.py: at most 10)
CONFIDENCE = 0.95


@dataclass(frozen=True)
class RaceDecision:
    """Which heads keep getting trials. gaps: per challenger, how far its best is behind the
    leader's (in the better direction); margins: how far it had to be to stop."""

    keep: list[str]
    stop: list[str]
    leader: str | None
    rule: str
    gaps: dict[str, float] = field(default_factory=dict)
    margins: dict[str, float] = field(default_factory=dict)


def expected_max(k: int) -> float:
    """E[max of k independent standard normals] (Blom's approximation, within 0.01 for k <=
    100; exact 0 for k = 1)."""
    if k <= 1:
        return 0.0
    return float(special.ndtri((k - 0.375) / (k + 0.25)))


def trial_noise(best: float, n_selection: int, metric: str, seed_std: float = SEED_STD,
                noise_sd: float | None = None) -> float | None:
    """The noise sd of one trial's score near `best` on n selection examples (module
    docstring); None where no rule of thumb applies and none was given."""
    if noise_sd is not None:
        return noise_sd
    if metric in PROPORTIONS or metric in F1S:
        b = min(max(best, 0.0), 1.0)
        var = max(b * (1 - b), 1.0 / n_selection) / n_selection  # never 0 at a perfect score
        return math.sqrt(var * (2.0 if metric in F1S else 1.0) + seed_std ** 2)
    if metric in CORRELATIONS:
        return math.hypot(max(1 - best * best, 0.05) / math.sqrt(max(n_selection - 3, 1)),
                          seed_std)
    return None


def race(values: Mapping[str, Sequence[float]], n_selection: int, metric: str,
         maximize: bool = True, min_trials: int = MIN_TRIALS, confidence: float = CONFIDENCE,
         seed_std: float = SEED_STD, noise_sd: float | None = None) -> RaceDecision:
    """The heads to keep and to stop, given each head's finished trials' values on the
    selection set (module docstring). Failed trials have no value and are left out."""
    sign = 1.0 if maximize else -1.0
    best = {h: sign * max(sign * np.asarray(v, dtype=float)) for h, v in values.items() if len(v)}
    rule = (f"stop a head when the leader's best {metric} on the {n_selection} selection "
            f"examples is ahead of its best by more than the trial noise allows at "
            f"{confidence:.0%} confidence (Bonferroni over heads, the leader's best-of-k "
            f"optimism added), once every head has {min_trials} trials")
    heads = list(values)
    if len(best) < len(heads) or min(len(v) for v in values.values()) < min_trials:
        return RaceDecision(heads, [], None, rule)
    leader = max(best, key=lambda h: sign * best[h])
    z = float(special.ndtri(1 - (1 - confidence) / max(len(heads) - 1, 1)))
    sd = {h: trial_noise(best[h], n_selection, metric, seed_std, noise_sd) for h in heads}
    stop, gaps, margins = [], {}, {}
    for h in heads:
        sd_h, sd_l = sd[h], sd[leader]
        if h == leader or sd_h is None or sd_l is None:
            continue
        optimism = sd_l * max(0.0, expected_max(len(values[leader])) - expected_max(len(values[h])))
        gaps[h] = sign * (best[leader] - best[h])
        margins[h] = z * math.hypot(sd_l, sd_h) + optimism
        if gaps[h] > margins[h]:
            stop.append(h)
    return RaceDecision([h for h in heads if h not in stop], stop, leader, rule, gaps, margins)
