"""A study's tables, built once from its `StudyResult` as plain data (cells already formatted);
summary.md, the report page and the model card only lay them out.

One number format for all three: the study's metric in percent (2 decimals) when it is
accuracy or an F1 score, else with 4 decimals; a paired test's difference in the same unit
(percentage points); other numbers with 4 decimals, or 3 significant digits when smaller than
0.001 (a p-value of 2.1e-05 keeps its digits); hyperparameters with 4 decimals, or 3
significant digits below 0.01 (a learning rate of 2e-05).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..metrics import LABELS, PERCENT
from ..text import fmt_number
from .results import Comparison, HeadResult, StudyResult


@dataclass(frozen=True)
class Table:
    """One table: `key` names it (the report's HTML id), `note` says how to read it (or, with
    no rows, why it is empty)."""

    key: str
    title: str
    headers: list[str]
    rows: list[list[str]] = field(default_factory=list)
    note: str = ""


def num(value: Any) -> str:
    return fmt_number(value, 4, small=1e-3)


def param(value: Any) -> str:
    return fmt_number(value, 4, small=1e-2)  # a learning rate of 2e-05 is not 0.0000


def pct(value: Any) -> str:
    return fmt_number(None if value is None else 100 * value, 2)


def in_percent(result: StudyResult) -> bool:
    return result.metric_name in PERCENT


def metric_format(result: StudyResult) -> Callable[[Any], str]:
    """How this study's metric values (and their differences) are printed."""
    return pct if in_percent(result) else num


def metric_label(result: StudyResult) -> str:
    """The study's metric in words: "accuracy", "macro-F1", "Pearson correlation"."""
    return LABELS.get(result.metric_name, result.metric_name)


def _unit(result: StudyResult) -> str:
    return " (%)" if in_percent(result) else ""


def _interval(ci: list[float] | None, value: Callable[[Any], str]) -> str:
    return f"[{value(ci[0])}, {value(ci[1])}]" if ci else "–"


# ----------------------------------------------------------------------------- the tables


def hyperparameter_table(result: StudyResult, order: list[str] | None = None) -> Table:
    names = result.ordered_heads(order)
    heads = [result.heads[h] for h in names]
    params = list(dict.fromkeys(p for h in heads for p in (h.best_params or {})))
    rows = [[p, *(param((h.best_params or {}).get(p)) for h in heads)] for p in params]
    rows.append(["best epoch", *(num(h.best_epoch) for h in heads)])
    rows.append(["best trial", *(num(h.best_trial) for h in heads)])
    return Table("hyperparameters", "best hyperparameters per head", ["parameter", *names], rows)


def metric_table(result: StudyResult, order: list[str] | None = None) -> Table:
    """The study's metric per head: best trial, best model on dev, seed statistics, whether
    it beats the baseline; the baseline as the last row."""
    value, name = metric_format(result), metric_label(result)
    names = result.ordered_heads(order)
    baseline = any(result.heads[h].beats_baseline is not None for h in names)
    adjusted = any(result.heads[h].baseline_p_adjusted is not None for h in names)
    headers = ["head", f"best trial ({result.selection or 'selection set'})",
               "best model on dev", "seeds", "seed mean", "seed std", "95% t-interval",
               *(["beats baseline"] if baseline else []),
               *(["p vs baseline (Holm)"] if adjusted else [])]
    rows = []
    for h in names:
        head = result.heads[h]
        rows.append([h, value(head.best_value), value(head.dev_value_best),
                     num(len(head.seeds or head.seed_values)), value(head.mean),
                     value(head.std), _interval(head.ci95, value),
                     *([num(head.beats_baseline)] if baseline else []),
                     *([num(head.baseline_p_adjusted)] if adjusted else [])])
    if result.baseline is not None:  # the bar every head is held to, on the same dev examples
        at = value(result.baseline.value)
        rows.append([f"baseline: {result.baseline.name}", "–", at, "–", at, "–", "–",
                     *(["–"] if baseline else []), *(["–"] if adjusted else [])])
    where = {"holdout": "held-out slice of train", "dev": "validation set"}.get(
        result.selection or "", "selection set")
    note = (f"{'Values in %. ' if in_percent(result) else ''}Best trial: its {name} on the "
            f"{where}, where it was chosen; best model on dev: that trial's model on the "
            "validation set; seed mean, sample std and the 95% t-interval of the mean: the "
            "re-trainings of the best settings, on the validation set.")
    if result.baseline is not None:
        note += (f" Baseline: {result.baseline.name}, the best a prediction that never reads "
                 "the text scores on the validation set")
        note += ("; beats baseline: the head's seed mean is above it by the primary test, "
                 "one-sided, Holm-adjusted across heads (a head marked \"no\" did not show "
                 "that it learnt anything)." if baseline else ".")
    return Table("metric", f"{name} per head{_unit(result)}", headers, rows, note)


def seed_table(result: StudyResult, order: list[str] | None = None) -> Table:
    value, name = metric_format(result), metric_label(result)
    rows = [[h, ", ".join(str(s) for s in head.seeds) or "–",
             ", ".join(value(v) for v in head.seed_values) or "–"]
            for h, head in _heads(result, order)]
    return Table("seeds", f"seed re-trainings (dev {name}{_unit(result)})",
                 ["head", "seeds", name], rows)


