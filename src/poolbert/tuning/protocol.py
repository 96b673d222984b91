"""A study's findings and protocol in words, written once from its `StudyResult`: summary.md,
the report page and the model card open with the same findings (the verdict first) and show
the same protocol paragraphs (the Budget line among them, once)."""

from __future__ import annotations

import math

from .results import Comparison, StudyResult
from .tables import in_percent, metric_format, metric_label, num
from .verdict import PRIMARY


def protocol_text(result: StudyResult) -> list[str]:
    """Paragraphs: the selection set, how the heads were tuned (and raced), re-trained and
    compared, and the budget. Sentences whose facts an older summary.json lacks are left out."""
    paragraphs = [f"Selection: {result.select_on_description}"] \
        if result.select_on_description else []
    paragraphs.append(" ".join([_tuning(result), _seeds(result), *_tests(result)]).strip())
    if result.race is not None:
        paragraphs.append(race_text(result))
    if result.budget is not None:
        paragraphs.append(budget_text(result))
    return paragraphs


def findings_text(result: StudyResult) -> list[str]:
    """What a study's summary, report page and model card open with: the verdict, then the
    baseline with which heads beat it, the power of each comparison and how to plan a study
    that detects less. Empty for summaries written before verdicts."""
    lines = [f"Verdict: {result.verdict}"] if result.verdict else []
    if result.baseline is not None:
        lines.append(_baseline(result))
    power = _power(result)
    if power:
        lines.append(power)
    planning = plan_text(result)
    if planning:
        lines.append(planning)
    return lines


def _baseline(result: StudyResult) -> str:
    assert result.baseline is not None
    value = metric_format(result)(result.baseline.value)
    text = (f"Baseline: {result.baseline.name}, {metric_label(result)} {value}"
            f"{' %' if in_percent(result) else ''} on dev.")
    tested = [(h, r) for h, r in result.heads.items() if r.beats_baseline is not None]
    if tested:
        text += (" Beats it (primary test, one-sided, Holm-adjusted across heads): " + "; ".join(
            f"{h} {'yes' if r.beats_baseline else 'no'} (p = {num(r.baseline_p_adjusted)})"
            for h, r in tested) + ".")
    return text


def _primary(result: StudyResult) -> list[Comparison]:
    return [c for c in result.comparisons if c.primary]


def _power(result: StudyResult) -> str:
    """Per pair, the observed difference and the minimum detectable effect beside it."""
    rows = [c for c in _primary(result) if c.min_detectable_effect is not None]
    if not rows:
        return ""
    value, unit = metric_format(result), " points" if in_percent(result) else ""
    pairs = "; ".join(
        f"{c.a} − {c.b}: {value(c.difference)}{unit} observed, this study cannot tell "
        f"differences below {value(c.min_detectable_effect)}{unit}" for c in rows)
    return (f"Power (the primary test's minimum detectable effect at 80% power and Holm's "
            f"strictest level, alpha / {len(rows)}): {pairs}.")


def plan_text(result: StudyResult) -> str:
    """The `poolbert plan` command for this study's numbers: the dev size, seeds, seed std
    and the pairs' per-example sd (the largest: on the safe side). Accuracy-like metrics only
    (plan works in points); empty where the study lacks the numbers."""
    rows = [c for c in _primary(result) if c.example_sd is not None and c.difference is not None]
    if not in_percent(result) or not rows or not result.n_eval:
        return ""
    largest = max(abs(c.difference or 0.0) for c in rows)
    effect = max(1.0, round(100 * largest, 1))
    heads = len({h for c in rows for h in (c.a, c.b)})
    parts = [f"--effect {effect:g}", f"--n-eval {result.n_eval}", f"--heads {heads}"]
    seeds = [len(h.seed_values) for h in result.heads.values() if len(h.seed_values) >= 2]
    stds = [h.std for h in result.heads.values() if h.std is not None]
    if seeds:
        parts.append(f"--seeds {min(seeds)}")
    if stds:
        parts.append(f"--seed-std {100 * math.sqrt(sum(x * x for x in stds) / len(stds)):.1f}")
    parts.append(f"--example-sd {100 * max(c.example_sd or 0.0 for c in rows):.1f}")
    return (f"Planning: `poolbert plan {' '.join(parts)}` prints the minimum detectable effect "
            "for other numbers of seeds and dev examples, and what a study needs to detect the "
            f"largest difference seen here ({effect:g} points); change --effect to the "
            "difference you care about.")


def _tuning(result: StudyResult) -> str:
    budget, name = result.budget, metric_label(result)
    studies = f" ({result.study_name}-<head>)" if result.study_name else ""
    pruner = f" and pruner {budget.pruner}" if budget and budget.pruner else ""
    text = (f"Each head has its own Optuna study{studies} with a seeded TPE sampler{pruner}; a "
            f"trial's objective is its best-epoch {name} on the selection set.")
    if budget and budget.space:
        text += f" Search space: {budget.space}."
    return text


