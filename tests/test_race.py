"""poolbert.tuning.race: the rule that stops giving trials to a hopeless head."""

from __future__ import annotations

import numpy as np
import pytest

from poolbert.tuning.race import MIN_TRIALS, expected_max, race, trial_noise


def trials(rng: np.random.Generator, best: float, k: int, spread: float = 0.02) -> list[float]:
    return (best - rng.exponential(spread, k) + 0.01 * rng.standard_normal(k)).tolist()


def test_a_hopeless_head_stops_and_the_leader_never_does():
    rng = np.random.default_rng(0)
    values = {"cls": trials(rng, 0.52, 12), "mean_max": trials(rng, 0.70, 12),
              "attention": trials(rng, 0.69, 12)}
    out = race(values, 373, "accuracy")
    assert out.leader == "mean_max"
    assert out.stop == ["cls"] and out.keep == ["mean_max", "attention"]
    assert out.gaps["cls"] > out.margins["cls"] and out.gaps["attention"] < out.margins["attention"]
    assert "confidence" in out.rule


def test_nothing_stops_before_every_head_has_its_minimum_trials():
    rng = np.random.default_rng(1)
    values = {"a": trials(rng, 0.50, MIN_TRIALS - 1), "b": trials(rng, 0.80, 30)}
    assert race(values, 373, "accuracy").stop == []
    values["a"] += trials(rng, 0.50, 1)
    assert race(values, 373, "accuracy").stop == ["a"]


def test_close_heads_and_small_selection_sets_keep_running():
    rng = np.random.default_rng(2)
    close = {"a": trials(rng, 0.68, 15), "b": trials(rng, 0.66, 15)}
    assert race(close, 373, "accuracy").stop == []
    far = {"a": trials(rng, 0.68, 15), "b": trials(rng, 0.55, 15)}
    assert race(far, 373, "accuracy").stop == ["b"]
    assert race(far, 30, "accuracy").stop == []  # 30 examples: 13 points is within noise


def test_direction_min_and_metrics_without_a_noise_rule():
    rng = np.random.default_rng(3)
    losses = {"a": (0.45 + rng.exponential(0.02, 12)).tolist(),
              "b": (0.90 + rng.exponential(0.02, 12)).tolist()}
    assert race(losses, 373, "loss", maximize=False).stop == []  # no rule of thumb for a loss
    out = race(losses, 373, "loss", maximize=False, noise_sd=0.03)
    assert out.leader == "a" and out.stop == ["b"]


def test_the_leaders_extra_trials_widen_the_margin():
    b = trials(np.random.default_rng(4), 0.60, 10)
    even = race({"a": [0.70] * 10, "b": b}, 373, "accuracy")
    more = race({"a": [0.70] * 40, "b": b}, 373, "accuracy")  # same best, more tries at it
    optimism = trial_noise(0.70, 373, "accuracy") * (expected_max(40) - expected_max(10))
    assert more.margins["b"] - even.margins["b"] == pytest.approx(optimism)
    assert optimism > 0.01


def test_expected_max_of_normals():
    rng = np.random.default_rng(5)
    for k in (2, 10, 30):
        simulated = rng.standard_normal((20000, k)).max(axis=1).mean()
        assert expected_max(k) == pytest.approx(simulated, abs=0.02)
    assert expected_max(1) == 0.0
