"""A study's protocol in words, written once from its `StudyResult`: summary.md, the report page
and the model card show these same paragraphs (the Budget line among them, once)."""

from __future__ import annotations

from .results import StudyResult
from .tables import in_percent, metric_format, metric_label


def protocol_text(result: StudyResult) -> list[str]:
    """Paragraphs: the selection set, how the heads were tuned, re-trained and compared, and the
    budget. Sentences whose facts an older summary.json lacks are left out."""
    paragraphs = [f"Selection: {result.select_on_description}"] \
        if result.select_on_description else []
    paragraphs.append(" ".join([_tuning(result), _seeds(result), *_tests(result)]).strip())
    if result.budget is not None:
        paragraphs.append(budget_text(result))
    return paragraphs


def findings_text(result: StudyResult) -> list[str]:
    """The verdict and the baseline (issue 20's statistics), when the summary has them."""
    lines = []
    if result.baseline is not None:
        value = metric_format(result)(result.baseline.value)
        lines.append(f"Baseline: {result.baseline.name}, {metric_label(result)} {value}"
                     f"{' %' if in_percent(result) else ''}.")
    if result.verdict:
        lines.append(f"Verdict: {result.verdict}")
    return lines


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
    if len(result.heads) < 2:
        return []
    tests = ("Wilcoxon's signed-rank test on per-example squared errors and a paired bootstrap "
             "(2,000 resamples) of the Pearson correlation difference, on each head's "
             "seed-averaged predictions" if result.problem_type == "regression" else
             "exact McNemar (binomial test on the discordant counts) and a paired bootstrap "
             "(10,000 resamples of examples) on per-example correctness (majority vote over "
             "seeds, ties decided by the seed-averaged probabilities)")
    alpha = next((c.alpha for c in result.comparisons if c.alpha is not None), None)
    level = f" at alpha = {alpha}" if alpha is not None else ""
    correction = ("p-values adjusted for multiple comparisons (Holm) beside the raw ones"
                  if any(c.p_adjusted is not None for c in result.comparisons)
                  else "no correction for multiple comparisons")
    sentences = [f"Paired tests{level} use the same dev examples: {tests}, and a paired t-test "
                 f"of the {metric_label(result)} over seeds; {correction}."]
    if result.primary_test:
        sentences.append(f"Primary test: {result.primary_test}.")
    return sentences


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