def _seeds(result: StudyResult) -> str:
    counts = sorted({len(h.seeds or h.seed_values) for h in result.heads.values()} - {0})
    seeds = result.budget.final_seeds if result.budget and result.budget.final_seeds is not None \
        else " or ".join(map(str, counts)) or None
    if seeds in (0, None):
        return "The best settings of each head were not re-trained with other seeds."
    train = f" on {result.n_train} training examples" if result.n_train else ""
    dev = f" {result.n_eval}" if result.n_eval else ""
    return (f"The best settings of each head were re-trained with {seeds} seeds{train} and "
            f"scored on{dev} dev examples (mean, sample std, 95% t-interval).")


def _tests(result: StudyResult) -> list[str]:
    if result.primary_test or any(c.p_adjusted is not None for c in result.comparisons):
        return _verdict_tests(result)
    if len(result.heads) < 2:
        return []
    alpha = next((c.alpha for c in result.comparisons if c.alpha is not None), None)
    level = f" at alpha = {alpha}" if alpha is not None else ""
    # a summary written before verdicts: its tests were not adjusted, and it says so
    return [f"Paired tests{level} use the same dev examples: {_secondary(result)}, and a "
            f"paired t-test of the {metric_label(result)} over seeds; p-values were not "
            "adjusted for multiple comparisons (a summary written before poolbert adjusted "
            "them)."]


def _secondary(result: StudyResult) -> str:
    return ("Wilcoxon's signed-rank test on per-example squared errors and a paired bootstrap "
            "(2,000 resamples) of the Pearson correlation difference, on each head's "
            "seed-averaged predictions" if result.problem_type == "regression" else
            "exact McNemar (binomial test on the discordant counts) and a paired bootstrap "
            "(10,000 resamples of examples) on per-example correctness (majority vote over "
            "seeds, ties decided by the seed-averaged probabilities)")


def _verdict_tests(result: StudyResult) -> list[str]:
    """The baseline test, the primary test with Holm, the MDE and the secondary tests."""
    alpha = next((c.alpha for c in result.comparisons if c.alpha is not None), 0.05)
    pairs = len(_primary(result))
    name = metric_label(result)
    primary = result.primary_test or PRIMARY
    out = [f"Every head is tested against the baseline, and every pair of heads against each "
           f"other, on the same dev examples at alpha = {alpha}. Primary test ({primary}): a "
           f"t-test of the difference of the heads' seed-mean {name} whose variance counts "
           "both the dev examples and the seeds (Welch-Satterthwaite degrees of freedom; exact "
           "jackknife pseudo-values for a metric that is not a mean over examples). Against "
           "the baseline it is one-sided and Holm-adjusted across heads; a head with one run "
           "borrows the other heads' seed variance."]
    if pairs:
        out.append(f"Between heads its p-values are adjusted with Holm's method across all "
                   f"{pairs} pair(s) of the study, and \"significant\" reads the adjusted p. "
                   "The minimum detectable effect of a pair is the true difference this test "
                   f"detects with 80% power at Holm's strictest level, alpha / {pairs}. "
                   f"Secondary tests: {_secondary(result)}, and a paired t-test of the {name} "
                   "over seeds; each is Holm-adjusted within its own test across pairs, and "
                   "its \"significant\" reads that adjusted p. They answer narrower questions "
                   "(the majority vote ignores seed noise, the t-test over a few seeds ignores "
                   "which examples the dev set holds) and do not decide the verdict.")
    return out


def race_text(result: StudyResult) -> str:
    """--race: the rounds, the rule, the heads stopped and the trials saved."""
    race = result.race
    assert race is not None
    stopped = "; ".join(f"{h} after {result.heads[h].race_stopped_after} finished trials "
                        f"({result.heads[h].trials_saved_by_race} saved)"
                        for h in race.stopped if h in result.heads) or "none"
    return (f"Race (--race): the heads took turns, one trial each per round, and the rule was "
            f"to {race.rule}. Stopped: {stopped}; trials saved in all: {race.trials_saved}. "
            "A stopped head keeps its best trial and is re-trained with seeds like the others, "
            "so it is still compared.")


def budget_text(result: StudyResult) -> str:
    """The Budget line: trials per head, training samples, device, seeds, workers, timeout and
    the command's wall time."""
    budget = result.budget
    if budget is None:
        return ""
    trials = ", ".join(f"{h} {n}" for h, n in budget.n_trials.items())
    timeout = f"{budget.timeout:.0f} s" if budget.timeout else "none"
    where = f" on {budget.device}" if budget.device else ""  # older studies did not record it
    if result.preset == "quick" and budget.device:
        where += " (the quick preset: all of train on a GPU, a fixed subset on a CPU)"
    if budget.precision_reason:
        where += f" in {budget.precision_reason}"
    packed = f", {budget.pack} trials packed together per worker" if budget.pack > 1 else ""
    if budget.unpacked:
        packed = f", one trial at a time ({budget.unpacked})"
    seeds = f"; final seeds {budget.final_seeds}" if budget.final_seeds is not None else ""
    workers = f"; {budget.n_workers} worker process(es){packed}" \
        if budget.n_workers is not None else ""
    wall = f" Wall time of this command: {result.wall_time_s:.0f} s." \
        if result.wall_time_s is not None else ""
    return (f"Budget: trials per head {trials}; max_train_samples "
            f"{budget.max_train_samples or 'all'}{where}{seeds}{workers}; timeout "
            f"{timeout}.{wall}")
