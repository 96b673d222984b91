"""The study report: `build_report(study_dir)` writes `<study_dir>/report/`.

Sections in page order: the header and notes, the verdict (the findings summary.md and the model
card open with too), the protocol in words, the comparison across heads
(tables from summary.json, per-head accuracy, confusion matrices), one section per head (its
figures and failed trials), and the configuration.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import PoolbertError
from ..layout import StudyDir
from ..text import plural
from ..tuning.protocol import findings_text, protocol_text
from ..tuning.results import HeadResult, StudyResult
from ..tuning.tables import Table, hyperparameter_table, study_tables
from ..tuning.tables import param as fmt_param
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


def build_report(study_dir: Path, storage: str | None = None) -> Path:
    """Write `<study_dir>/report/` (PNGs + self-contained index.html); return index.html's path.

    `storage` overrides where the Optuna studies are read from (default: study.db or journal.log
    in the study directory, else the storage recorded in config.json).
    """
    study_dir = existing_dir(study_dir)
    study = load_study_dir(study_dir, storage)
    if not study.heads and study.result is None:
        raise PoolbertError(f"{study_dir}: no study found (no heads/, summary.json, trials.csv "
                            "or Optuna storage with this study's trials)")
    folder = StudyDir(study_dir).report
    with report_page(folder, f"poolbert report: {_study_title(study)}") as page:
        _header(study, page)
        _verdict_section(study, page)
        _protocol_section(study, page)
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
    result = study.result
    task = (result and result.task) or nested(study.config, "data", "task")
    model = (result and result.model) or nested(study.config, "model", "model_name_or_path")
    page.add(f'<p class="meta">Task: {esc(task or "custom data")} · encoder: {esc(model or "?")} · '
             f"heads: {esc(', '.join(heads) or 'none')}</p>")
    page.add(generated_line(study.source))
    links = ['<a href="#protocol">Protocol</a>', '<a href="#comparison-section">Comparison</a>']
    if study.result is not None and study.result.verdict:
        links.insert(0, '<a href="#verdict">Verdict</a>')
    links += [f'<a href="#head-{esc(safe_name(h))}">{esc(h)}</a>' for h in heads]
    links.append('<a href="#config">Configuration</a>')
    page.add("<nav>" + " ".join(links) + "</nav>")
    for text in study.notes:
        page.add(note(text))


# ---------------------------------------------------------------------------------------------
# Protocol
# ---------------------------------------------------------------------------------------------

def _verdict_section(study: StudyData, page: Page) -> None:
    """The verdict, the baseline, the power and the planning line, before anything else (the
    words summary.md and the model card open with); none for a study without a verdict."""
    found = findings_text(study.result) if study.result else []
    if found:
        page.add('<h2 id="verdict">Verdict</h2>' + "".join(f"<p>{esc(p)}</p>" for p in found))


def _protocol_section(study: StudyData, page: Page) -> None:
    """The study's protocol (the words summary.md and the model card print too), then what
    this page's figures were drawn from."""
    page.add('<h2 id="protocol">Protocol</h2>')
    shared = protocol_text(study.result) if study.result else []
    page.add("".join(f"<p>{esc(p)}</p>" for p in [*shared, *figures_text(study)]))


def figures_text(study: StudyData) -> list[str]:
    """What the figures show and where they come from: the trials recorded, the search space
    in config.json, the storage, the importance evaluator."""
    recorded = ", ".join(f"{h} {len(d.trials)}" for h, d in study.heads.items()) or "none"
    sentences = [f"Trials recorded per head: {recorded}. Every trial reported its "
                 f"{objective_label(study)} after each epoch as an intermediate value, so that "
                 "the pruner could stop unpromising trials early; pruned trials are shown with "
                 "their last reported value."]
    space = study.config.get("space")
    if space:
        sentences.append("Search space in detail (config.json): " + describe_space(space) + ".")
    sentences.append(f"Figures were drawn from {study.source} and the saved run files; "
                     "hyperparameter importances use Optuna's fANOVA evaluator unless a figure "
                     "says otherwise.")
    return sentences


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
        return (f"{param.get('type', 'float')} in [{fmt_param(param['low'])}, "
                f"{fmt_param(param['high'])}]{scale}{step}")
    return _describe(param)


def _describe(value: Any) -> str:
    if isinstance(value, dict | list):
        return json.dumps(value, default=str)
    return str(value)


# ---------------------------------------------------------------------------------------------
# Comparison across heads
# ---------------------------------------------------------------------------------------------

def html_table(found: Table) -> str:
    """A study table (tuning.tables) as HTML: a heading, the table or the note saying why it
    is empty, and its note."""
    if not found.rows:
        return f"<h3>{esc(found.title[:1].upper() + found.title[1:])}</h3>" + note(found.note)
    return (f"<h3>{esc(found.title[:1].upper() + found.title[1:])}</h3>"
            + table(found.headers, found.rows, found.key)
            + (f"<p>{esc(found.note)}</p>" if found.note else ""))


def _comparison_section(study: StudyData, page: Page) -> None:
    page.add('<h2 id="comparison-section">Comparison across heads</h2>')
    order = list(study.heads)
    if study.result is not None and study.result.heads:
        for found in study_tables(study.result, order):
            page.add(html_table(found))
    else:
        page.add(note("No per-head results in summary.json: no comparison table."))
        params = hyperparameter_table(_params_from_runs(study), order)
        if params.headers[1:]:
            page.add(html_table(params))
    label = metric_label(study.result.metric if study.result else "eval_accuracy")
    value = label.removeprefix("validation ")
    page.figure("heads_accuracy.png", f"{value[:1].upper() + value[1:]} per head: each seed "
                "re-training (grey), the seed mean with its 95% interval (black), the best "
                "trial's model (red diamond) and the baseline (dashed line); a head that does not "
                "beat the baseline by the primary test is marked so under its name.",
                lambda p: plot_head_accuracy(get_head_accuracy_info(study), p))
    problem_type = study.result.problem_type if study.result else "single_label"
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


def _params_from_runs(study: StudyData) -> StudyResult:
    """Without summary.json (an unfinished study): each head's best settings from best.json,
    else from its best trial, for the hyperparameter table."""
    heads = {}
    for name, head in study.heads.items():
        best = head.best_trial()
        params = (head.best_json or {}).get("params") or (best.params if best else None)
        if params:
            heads[name] = HeadResult(best_params=params,
                                     best_trial=(head.best_json or {}).get("trial_number"))
    return StudyResult(heads=heads)


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
