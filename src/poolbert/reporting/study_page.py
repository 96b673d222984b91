"""The study report: `build_report(study_dir)` writes `<study_dir>/report/`.

Sections in page order: the header and notes, the protocol in words, the comparison across heads
(tables from summary.json, per-head accuracy, confusion matrices), one section per head (its
figures and failed trials), and the configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import PoolbertError
from ..layout import StudyDir, head_dev_value, head_seed_values
from ..text import fmt_number, plural
from .figures.confusion import get_confusion_info, plot_confusions
from .figures.head_accuracy import get_head_accuracy_info, plot_head_accuracy
from .figures.history import get_history_info, plot_history
from .figures.importances import get_importances_info, plot_importances
from .figures.intermediate import get_intermediate_info, plot_intermediate
from .figures.loss_curve import plot_loss_curve, run_history
from .figures.parallel import get_parallel_info, plot_parallel
from .figures.reliability import get_reliability_info, plot_reliability
from .figures.slices import get_slices_info, plot_slices
from .html import INDEX, Page, esc, generated_line, note, pre_json, report_page, safe_name, table
from .load import (
    HeadData,
    StudyData,
    best_confusion,
    best_predictions,
    existing_dir,
    load_study_dir,
    metric_label,
    nested,
    objective_label,
    selection,
)

COMPARISON_HEADERS = ("head", "trials (complete / pruned / failed)", "best trial",
                      "best trial value", "best model", "seeds", "seed mean", "seed std",
                      "95% interval", "epochs saved by pruning")
TEST_HEADERS = ("head A", "head B", "test", "statistic", "p-value", "difference (A - B)",
                "A right, B wrong", "B right, A wrong", "significant", "alpha", "basis")


def build_report(study_dir: Path, storage: str | None = None) -> Path:
    """Write `<study_dir>/report/` (PNGs + self-contained index.html); return index.html's path.

    `storage` overrides where the Optuna studies are read from (default: study.db or journal.log
    in the study directory, else the storage recorded in config.json).
    """
    study_dir = existing_dir(study_dir)
    study = load_study_dir(study_dir, storage)
    if not study.heads and not study.summary:
        raise PoolbertError(f"{study_dir}: no study found (no heads/, summary.json, trials.csv "
                            "or Optuna storage with this study's trials)")
    folder = StudyDir(study_dir).report
    with report_page(folder, f"poolbert report: {_study_title(study)}") as page:
        _header(study, page)
        page.add('<h2 id="protocol">Protocol</h2>')
        page.add("".join(f"<p>{esc(p)}</p>" for p in protocol_text(study)))
        _comparison_section(study, page)
        for head in study.heads.values():
            _head_section(study, head, page)
        _config_section(study, page)
    return folder / INDEX


def _study_title(study: StudyData) -> str:
    return str(study.config.get("study_name") or study.path.resolve().name)


def _header(study: StudyData, page: Page) -> None:
    heads = list(study.heads)
    page.add(f"<h1>poolbert study report: {esc(_study_title(study))}</h1>")
    task = study.summary.get("task") or nested(study.config, "data", "task")
    model = study.summary.get("model") or nested(study.config, "model", "model_name_or_path")
    page.add(f'<p class="meta">Task: {esc(task or "custom data")} · encoder: {esc(model or "?")} · '
             f"heads: {esc(', '.join(heads) or 'none')}</p>")
    page.add(generated_line(study.source))
    links = ['<a href="#protocol">Protocol</a>', '<a href="#comparison-section">Comparison</a>']
    links += [f'<a href="#head-{esc(safe_name(h))}">{esc(h)}</a>' for h in heads]
    links.append('<a href="#config">Configuration</a>')
    page.add("<nav>" + " ".join(links) + "</nav>")
    for text in study.notes:
        page.add(note(text))


# ---------------------------------------------------------------------------------------------
# Protocol
# ---------------------------------------------------------------------------------------------

def protocol_text(study: StudyData) -> list[str]:
    """The study's protocol in plain sentences, from config.json and summary.json."""
    config, summary = study.config, study.summary
    sentences = [_trials_sentence(study)]
    space = config.get("space")
    if space:
        sentences.append("Search space: " + describe_space(space) + ".")
    described = summary.get("select_on_description") or summary.get("selection")
    if described:
        sentences.append(f"Trials were scored on: {str(described).rstrip('.')}.")
    n_eval = summary.get("n_eval")
    seeds = _seed_counts(summary)
    if seeds:
        examples = f" ({n_eval} examples)" if n_eval else ""
        sentences.append(
            f"The best hyperparameters of each head were re-trained with {seeds} different "
            f"seeds and evaluated on the validation set{examples}; "
            "the comparison table gives the best trial's value, the seed mean ± standard "
            "deviation and the 95% interval of the mean across seeds (summary.json).")
    comparisons = summary.get("comparisons") or []
    if comparisons:
        tests = sorted({str(c.get("test", "a paired test")) for c in comparisons})
        alpha = comparisons[0].get("alpha")
        sentences.append(
            f"Heads were compared in pairs with {', '.join(tests)} on the per-example "
            "predictions of their best models on the same validation examples"
            f"{f' (significance level alpha = {alpha})' if alpha is not None else ''}.")
    sentences.append(f"Figures were drawn from {study.source} and the saved run files; "
                     "hyperparameter importances use Optuna's fANOVA evaluator unless a figure "
                     "says otherwise.")
    return sentences


