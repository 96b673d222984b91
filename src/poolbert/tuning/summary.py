"""What a study reports: trials.csv, summary.json and summary.md (the report's tables)."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from .. import layout
from ..metrics import LABELS, PERCENT, Criterion
from ..text import fmt_number, redact
from . import stats
from .final import HeadOutcome
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


def head_summary(o: HeadOutcome) -> dict[str, Any]:
    values = [r.value for r in o.seed_runs]
    count = Counter(t.state for t in o.trials)
    return {
        "n_trials": count[TrialState.COMPLETE] + count[TrialState.PRUNED] + count[TrialState.FAIL],
        "n_requested": o.n_requested,
        "n_complete": count[TrialState.COMPLETE],
        "n_pruned": count[TrialState.PRUNED],
        "n_failed": count[TrialState.FAIL],
        "best_trial": o.best.number if o.best else None,
        "best_value": o.best.value if o.best else None,
        "best_params": dict(o.best.params) if o.best else None,
        "best_epoch": o.best.user_attrs.get("best_epoch") if o.best else None,
        "dev_value_best": o.dev_value_best,
        "dev_precision": o.dev_metrics.get("eval_precision"),
        "dev_recall": o.dev_metrics.get("eval_recall"),
        "seeds": [r.seed for r in o.seed_runs],
        "seed_values": values,
        **stats.seed_summary(values),
        "epochs_saved_by_pruning": epochs_saved(o.trials),
    }


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
                alpha: float = ALPHA) -> list[dict[str, Any]]:
    """Every pair of heads on the same dev examples. Classification: exact McNemar and a
    paired bootstrap on per-example correctness; regression: Wilcoxon on squared errors and a
    bootstrap of the correlation difference; and a paired t-test over seeds (the metric) where
    both heads have two or more."""
    out: list[dict[str, Any]] = []
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
        out += [{**pair, **test, "significant": test["p_value"] < alpha} for test in tests]
        t = stats.paired_t([r.value for r in a.seed_runs], [r.value for r in b.seed_runs])
        if t is not None:
            out.append({"a": a.head, "b": b.head, "test": "paired_t_seeds", "alpha": alpha,
                        "statistic": t["statistic"], "p_value": t["p_value"],
                        "significant": t["p_value"] < alpha, "difference": t["difference"],
                        "basis": f"{judge.label} of seed k of {a.head} vs seed k of {b.head}"})
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
                  label_names: list[str]) -> dict[str, Any]:
    return {
        "task": tc.run.data.task,
        "model": tc.run.model.model_name_or_path,
        "selection": tc.select_on,
        "select_on_description": selection_text(tc, sizes["fit"], sizes["holdout"],
                                                sizes["eval"]),
        "metric": judge.key,
        "metric_name": judge.metric,
        "problem_type": judge.problem_type,
        "label_names": label_names,
        "n_eval": sizes["eval"],
        "n_train": sizes["train"],
        "study_name": tc.name,
        "storage": redact(tc.storage) if tc.storage else None,
        "preset": tc.preset,
        "budget": budget,
        "heads": {o.head: head_summary(o) for o in outcomes},
        "comparisons": comparisons(outcomes, dev_labels, judge),
        "wall_time_s": round(wall_time_s, 1),
    }


# ----------------------------------------------------------------------------- summary.md


def _num(value: Any, digits: int = 4) -> str:
    return fmt_number(value, digits, small=1e-3)  # a learning rate keeps its digits


def _pct(value: float | None) -> str:
    return fmt_number(None if value is None else 100 * value, 2)


def _value(summary: dict[str, Any]) -> Any:
    """How this study's metric is printed: as a percentage, or with 4 decimals."""
    return _pct if _metric_name(summary) in PERCENT else _num


def _metric_name(summary: dict[str, Any]) -> str:
    return summary.get("metric_name") or "accuracy"  # older studies judged by accuracy