def paired_test_table(result: StudyResult, head: str | None = None) -> Table:
    """The paired tests between heads (only those involving `head`, when given): the primary
    test first, its minimum detectable effect beside the observed difference."""
    value = metric_format(result)
    tests = [c for c in result.comparisons if head is None or head in (c.a, c.b)]
    adjusted = any(c.p_adjusted is not None for c in tests)
    columns = [
        ("A", lambda c: c.a, True), ("B", lambda c: c.b, True),
        ("test", lambda c: c.test, True),
        ("primary", lambda c: num(c.primary), any(c.primary for c in tests)),
        ("statistic", lambda c: num(c.statistic), True),
        ("p-value", lambda c: num(c.p_value), True),
        ("p (Holm)", lambda c: num(c.p_adjusted), adjusted),
        ("significant (Holm p < alpha)" if adjusted else "significant (p < alpha)",
         lambda c: num(c.significant), True),
        ("difference (A − B)", lambda c: value(c.difference), True),
        ("95% interval", lambda c: _interval(c.ci95, value), any(c.ci95 for c in tests)),
        ("min. detectable effect", lambda c: value(c.min_detectable_effect),
         any(c.min_detectable_effect is not None for c in tests)),
        ("A right, B wrong", lambda c: num(c.a_correct_b_wrong), True),
        ("B right, A wrong", lambda c: num(c.b_correct_a_wrong), True),
        ("alpha", lambda c: num(c.alpha), True), ("basis", lambda c: c.basis or "–", True)]
    shown = [(title, cell) for title, cell, keep in columns if keep]
    rows = [[cell(c) for _, cell in shown] for c in tests]
    title = "paired tests between heads" if head is None else f"paired tests involving {head}"
    return Table("tests", title, [title for title, _ in shown], rows,
                 _test_note(result, tests, head))


def _test_note(result: StudyResult, tests: list[Comparison], head: str | None) -> str:
    if len(result.heads) < 2:
        return "This study has a single head: there is no pair of heads to test."
    if not tests:
        return (f"No paired test involves {head}." if head else
                "No pair of heads to compare (a head without a best model is not tested).")
    unit = " in percentage points" if in_percent(result) else ""
    primary = (f"of the seed-mean {metric_label(result)} for the primary test, "
               if any(c.primary for c in tests) else "")
    if result.problem_type == "regression":
        note = (f"Difference (A − B){unit}: {primary}of the mean squared error for Wilcoxon's "
                "test, of the Pearson correlation for the bootstrap, of the "
                f"{metric_label(result)} for the t-test over seeds.")
    else:
        note = (f"Difference (A − B){unit}: {primary}of accuracy (per-example correctness) "
                f"for the bootstrap, of the {metric_label(result)} for the t-test over seeds.")
    if any(c.min_detectable_effect is not None for c in tests):
        note += (" Min. detectable effect: the true difference the primary test detects with "
                 "80% power at Holm's strictest level (alpha / pairs); this study cannot tell "
                 "differences below it, and a pair that is not significant may still differ "
                 "by less.")
    if any(c.p_adjusted is not None for c in tests):
        note += (" Significant reads the Holm-adjusted p: across all pairs for the primary "
                 "test, within each secondary test across pairs.")
    return note


def trial_table(result: StudyResult, order: list[str] | None = None) -> Table:
    """Trials per head; with --race, whether the race stopped the head and what it saved."""
    raced = result.race is not None
    rows = [[h, num(head.n_requested), num(head.n_complete), num(head.n_pruned),
             num(head.n_failed), num(head.epochs_saved_by_pruning),
             *([_stopped(head), num(head.trials_saved_by_race)] if raced else [])]
            for h, head in _heads(result, order)]
    headers = ["head", "requested", "complete", "pruned", "failed", "epochs saved by pruning",
               *(["stopped by the race", "trials saved by the race"] if raced else [])]
    note = ("Trials saved by the race: the requested trials a head it stopped did not run (the "
            "rule is in the protocol)." if raced else "")
    return Table("trials", "trials", headers, rows, note)


def _stopped(head: HeadResult) -> str:
    if not head.race_stopped:
        return "no"
    return f"after {head.race_stopped_after} trials" if head.race_stopped_after else "yes"


def per_class_table(result: StudyResult, order: list[str] | None = None) -> Table | None:
    """Per class, precision and recall of each head's best model on dev; None without them."""
    heads = _heads(result, order)
    if not any(head.dev_precision for _, head in heads):
        return None
    width = max(len(head.dev_precision or []) for _, head in heads)
    labels = result.label_names or [str(i) for i in range(width)]
    rows = [[h, label, pct(_at(head.dev_precision, i)), pct(_at(head.dev_recall, i))]
            for h, head in heads for i, label in enumerate(labels)]
    return Table("per_class", "per-class precision and recall of the best model on dev (%)",
                 ["head", "label", "precision", "recall"], rows)


def study_tables(result: StudyResult, order: list[str] | None = None) -> list[Table]:
    """Every table of the study, in the order summary.md numbers them."""
    tables = [hyperparameter_table(result, order), metric_table(result, order),
              seed_table(result, order), paired_test_table(result), trial_table(result, order),
              per_class_table(result, order)]
    return [t for t in tables if t is not None]


def _heads(result: StudyResult, order: list[str] | None) -> list[tuple[str, HeadResult]]:
    return [(h, result.heads[h]) for h in result.ordered_heads(order)]


def _at(values: list[float] | None, i: int) -> float | None:
    return values[i] if values and i < len(values) else None