def _trials_sentence(study: StudyData) -> str:
    """How the heads were tuned: studies, trials, sampler and pruner, intermediate values."""
    config = study.config
    n_trials = config.get("n_trials")
    recorded = ", ".join(f"{h} {len(d.trials)}" for h, d in study.heads.items())
    trials_text = (f"{n_trials} trials requested per head (recorded: {recorded})"
                   if n_trials is not None else f"trials per head: {recorded}")
    study_name = config.get("study_name")
    naming = f' (named "{study_name}-<head>")' if study_name else ""
    sampler = config.get("sampler")
    pruner = config.get("pruner")
    tools = ", ".join(part for part in (
        f"sampler: {_describe(sampler)}" if sampler else "",
        f"pruner: {_describe(pruner)}" if pruner else "") if part)
    return (f"Each pooling head ({', '.join(study.heads) or 'none'}) was tuned in its own Optuna "
            f"study{naming}, {trials_text}{'; ' + tools if tools else ''}. Every trial fine-tuned "
            f"the encoder with the sampled hyperparameters and reported the "
            f"{objective_label(study)} after each epoch as an intermediate value, so that the "
            "pruner could stop unpromising trials early; pruned trials are shown with their last "
            "reported value.")


def describe_space(space: Any) -> str:
    """tune's {head: {"n_trials", "params": {name: {type, low, high, log | choices}}}} in words."""
    if not isinstance(space, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("params"), dict) for v in space.values()):
        return _describe(space)
    parts = []
    for head, head_space in space.items():
        params = "; ".join(f"{name} {_describe_param(p)}"
                           for name, p in head_space["params"].items())
        trials = head_space.get("n_trials")
        parts.append(f"{head}" + (f" ({trials} trials)" if trials else "") + f": {params}")
    return " | ".join(parts)


def _describe_param(param: Any) -> str:
    if not isinstance(param, dict):
        return _describe(param)
    if "choices" in param:
        return "one of " + ", ".join(str(c) for c in param["choices"])
    if "low" in param and "high" in param:
        scale = ", log scale" if param.get("log") else ""
        step = f", step {param['step']}" if param.get("step") is not None else ""
        return (f"{param.get('type', 'float')} in [{_fmt_param(param['low'])}, "
                f"{_fmt_param(param['high'])}]{scale}{step}")
    return _describe(param)


