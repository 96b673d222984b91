"""What a study reports: trials.csv, and its results (`results.StudyResult`, written as
summary.json) from the heads' outcomes: seed statistics and paired tests."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from .. import layout
from ..metrics import Criterion
from ..text import redact
from . import stats
from .final import HeadOutcome
from .results import Budget, Comparison, HeadResult, StudyResult
from .settings import TuneConfig

ALPHA = 0.05


# ----------------------------------------------------------------------------- trials.csv


def fail_reason(trial: FrozenTrial, trials: list[FrozenTrial]) -> str:
    reason = trial.user_attrs.get("fail_reason")
    if reason:
        return str(reason)
    if trial.state == TrialState.FAIL:
        retried = any(t.system_attrs.get("failed_trial") == trial.number for t in trials)
        return "worker lost (no heartbeat)" if retried else "unknown"
    return ""


def write_trials_csv(path: Path, trials_by_head: dict[str, list[FrozenTrial]]) -> None:
    layout.write_trials_csv(path, [
        {"head": head, "number": t.number, "state": t.state.name, "value": t.value,
         "params": t.params, "epochs_run": t.user_attrs.get("epochs_run"),
         "duration_s": t.user_attrs.get("duration_s"), "fail_reason": fail_reason(t, trials)}
        for head, trials in trials_by_head.items() for t in sorted(trials, key=lambda t: t.number)
    ])


# ----------------------------------------------------------------------------- summary.json


def epochs_saved(trials: list[FrozenTrial]) -> int:
    """Sum over pruned trials of the epochs they were planned to run but did not."""
    return int(sum(max(0, int(t.user_attrs.get("planned_epochs", 0))
                       - int(t.user_attrs.get("epochs_run", 0)))
                   for t in trials if t.state == TrialState.PRUNED))


def head_result(o: HeadOutcome) -> HeadResult:
    values = [r.value for r in o.seed_runs]
    count = Counter(t.state for t in o.trials)
    return HeadResult(
        n_trials=count[TrialState.COMPLETE] + count[TrialState.PRUNED] + count[TrialState.FAIL],
        n_requested=o.n_requested,
        n_complete=count[TrialState.COMPLETE],
        n_pruned=count[TrialState.PRUNED],
        n_failed=count[TrialState.FAIL],
        best_trial=o.best.number if o.best else None,
        best_value=o.best.value if o.best else None,
        best_params=dict(o.best.params) if o.best else None,
        best_epoch=o.best.user_attrs.get("best_epoch") if o.best else None,
        dev_value_best=o.dev_value_best,
        dev_precision=o.dev_metrics.get("eval_precision"),
        dev_recall=o.dev_metrics.get("eval_recall"),
        seeds=[r.seed for r in o.seed_runs],
        seed_values=values,
        **stats.seed_summary(values),
        epochs_saved_by_pruning=epochs_saved(o.trials),
    )


def representative(o: HeadOutcome, labels: np.ndarray,
                   problem_type: str) -> tuple[np.ndarray | None, str]:
    """Per example, what stands for the head in the paired tests: correctness (classification)
    by a majority vote of its seed runs (ties go to the seed-averaged probabilities), or its
    seed runs' mean prediction (regression); else its best trial's model."""
    if not o.seed_runs:
        best = o.dev_best
        if best is None:
            return None, "the best trial's model"
        return (best.preds if problem_type == "regression" else best.correct,
                "the best trial's model")
    runs = [r.predictions for r in o.seed_runs]
    basis = f"{'mean' if problem_type == 'regression' else 'majority vote'} over {len(runs)} " \
            "seed runs"
    if problem_type == "regression":
        return np.mean([r.preds for r in runs], axis=0), basis
    mean = np.mean([r.probs for r in runs], axis=0)
    soft = ((mean >= 0.5) == (labels > 0)).all(1) if problem_type == "multi_label" \
        else mean.argmax(axis=1) == labels
    return stats.majority_correct([r.correct for r in runs], tie_break=soft), basis


def comparisons(outcomes: list[HeadOutcome], labels: np.ndarray, judge: Criterion,
                alpha: float = ALPHA) -> list[Comparison]:
    """Every pair of heads on the same dev examples. Classification: exact McNemar and a
    paired bootstrap on per-example correctness; regression: Wilcoxon on squared errors and a
    bootstrap of the correlation difference; and a paired t-test over seeds (the metric) where
    both heads have two or more."""
    out: list[Comparison] = []
    for a, b in itertools.combinations(outcomes, 2):
        (ca, basis_a), (cb, basis_b) = (representative(h, labels, judge.problem_type)
                                        for h in (a, b))
        if ca is None or cb is None:
            continue
        pair = {"a": a.head, "b": b.head, "alpha": alpha,
                "basis": basis_a if basis_a == basis_b else f"{a.head}: {basis_a}; "
                                                               f"{b.head}: {basis_b}"}
        tests = (_regression_tests(ca, cb, labels) if judge.problem_type == "regression"
                 else _classification_tests(ca, cb, pair))
        out += [Comparison(**{**pair, **test, "significant": test["p_value"] < alpha})
                for test in tests]
        t = stats.paired_t([r.value for r in a.seed_runs], [r.value for r in b.seed_runs])
        if t is not None:
            out.append(Comparison(
                a.head, b.head, alpha, f"{judge.label} of seed k of {a.head} vs seed k of "
                f"{b.head}", test="paired_t_seeds", statistic=t["statistic"],
                p_value=t["p_value"], difference=t["difference"],
                significant=t["p_value"] < alpha))
    return out


def _classification_tests(ca: np.ndarray, cb: np.ndarray, pair: dict) -> list[dict]:
    right_wrong, wrong_right = stats.discordant(ca, cb)
    pair.update(a_correct_b_wrong=right_wrong, b_correct_a_wrong=wrong_right)
    boot = stats.paired_bootstrap(ca, cb, seed=0)
    return [{"test": "mcnemar", "statistic": min(right_wrong, wrong_right),
             "p_value": stats.mcnemar_exact(right_wrong, wrong_right)},
            {"test": "paired_bootstrap", "statistic": boot["difference"],
             "p_value": boot["p_value"], "difference": boot["difference"], "ci95": boot["ci95"],
             "n_resamples": boot["n_resamples"]}]


def _regression_tests(pa: np.ndarray, pb: np.ndarray, targets: np.ndarray) -> list[dict]:
    errors = stats.paired_squared_errors(pa, pb, targets)
    boot = stats.bootstrap_correlation(pa, pb, targets, seed=0)
    return [{"test": "wilcoxon_squared_errors", **errors},
            {"test": "bootstrap_pearson_difference", "statistic": boot["difference"],
             "p_value": boot["p_value"], "difference": boot["difference"], "ci95": boot["ci95"],
             "n_resamples": boot["n_resamples"]}]


def selection_text(tc: TuneConfig, n_fit: int, n_holdout: int, n_eval: int) -> str:
    if tc.select_on == "dev":
        return (f"dev: every trial was scored on the validation set ({n_eval} examples) and the "
                "best trial was chosen on that same set, as the report did; its number is "
                "optimistic (chosen and reported on the same examples), and the seed "
                "re-trainings also keep each run's best epoch on it.")
    return (f"holdout: trials trained on {n_fit} training examples and were scored on a "
            f"stratified held-out {tc.holdout_fraction:.0%} of train ({n_holdout} examples); the "
            f"validation set ({n_eval} examples) was not used to choose anything. Each head's "
            "best model was scored on it once, and the seed re-trainings on all of train keep "
            "their last epoch.")


def build_summary(tc: TuneConfig, outcomes: list[HeadOutcome], dev_labels: np.ndarray,
                  sizes: dict[str, int], wall_time_s: float,
                  budget: dict[str, Any], judge: Criterion,
                  label_names: list[str]) -> StudyResult:
    return StudyResult(
        task=tc.run.data.task,
        model=tc.run.model.model_name_or_path,
        selection=tc.select_on,
        select_on_description=selection_text(tc, sizes["fit"], sizes["holdout"], sizes["eval"]),
        metric=judge.key,
        metric_name=judge.metric,
        problem_type=judge.problem_type,
        label_names=label_names,
        n_eval=sizes["eval"],
        n_train=sizes["train"],
        study_name=tc.name,
        storage=redact(tc.storage) if tc.storage else None,
        preset=tc.preset,
        budget=Budget.from_json(budget),
        heads={o.head: head_result(o) for o in outcomes},
        comparisons=comparisons(outcomes, dev_labels, judge),
        wall_time_s=round(wall_time_s, 1),
    )
