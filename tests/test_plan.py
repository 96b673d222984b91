"""Study planning: poolbert.tuning.power.plan and `poolbert plan`."""

from __future__ import annotations

import pytest

from poolbert.cli import main
from poolbert.tuning.power import example_variance, plan, planned_mde

SETTINGS = {"seed_std": 0.02, "n_eval": 277, "seeds": 5, "example_var": 0.04, "n_pairs": 3}


def test_the_plans_answer_reaches_the_effect_and_one_less_does_not():
    effect = 0.06
    answer = plan(effect, **SETTINGS)
    level = 0.05 / 3
    assert answer.alpha_per_pair == pytest.approx(level)
    s, n = answer.seeds_needed, answer.n_eval_needed
    assert s is not None and n is not None
    assert planned_mde(277, s, 0.04, 0.02 ** 2, level) <= effect
    assert planned_mde(277, s - 1, 0.04, 0.02 ** 2, level) > effect
    assert planned_mde(n, 5, 0.04, 0.02 ** 2, level) <= effect
    assert planned_mde(n - 1, 5, 0.04, 0.02 ** 2, level) > effect
    assert answer.mde == pytest.approx(planned_mde(277, 5, 0.04, 0.02 ** 2, level))


def test_mde_shrinks_with_seeds_and_examples_and_unreachable_is_none():
    level = 0.05 / 3
    assert planned_mde(277, 10, 0.04, 4e-4, level) < planned_mde(277, 5, 0.04, 4e-4, level)
    assert planned_mde(2770, 5, 0.04, 4e-4, level) < planned_mde(277, 5, 0.04, 4e-4, level)
    # the seeds alone hold the MDE above 1 point whatever the dev size, and vice versa
    assert plan(0.01, **SETTINGS).n_eval_needed is None
    assert plan(0.05, **SETTINGS).n_eval_needed is None  # 5 seeds' noise alone: above 5 points
    assert plan(0.05, **SETTINGS).seeds_needed is not None
    assert plan(0.01, **{**SETTINGS, "example_var": 0.25}).seeds_needed is None
    assert example_variance(0.65, 0.5) == pytest.approx(2 * 0.65 * 0.35 * 0.5)


def test_plan_command_prints_the_table_and_the_answer(capsys):
    assert main(["plan", "--effect", "6", "--accuracy", "70", "--correlation", "0.8",
                 "--seed-std", "1.5", "--seeds", "3"]) == 0
    out = capsys.readouterr().out
    assert "| seeds | 277 dev examples |" in out and "\n| 3 | " in out
    answer = plan(0.06, 0.015, 277, 3, example_variance(0.70, 0.8))
    assert f"{answer.seeds_needed} seeds per head" in out
    assert f"{answer.n_eval_needed} dev examples with 3 seeds" in out
    assert f"the MDE is {100 * answer.mde:.1f} points" in out


@pytest.mark.parametrize("flags, message", [
    (["--accuracy", "0.65"], "--accuracy is a percentage"),
    (["--seeds", "1"], "--seeds must be at least 2"),
    (["--effect", "0"], "--effect must be above 0"),
])
def test_plan_command_refuses_bad_values(capsys, flags, message):
    argv = ["plan", "--effect", "3", *flags] if "--effect" not in flags else ["plan", *flags]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