def _table(headers: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def summary_markdown(summary: dict[str, Any]) -> str:
    heads = summary["heads"]
    names = list(heads)
    lines = [f"# poolbert study {summary['study_name']}: {summary['task'] or 'custom data'}, "
             f"{summary['model']}", ""]
    params = list(dict.fromkeys(p for h in heads.values() for p in (h["best_params"] or {})))
    lines += ["## Table 1: best hyperparameters per head", ""]
    rows = [[p, *(_num((heads[h]["best_params"] or {}).get(p), 6) for h in names)]
            for p in params]
    rows.append(["best epoch", *(_num(heads[h]["best_epoch"]) for h in names)])
    rows.append(["best trial", *(_num(heads[h]["best_trial"]) for h in names)])
    lines += _table(["parameter", *names], rows) + [""]

    value, name = _value(summary), LABELS[_metric_name(summary)]
    unit = " (%)" if value is _pct else ""
    lines += [f"## Table 2: {name} per head{unit}", ""]
    rows = [[h, value(heads[h]["best_value"]),
             value(layout.head_dev_value(heads[h])),
             value(heads[h]["mean"]), value(heads[h]["std"]),
             "–" if not heads[h]["ci95"] else
             f"[{value(heads[h]['ci95'][0])}, {value(heads[h]['ci95'][1])}]"] for h in names]
    lines += _table(["head", f"best trial ({summary['selection']})", "best model on dev",
                     "seed mean", "seed std", "95% t-interval"], rows) + [""]

    lines += [f"## Table 3: seed re-trainings (dev {name}{unit})", ""]
    rows = [[h, ", ".join(str(s) for s in heads[h]["seeds"]) or "–",
             ", ".join(value(a) for a in layout.head_seed_values(heads[h])) or "–"] for h in names]
    lines += _table(["head", "seeds", name], rows) + [""]

    lines += ["## Table 4: paired tests between heads", ""]
    rows = [[c["a"], c["b"], c["test"], _num(c["statistic"]), _num(c["p_value"]),
             _num(c.get("a_correct_b_wrong")), _num(c.get("b_correct_a_wrong")),
             _num(c["significant"]), c.get("basis", "")] for c in summary["comparisons"]]
    lines += (_table(["A", "B", "test", "statistic", "p-value", "A right B wrong",
                      "B right A wrong", f"p < {ALPHA}", "basis"], rows)
              if rows else ["No pair of heads to compare."]) + [""]

    lines += ["## Table 5: trials", ""]
    rows = [[h, _num(heads[h]["n_requested"]), _num(heads[h]["n_complete"]),
             _num(heads[h]["n_pruned"]), _num(heads[h]["n_failed"]),
             _num(heads[h]["epochs_saved_by_pruning"])] for h in names]
    lines += _table(["head", "requested", "complete", "pruned", "failed",
                     "epochs saved by pruning"], rows) + [""]

    lines += per_class_table(summary, names)
    lines += ["## Protocol", "", f"Selection: {summary['select_on_description']}", "",
              protocol_text(summary), "", budget_text(summary), ""]
    return "\n".join(lines)


def per_class_table(summary: dict[str, Any], names: list[str]) -> list[str]:
    """Table 6: per class (per label), precision and recall of each head's best model on dev."""
    heads = summary["heads"]
    if not any(heads[h].get("dev_precision") for h in names):
        return []
    labels = summary.get("label_names") or [str(i) for i in range(
        max(len(heads[h].get("dev_precision") or []) for h in names))]
    rows = [[h, label, _pct((heads[h].get("dev_precision") or [None] * len(labels))[i]),
             _pct((heads[h].get("dev_recall") or [None] * len(labels))[i])]
            for h in names for i, label in enumerate(labels)]
    return ["## Table 6: per-class precision and recall of the best model on dev (%)", "",
            *_table(["head", "label", "precision", "recall"], rows), ""]


def protocol_text(summary: dict[str, Any]) -> str:
    budget, name = summary["budget"], LABELS[_metric_name(summary)]
    regression = summary.get("problem_type") == "regression"
    tests = ("Wilcoxon's signed-rank test on per-example squared errors and a paired bootstrap "
             "(2,000 resamples) of the Pearson correlation difference, on each head's "
             "seed-averaged predictions" if regression else
             "exact McNemar (binomial test on the discordant counts) and a paired bootstrap "
             "(10,000 resamples of examples) on per-example correctness (majority vote over "
             "seeds, ties decided by the seed-averaged probabilities)")
    return (
        f"Each head has its own Optuna study ({summary['study_name']}-<head>) with a seeded TPE "
        f"sampler and pruner {budget['pruner']}; a trial's objective is its best-epoch {name} "
        f"on the selection set. Search space: {budget['space']}. The best settings of each head "
        f"were re-trained with {budget['final_seeds']} seeds on {summary['n_train']} training "
        f"examples and scored on {summary['n_eval']} dev examples (mean, sample std, 95% "
        f"t-interval). Paired tests use the same dev examples: {tests}, and a paired t-test of "
        f"the {name} over seeds; no correction for multiple comparisons."
    )


def _packed(budget: dict[str, Any]) -> str:
    pack = budget.get("pack") or 1  # studies written before packs have none
    return f", {pack} trials packed together per worker" if pack > 1 else ""


def budget_text(summary: dict[str, Any]) -> str:
    budget = summary["budget"]
    trials = ", ".join(f"{h} {n}" for h, n in budget["n_trials"].items())
    timeout = f"{budget['timeout']:.0f} s" if budget["timeout"] else "none"
    device = budget.get("device")  # studies written before it was recorded have none
    where = f" on {device}" if device else ""
    if summary.get("preset") == "quick" and device:
        where += (" (the quick preset: all of train on a GPU, a fixed subset on a CPU)")
    return (f"Budget: trials per head {trials}; max_train_samples "
            f"{budget['max_train_samples'] or 'all'}{where}; final seeds {budget['final_seeds']}; "
            f"{budget['n_workers']} worker process(es){_packed(budget)}; timeout {timeout}. Wall "
            f"time of this command: {summary['wall_time_s']:.0f} s.")
