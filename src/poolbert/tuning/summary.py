"""What a study reports: trials.csv, and its results (`results.StudyResult`, written as
summary.json) from the heads' outcomes: seed statistics, the baseline, the verdict with its
primary and secondary tests (verdict.py), and with --race what the race stopped."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from .. import layout
from ..metrics import Criterion
from ..text import redact
from . import stats
from .baseline import baseline
from .evidence import BaselineEvidence, HeadEvidence, head_evidence
from .final import HeadOutcome
from .heads import startup_trials
from .racing import rule_text
from .results import Baseline, Budget, Comparison, HeadResult, RaceResult, StudyResult
from .settings import TuneConfig
from .verdict import PRIMARY, Verdict, compare_heads

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


def evidence_of(o: HeadOutcome) -> HeadEvidence | None:
    """What stands for a head in the verdict: its seed runs on dev, else its best trial's
    model (one run, seed noise borrowed from the other heads); None without either."""
    if o.seed_runs:
        return head_evidence([r.predictions for r in o.seed_runs], [r.value for r in o.seed_runs])
    if o.dev_best is not None and o.dev_value_best is not None:
        return head_evidence([o.dev_best], [o.dev_value_best], seeded=False)
    return None


def study_verdict(outcomes: list[HeadOutcome], train_labels: np.ndarray,
                  dev_labels: np.ndarray, judge: Criterion, label_names: list[str],
                  alpha: float = ALPHA) -> tuple[Verdict | None, BaselineEvidence]:
    """The baseline (the best text-blind prediction on dev; train's label sets are candidates
    for multi-label) and the verdict over the heads that have a model on dev
    (verdict.compare_heads); no verdict when none has."""
    k = max(len(label_names), 1)
    base = baseline(dev_labels, judge.problem_type, judge.metric, k, label_names, train_labels)
    found = {o.head: e for o in outcomes if (e := evidence_of(o)) is not None}
    if not found:
        return None, base
    return compare_heads(found, base, judge.problem_type, judge.metric, dev_labels, alpha,
                         num_labels=k), base


def no_model_text(base: BaselineEvidence) -> str:
    return (f"No head has a model on dev (no trial completed): nothing to compare with the "
            f"baseline, {base.name}.")


def race_result(tc: TuneConfig, outcomes: list[HeadOutcome], heads: dict[str, HeadResult],
                n_selection: int, metric: str, budget: dict[str, Any]) -> RaceResult | None:
    """--race: per head whether it was stopped, after how many trials and the trials saved
    (written into `heads`); the rule and the totals. None without --race."""
    if not tc.race:
        return None
    for o in outcomes:
        stop = o.race_stop or {}
        heads[o.head].race_stopped = bool(stop)
        heads[o.head].race_stopped_after = stop.get("after_trials")
        heads[o.head].trials_saved_by_race = max(0, o.n_requested - o.n_finished) if stop else 0
    needed = max((startup_trials(int(n)) for n in budget["n_trials"].values()), default=2)
    return RaceResult(rule_text(tc, n_selection, metric, needed),
                      [o.head for o in outcomes if o.race_stop],
                      sum(h.trials_saved_by_race or 0 for h in heads.values()))


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
                  label_names: list[str], train_labels: np.ndarray) -> StudyResult:
    heads = {o.head: head_result(o) for o in outcomes}
    verdict, base = study_verdict(outcomes, train_labels, dev_labels, judge, label_names)
    for name, found in (verdict.heads if verdict else {}).items():
        heads[name].beats_baseline = found["beats_baseline"]
        heads[name].baseline_p_adjusted = found["baseline_p_adjusted"]
    n_selection = sizes["holdout"] if tc.select_on == "holdout" else sizes["eval"]
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
        heads=heads,
        comparisons=[Comparison.from_json(row) for row in verdict.comparisons] if verdict else [],
        wall_time_s=round(wall_time_s, 1),
        verdict=verdict.text if verdict else no_model_text(base),
        baseline=Baseline(base.name, base.value),
        primary_test=verdict.primary_test if verdict else PRIMARY,
        race=race_result(tc, outcomes, heads, n_selection, judge.metric, budget),
    )