def _describe(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


def _fmt_param(value: Any) -> str:
    return fmt_number(value, small=1e-2)  # a learning rate of 2e-05 is not 0.0000


def _seed_counts(summary: dict) -> str:
    counts = sorted({len(h.get("seeds") or head_seed_values(h))
                     for h in (summary.get("heads") or {}).values()} - {0})
    return " or ".join(str(c) for c in counts)


# ---------------------------------------------------------------------------------------------
# Comparison across heads
# ---------------------------------------------------------------------------------------------

def comparison_rows(summary: dict, order: list[str]) -> list[list[str]]:
    """Rows of the comparison table (numbers from summary.json, formatted by fmt_number)."""
    heads = summary.get("heads") or {}
    rows = []
    for name in [h for h in order if h in heads] + [h for h in heads if h not in order]:
        h = heads[name]
        ci = h.get("ci95")
        interval = f"[{fmt_number(ci[0])}, {fmt_number(ci[1])}]" if ci else "–"
        trials = (f"{fmt_number(h.get('n_trials'))} ({fmt_number(h.get('n_complete'))} / "
                  f"{fmt_number(h.get('n_pruned'))} / {fmt_number(h.get('n_failed'))})")
        rows.append([name, trials, fmt_number(h.get("best_trial")), fmt_number(h.get("best_value")),
                     fmt_number(head_dev_value(h)),
                     fmt_number(len(head_seed_values(h))), fmt_number(h.get("mean")),
                     fmt_number(h.get("std")), interval,
                     fmt_number(h.get("epochs_saved_by_pruning"))])
    return rows


def fmt_p(value: Any) -> str:
    if isinstance(value, int | float) and 0 <= value < 1e-4:
        return "<0.0001"
    return fmt_number(value)


def paired_test_rows(summary: dict) -> list[list[str]]:
    """Rows of the paired-tests table (numbers from summary.json's comparisons)."""
    return [[str(c.get("a")), str(c.get("b")), str(c.get("test", "")),
             fmt_number(c.get("statistic")), fmt_p(c.get("p_value")),
             fmt_number(c.get("difference")),
             fmt_number(c.get("a_correct_b_wrong")), fmt_number(c.get("b_correct_a_wrong")),
             fmt_number(c.get("significant")), fmt_number(c.get("alpha")),
             str(c.get("basis") or "–")]
            for c in summary.get("comparisons") or []]


def _comparison_section(study: StudyData, page: Page) -> None:
    page.add('<h2 id="comparison-section">Comparison across heads</h2>')
    rows = comparison_rows(study.summary, list(study.heads))
    value = metric_label(study.summary.get("metric") or "eval_accuracy").removeprefix(
        "validation ")
    if rows:
        page.add(f"<p>All values are {esc(value)} values, from summary.json. \"Best trial "
                 f"value\" is the best trial's objective ({esc(objective_label(study))}); "
                 f"\"best model\" is that model's {esc(value)} on the validation set; seed "
                 f"statistics are the validation {esc(value)} of the re-trainings with the best "
                 "hyperparameters.</p>")
        page.add(table(COMPARISON_HEADERS, rows, "comparison"))
    else:
        page.add(note("No per-head results in summary.json: no comparison table."))
    _tests_table(study, page)
    params = _best_params_rows(study)
    if params:
        page.add("<h3>Best hyperparameters per head</h3>")
        page.add(table(["hyperparameter", *study.heads], params, "best-params"))
    page.figure("heads_accuracy.png", f"{value[:1].upper() + value[1:]} per head: each seed "
                "re-training (grey), the seed mean with its 95% interval (black) and the best "
                "trial's model (red diamond).",
                lambda p: plot_head_accuracy(get_head_accuracy_info(study), p))
    problem_type = study.summary.get("problem_type", "single_label")
    if problem_type == "single_label":
        panels = [(h, best_confusion(d, selection(study))) for h, d in study.heads.items()]
        page.figure("confusion_matrices.png", "Confusion matrices of the best model of each "
                    "head (each panel names its evaluation set).",
                    lambda p: plot_confusions(get_confusion_info(panels), p))
    if problem_type != "regression":
        page.figure("reliability.png", "Reliability diagrams of the best model of each head on "
                    "the validation set, before and after temperature scaling.",
                    lambda p: plot_reliability(get_reliability_info(
                        [best_predictions(d) for d in study.heads.values()]), p))


def _tests_table(study: StudyData, page: Page) -> None:
    tests = paired_test_rows(study.summary)
    if tests:
        page.add("<h3>Paired tests between heads</h3>")
        page.add(table(TEST_HEADERS, tests, "tests"))
    elif len(study.heads) < 2:
        page.add(note("This study has a single head: there is no pair of heads to test."))
    else:
        page.add(note("summary.json records no paired tests between heads."))


def _best_params(study: StudyData, head: HeadData) -> dict:
    from_summary = ((study.summary.get("heads") or {}).get(head.name) or {}).get("best_params")
    if from_summary:
        return from_summary
    if head.best_json and head.best_json.get("params"):
        return head.best_json["params"]
    best = head.best_trial()
    return best.params if best else {}


def _best_params_rows(study: StudyData) -> list[list[str]]:
    per_head = {h: _best_params(study, d) for h, d in study.heads.items()}
    names = list(dict.fromkeys(p for params in per_head.values() for p in params))
    return [[p, *(_fmt_param(per_head[h].get(p)) for h in study.heads)] for p in names]


# ---------------------------------------------------------------------------------------------
# One section per head
# ---------------------------------------------------------------------------------------------

def _head_section(study: StudyData, head: HeadData, page: Page) -> None:
    metric = objective_label(study)
    safe = safe_name(head.name)
    page.add(f'<h2 id="head-{esc(safe)}">Head: {esc(head.name)}</h2>')
    _trial_counts(head, page)
    page.figure(f"{safe}_history.png", f"Optimisation history of {head.name} (cf. report fig. 1).",
                lambda p: plot_history(get_history_info(head, metric), p))
    page.figure(f"{safe}_importances.png", f"Hyperparameter importances of {head.name} "
                "(cf. report fig. 2).", lambda p: _importances(head, p))
    page.figure(f"{safe}_slices.png", f"Slice plots of {head.name}: objective against each "
                "hyperparameter (cf. report fig. 3).",
                lambda p: plot_slices(get_slices_info(head, metric), p))
    held_out = selection(study) == "holdout"
    scored_on = (" (\"validation\" here is the held-out slice of train the trials were scored "
                 "on)" if held_out else "")
    page.figure(f"{safe}_loss_curve.png", f"Training loss per step, validation loss and accuracy "
                f"per epoch of the best {head.name} model (cf. report figs. 4, 5, 8){scored_on}.",
                lambda p: _best_loss_curve(study, head, p, held_out))
    page.figure(f"{safe}_intermediate.png", f"The {metric} per epoch reported by every "
                f"{head.name} trial; pruned trials stop early (cross).",
                lambda p: plot_intermediate(get_intermediate_info(head, metric), p))
    page.figure(f"{safe}_parallel.png", f"Parallel coordinates of the complete {head.name} "
                "trials.", lambda p: plot_parallel(get_parallel_info(head, metric), p))
    failed = [[str(t.number), t.fail_reason or "(no reason recorded)"]
              for t in head.by_state("FAIL")]
    if failed:
        page.add("<h3>Failed trials</h3>" + table(["trial", "reason"], failed))


def _trial_counts(head: HeadData, page: Page) -> None:
    """How many trials ended how, and a note when too few completed for some figures."""
    states = {s: len(head.by_state(s)) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    page.add(f"<p>{plural(len(head.trials), 'trial')}: {states['COMPLETE']} complete, "
             f"{states['PRUNED']} pruned, {states['FAIL']} failed"
             + (f", {states['RUNNING']} still running" if states["RUNNING"] else "")
             + f"; direction: {esc(head.direction)}.</p>")
    if head.trials and not states["COMPLETE"]:
        page.add(note("No trial of this head completed, so there is no best trial."))
    elif states["COMPLETE"] == 1:
        page.add(note("Only one trial completed: importances, slice plots and parallel "
                      "coordinates need at least 2 complete trials."))


def _importances(head: HeadData, path: Path) -> tuple[Path, str]:
    """The figure, and the evaluator that computed it (for the caption)."""
    info = get_importances_info(head)
    return plot_importances(info, path), info.evaluator


def _best_loss_curve(study: StudyData, head: HeadData, path: Path, held_out: bool) -> Path:
    expected = StudyDir(study.path).head(head.name).best.history_file.relative_to(study.path)
    history = run_history(head.best_run, str(expected))
    number = (head.best_json or {}).get("trial_number")
    title = f"best {head.name} model" + (f" (trial #{number})" if number is not None else "")
    metrics = head.best_run.read_metrics() if head.best_run else {}
    return plot_loss_curve(history, path, title + (", evaluated on holdout" if held_out else ""),
                           metrics.get("metric"), metrics.get("problem_type"))


def _config_section(study: StudyData, page: Page) -> None:
    page.add('<h2 id="config">Configuration</h2>')
    if study.config:
        page.add("<p>The study's config.json (base run settings and tune settings):</p>")
        page.add(pre_json(study.config))
    else:
        page.add(note("config.json is missing from the study directory."))
    for name, head in study.heads.items():
        run = head.best_run
        if run is not None and run.config_file.is_file():
            page.add(f"<details><summary>Run config of the best {esc(name)} model</summary>"
                     f"{pre_json(run.read_config())}</details>")
