"""Figures and tables from saved results (the only module that imports plotting).

`build_report(study_dir)` reads what `poolbert tune` wrote (the Optuna storage, trials.csv,
heads/<head>/best/, summary.json, config.json) and writes `report/`: one PNG per figure and a
self-contained `index.html` that embeds them as data URIs. `build_run_report(run_dir)` does the
same for a single `poolbert train` run. Nothing is retrained; a study from another machine works.
"""

from __future__ import annotations

import base64
import csv
import html
import json
import math
import re
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.ticker  # noqa: E402
import numpy as np  # noqa: E402

from . import __version__  # noqa: E402
from .errors import PoolbertError  # noqa: E402
from .files import atomic_dir, read_json, read_jsonl  # noqa: E402

FANOVA_DESCRIPTION = ("fANOVA (optuna.importance.FanovaImportanceEvaluator, 64 trees, seed 0), "
                      "Optuna's default evaluator")
MDI_DESCRIPTION = ("mean decrease in impurity of a random forest "
                   "(optuna.importance.MeanDecreaseImpurityImportanceEvaluator, seed 0)")
METRIC_LABELS = {"eval_accuracy": "validation accuracy", "eval_f1": "validation F1",
                 "eval_loss": "validation loss"}


class _Skip(Exception):
    """A figure that cannot be drawn from the data at hand; the message becomes the page's note."""


# ---------------------------------------------------------------------------------------------
# Loading what tune and train wrote
# ---------------------------------------------------------------------------------------------

@dataclass
class TrialRecord:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None  # the objective; for a pruned trial its last reported value
    params: dict[str, Any]
    distributions: dict[str, Any]  # optuna distributions (inferred when read from trials.csv)
    intermediate: dict[int, float] = field(default_factory=dict)
    fail_reason: str = ""


@dataclass
class HeadData:
    name: str
    trials: list[TrialRecord]
    direction: str = "maximize"
    best_json: dict | None = None
    best_dir: Path | None = None

    def by_state(self, state: str) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == state]

    def best_trial(self) -> TrialRecord | None:
        done = self.by_state("COMPLETE")
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t.value)


@dataclass
class StudyData:
    path: Path
    config: dict
    summary: dict
    heads: dict[str, HeadData]
    source: str  # where the trials came from, in words
    notes: list[str] = field(default_factory=list)


def load_study_dir(study_dir: Path, storage: str | None = None) -> StudyData:
    """Everything the report needs from a study directory; missing parts become notes."""
    config = _read_optional_json(study_dir / "config.json")
    summary = _read_optional_json(study_dir / "summary.json")
    notes: list[str] = []
    if not summary:
        notes.append("summary.json is missing: the comparison table and seed statistics are not "
                     "available (the study may not have finished).")
    known = _known_heads(study_dir, config, summary)
    try:
        trials, directions, source = _trials_from_storage(study_dir, config, known, storage)
    except _Skip as exc:
        notes.append(str(exc))
        trials, directions, source = _trials_from_csv(study_dir / "trials.csv"), {}, "trials.csv"
        if not trials:
            notes.append("trials.csv is missing or empty: no per-trial figures.")
    order = _ordered(list(known) + list(trials))
    heads = {}
    for name in order:
        head_dir = study_dir / "heads" / name
        best_dir = head_dir / "best"
        heads[name] = HeadData(
            name=name, trials=trials.get(name, []), direction=directions.get(name, "maximize"),
            best_json=_read_optional_json(head_dir / "best.json") or None,
            best_dir=best_dir if best_dir.is_dir() else None,
        )
    return StudyData(study_dir, config, summary, heads, source, notes)


def _read_optional_json(path: Path) -> dict:
    return read_json(path) if path.is_file() else {}


def _ordered(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _known_heads(study_dir: Path, config: dict, summary: dict) -> list[str]:
    names = list(config.get("poolings") or [])
    names += list((summary.get("heads") or {}).keys())
    heads_dir = study_dir / "heads"
    if heads_dir.is_dir():
        names += sorted(p.name for p in heads_dir.iterdir() if p.is_dir())
    return _ordered(names)


def _open_storage(study_dir: Path, config: dict, storage: str | None) -> tuple[Any, str]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    db, journal = study_dir / "study.db", study_dir / "journal.log"
    if storage is None and db.is_file():
        storage = f"sqlite:///{db.resolve()}"
    elif storage is None and journal.is_file():
        storage = str(journal)
    elif storage is None and config.get("storage"):
        storage = str(config["storage"])
    if storage is None:
        raise _Skip("No Optuna storage found (study.db or journal.log); figures are drawn from "
                    "trials.csv, which has no per-epoch intermediate values.")
    try:
        if storage.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in storage:
            storage = f"sqlite:///{Path(storage).resolve()}"
        if "://" not in storage or storage.startswith("journal"):
            from optuna.storages.journal import JournalFileBackend

            path = storage.split("://", 1)[-1]
            if not Path(path).is_file():
                raise FileNotFoundError(path)
            opened = optuna.storages.JournalStorage(JournalFileBackend(path))
        else:
            from .tune.storage import sqlalchemy_url

            opened = optuna.storages.RDBStorage(sqlalchemy_url(storage), skip_table_creation=True)
    except Exception as exc:  # any driver's error: the report falls back to trials.csv
        raise _Skip(f"Could not open the Optuna storage {_redact(storage)} "
                    f"({type(exc).__name__}: {_redact_error(exc, storage)}); figures are drawn "
                    "from trials.csv.") from None
    return opened, _redact(storage)


def _redact(url: str) -> str:
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _redact_error(exc: BaseException, url: str) -> str:
    """The first line of a driver's error, with the storage password (if any) masked."""
    text = _redact((str(exc).strip().splitlines() or [type(exc).__name__])[0])
    match = re.search(r"://[^:/@]+:([^@]*)@", url)
    return text.replace(match.group(1), "***") if match and match.group(1) else text


def _trials_from_storage(study_dir: Path, config: dict, known: list[str], storage: str | None
                         ) -> tuple[dict[str, list[TrialRecord]], dict[str, str], str]:
    import optuna

    opened, description = _open_storage(study_dir, config, storage)
    try:
        names = optuna.study.get_all_study_names(opened)
    except Exception as exc:
        raise _Skip(f"Could not read studies from {description} ({type(exc).__name__}: {exc}); "
                    "figures are drawn from trials.csv.") from None
    trials, directions = {}, {}
    for study_name, head in _heads_of_studies(names, config.get("study_name"), known).items():
        study = optuna.load_study(study_name=study_name, storage=opened)
        directions[head] = "minimize" if study.direction.name == "MINIMIZE" else "maximize"
        trials[head] = [_record_from_frozen(t) for t in study.get_trials(deepcopy=False)]
    if not trials:
        raise _Skip(f"No study of this run found in {description}; figures are drawn from "
                    "trials.csv.")
    return trials, directions, f"Optuna storage {description}"


def _heads_of_studies(names: list[str], prefix: str | None, known: list[str]) -> dict[str, str]:
    """Map "<study_name>-<head>" study names to heads; studies of other runs are left out."""
    found = {}
    for name in names:
        if prefix:
            if name.startswith(prefix + "-"):
                found[name] = name[len(prefix) + 1:]
            continue
        head = next((h for h in known if name.endswith("-" + h) or name == h), None)
        if head is not None or not known:
            found[name] = head or name
    return found


def _record_from_frozen(trial: Any) -> TrialRecord:
    state = trial.state.name
    value = trial.value if trial.values is not None and len(trial.values) == 1 else None
    if state == "PRUNED" and value is None and trial.intermediate_values:
        value = trial.intermediate_values[max(trial.intermediate_values)]
    return TrialRecord(
        number=trial.number, state=state, value=value, params=dict(trial.params),
        distributions=dict(trial.distributions),
        intermediate={int(k): float(v) for k, v in trial.intermediate_values.items()},
        fail_reason=str(trial.user_attrs.get("fail_reason", "")),
    )


def _trials_from_csv(path: Path) -> dict[str, list[TrialRecord]]:
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    heads: dict[str, list[dict]] = {}
    for row in rows:
        heads.setdefault(row.get("head") or "study", []).append(row)
    return {head: _records_from_rows(head_rows) for head, head_rows in heads.items()}


def _records_from_rows(rows: list[dict]) -> list[TrialRecord]:
    names = [c for c in rows[0] if c.startswith("params_")]
    columns = {c[len("params_"):]: [_parse_cell(r.get(c)) for r in rows] for c in names}
    distributions = {p: _infer_distribution(v) for p, v in columns.items()}
    records = []
    for i, row in enumerate(rows):
        params = {p: vals[i] for p, vals in columns.items() if vals[i] is not None}
        records.append(TrialRecord(
            number=int(float(row.get("number") or i)), state=(row.get("state") or "").upper(),
            value=_parse_float(row.get("value")), params=params,
            distributions={p: distributions[p] for p in params if distributions[p] is not None},
            fail_reason=row.get("fail_reason") or "",
        ))
    return records


def _parse_cell(text: str | None) -> Any:
    if text is None or text == "":
        return None
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def _parse_float(text: str | None) -> float | None:
    value = _parse_cell(text)
    return float(value) if isinstance(value, int | float) and math.isfinite(value) else None


def _infer_distribution(values: list[Any]) -> Any:
    """A distribution for a trials.csv column: numeric ranges, or the seen values as categories."""
    from optuna.distributions import (
        CategoricalDistribution,
        FloatDistribution,
        IntDistribution,
    )

    seen = [v for v in values if v is not None]
    if not seen:
        return None
    if all(isinstance(v, int | float) for v in seen):
        low, high = min(seen), max(seen)
        if all(isinstance(v, int) for v in seen):
            return IntDistribution(int(low), int(high))
        log = low > 0 and high / low >= 10  # a learning-rate-like range spans decades
        return FloatDistribution(float(low), float(high), log=log)
    return CategoricalDistribution(sorted({str(v) for v in seen}))


# ---------------------------------------------------------------------------------------------
# Figures (matplotlib, Agg); each raises _Skip with a note when the data cannot support it
# ---------------------------------------------------------------------------------------------

def plot_loss_curve(history: list[dict], path: Path, title: str = "") -> Path:
    """Training loss per optimiser step and validation loss/accuracy per epoch."""
    steps = [r for r in history if r["type"] == "step"]
    evals = [r for r in history if r["type"] == "eval"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot([r["epoch"] for r in steps], [r["loss"] for r in steps], lw=0.8, alpha=0.6,
            label="training loss (per step)")
    ax.plot([r["epoch"] for r in evals], [r["eval_loss"] for r in evals], "o-",
            label="validation loss (per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    acc_ax = ax.twinx()
    acc_ax.plot([r["epoch"] for r in evals], [r["eval_accuracy"] for r in evals], "s--",
                color="tab:green", label="validation accuracy")
    acc_ax.set_ylabel("validation accuracy (fraction correct)")
    acc_ax.set_ylim(0, 1)
    handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8)
    ax.set_title(f"Loss curve{': ' + title if title else ''}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _metric_label(metric: str | None) -> str:
    return METRIC_LABELS.get(metric or "", metric or "objective value")


def _axis_label(label: str) -> str:
    return f"{label} (fraction correct)" if "accuracy" in label else label


def plot_history(head: HeadData, path: Path, label: str) -> Path:
    """Optimisation history (report fig. 1): objective per trial and the best so far."""
    done = head.by_state("COMPLETE")
    pruned = [t for t in head.by_state("PRUNED") if t.value is not None]
    failed = head.by_state("FAIL")
    if not done and not pruned:
        raise _Skip("The optimisation history needs at least one complete or pruned trial; "
                    f"this head has {len(head.trials)} trial(s), none with a value.")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot([t.number for t in done], [t.value for t in done], "o", color="tab:blue",
            label=f"complete trial ({len(done)})")
    if pruned:
        ax.plot([t.number for t in pruned], [t.value for t in pruned], "x", color="tab:orange",
                ms=8, label=f"pruned trial, last reported value ({len(pruned)})")
    if done:
        pick = np.maximum if head.direction == "maximize" else np.minimum
        best = pick.accumulate([t.value for t in done])
        ax.step([t.number for t in done], best, where="post", color="tab:red",
                label="best so far")
    for i, t in enumerate(failed):
        ax.axvline(t.number, color="grey", ls=":", lw=1,
                   label=f"failed trial ({len(failed)})" if i == 0 else None)
    numbers = [t.number for t in head.trials]
    ax.set_xlim(min(numbers) - 0.5, max(numbers) + 0.5)
    ax.set_xlabel("trial number")
    ax.set_ylabel(_axis_label(label))
    ax.set_title(f"Optimisation history: {head.name} ({head.direction})")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def param_importances(head: HeadData) -> tuple[dict[str, float], str]:
    """Optuna's importances of the varying hyperparameters, and the evaluator used, in words."""
    import optuna

    done = [t for t in head.by_state("COMPLETE") if t.value is not None]
    if len(done) < 2:
        raise _Skip("Hyperparameter importances need at least 2 complete trials; this head has "
                    f"{len(done)}.")
    names = _param_names(done)
    varying = [p for p in names if len({repr(t.params.get(p)) for t in done}) > 1
               and all(p in t.params for t in done)]
    left_out = [p for p in names if p not in varying]
    if not varying:
        raise _Skip("Hyperparameter importances need hyperparameters that vary across complete "
                    "trials; none does here.")
    if len({t.value for t in done}) < 2:
        raise _Skip("Hyperparameter importances need the objective to vary; all "
                    f"{len(done)} complete trials have the same value.")
    study = optuna.create_study(direction=head.direction)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.add_trials([optuna.trial.create_trial(
            value=t.value, params={p: t.params[p] for p in varying},
            distributions={p: t.distributions[p] for p in varying}) for t in done])
        evaluators = ((optuna.importance.FanovaImportanceEvaluator(seed=0), FANOVA_DESCRIPTION),
                      (optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0),
                       MDI_DESCRIPTION))
        errors = []
        for evaluator, description in evaluators:
            try:
                found = optuna.importance.get_param_importances(study, evaluator=evaluator)
            except (RuntimeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if errors:
                description += f" (fANOVA failed: {errors[0]})"
            if left_out:
                description += (f"; left out (constant or not in every complete trial): "
                                f"{', '.join(left_out)}")
            return found, description
    raise _Skip("Optuna could not compute importances: " + "; ".join(errors))


def _param_names(trials: list[TrialRecord]) -> list[str]:
    return _ordered([p for t in trials for p in t.params])


def plot_importances(head: HeadData, path: Path) -> tuple[Path, str]:
    """Hyperparameter importances (report fig. 2) as horizontal bars, largest on top."""
    importances, evaluator = param_importances(head)
    names = list(importances)[::-1]
    values = [importances[n] for n in names]
    fig, ax = plt.subplots(figsize=(8, max(2.8, 1.4 + 0.55 * len(names))), dpi=110)
    bars = ax.barh(names, values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in values], padding=3, fontsize=9)
    ax.set_xlim(0, max(1.0, max(values) * 1.15))
    ax.set_xlabel("importance (share of objective variance, sums to 1)")
    ax.set_ylabel("hyperparameter")
    short = "fANOVA" if evaluator.startswith("fANOVA") else "mean decrease impurity"
    n_done = len(head.by_state("COMPLETE"))
    ax.set_title(f"Hyperparameter importances: {head.name} ({short}, {n_done} complete trials)")
    ax.grid(axis="x", alpha=0.3)
    return _save(fig, path), evaluator


def _is_log(dist: Any) -> bool:
    return bool(getattr(dist, "log", False))


def _is_categorical(dist: Any) -> bool:
    return hasattr(dist, "choices")


def _axis_position(dist: Any, value: Any) -> float:
    """Where a value sits on a parameter's axis: its index for categories, else the value."""
    if _is_categorical(dist):
        choices = list(dist.choices)
        return float(choices.index(value) if value in choices else choices.index(str(value)))
    return float(value)


def plot_slices(head: HeadData, path: Path, label: str) -> Path:
    """Slice plots (report fig. 3): objective against each hyperparameter, one panel each."""
    done = [t for t in head.by_state("COMPLETE") if t.value is not None]
    if len(done) < 2:
        raise _Skip(f"Slice plots need at least 2 complete trials; this head has {len(done)}.")
    names = _param_names(done)
    if not names:
        raise _Skip("Slice plots need hyperparameters; the trials recorded none.")
    cols = min(len(names), 2)
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols + 1, 3.6 * rows + 0.5), dpi=110,
                             squeeze=False, layout="constrained")
    best = head.best_trial()
    scatter = None
    for ax, name in zip(axes.flat, names, strict=False):
        with_param = [t for t in done if name in t.params]
        dist = with_param[0].distributions.get(name)
        xs = [_axis_position(dist, t.params[name]) for t in with_param]
        scatter = ax.scatter(xs, [t.value for t in with_param], c=[t.number for t in with_param],
                             cmap="viridis", s=30, edgecolors="k", linewidths=0.3)
        if best is not None and name in best.params:
            ax.plot(_axis_position(dist, best.params[name]), best.value, "*", color="tab:red",
                    ms=14, label=f"best trial #{best.number}")
            ax.legend(fontsize=7, loc="lower right")
        if _is_categorical(dist):
            ax.set_xticks(range(len(dist.choices)), [str(c) for c in dist.choices])
            ax.set_xlim(-0.5, len(dist.choices) - 0.5)
        elif _is_log(dist):
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no overlapping labels
        constant = len({repr(t.params[name]) for t in with_param}) == 1
        ax.set_xlabel(name + (" (log scale)" if _is_log(dist) else "")
                      + (" (constant in these trials)" if constant else ""))
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(f"Slice plots: {head.name} ({len(done)} complete trials; colour = trial number)")
    bar = fig.colorbar(scatter, ax=axes.ravel().tolist(), label="trial number", shrink=0.8)
    bar.ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    fig.savefig(path)  # constrained layout: no tight_layout
    plt.close(fig)
    return path


def plot_intermediate(head: HeadData, path: Path, label: str) -> Path:
    """Per-epoch values every trial reported to the pruner; pruned trials end in a cross."""
    reported = [t for t in head.trials if t.intermediate]
    if not reported:
        raise _Skip("No intermediate values were recorded (they live in the Optuna storage, not "
                    "in trials.csv).")
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    best = head.best_trial()
    labelled = set()
    for t in reported:
        steps = sorted(t.intermediate)
        values = [t.intermediate[s] for s in steps]
        if best is not None and t.number == best.number:
            style = {"color": "tab:red", "lw": 2.2, "zorder": 3, "label": f"best trial #{t.number}"}
        elif t.state == "PRUNED":
            style = {"color": "tab:orange", "lw": 1.2, "label": "pruned trial"}
        else:
            style = {"color": "tab:blue", "lw": 1.0, "alpha": 0.6,
                     "label": f"{t.state.lower()} trial"}
        if style["label"] in labelled:
            style["label"] = None
        labelled.add(style["label"])
        ax.plot(steps, values, marker=".", **style)
        if t.state == "PRUNED":
            ax.plot(steps[-1], values[-1], "x", color="tab:orange", ms=9, mew=2)
    ax.set_xlabel("epoch (step reported to the pruner)")
    ax.set_ylabel(_axis_label(label))
    n_pruned = len(head.by_state("PRUNED"))
    ax.set_title(f"Intermediate values: {head.name} ({_count(len(reported), 'trial')}, "
                 f"{n_pruned} pruned)")
    ax.xaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_parallel(head: HeadData, path: Path, label: str) -> Path:
    """Parallel coordinates: one vertical axis per hyperparameter plus the objective."""
    done = [t for t in head.by_state("COMPLETE") if t.value is not None]
    names = [p for p in _param_names(done) if all(p in t.params for t in done)]
    if len(done) < 2 or not names:
        raise _Skip("Parallel coordinates need at least 2 complete trials with the same "
                    f"hyperparameters; this head has {len(done)} complete trial(s).")
    dists = {p: done[0].distributions.get(p) for p in names}
    columns = [[_scaled(dists[p], t.params[p]) for t in done] for p in names]
    columns.append([t.value for t in done])
    labels = names + [label]
    norm = [_normalise(col) for col in columns]
    values = np.array([t.value for t in done])
    colours = plt.get_cmap("viridis")(_normalise(list(values)))
    fig, ax = plt.subplots(figsize=(max(8, 2.0 * len(labels)), 4.8), dpi=110)
    best = head.best_trial()
    for i, t in enumerate(done):
        ys = [col[i] for col in norm]
        if best is not None and t.number == best.number:
            ax.plot(range(len(labels)), ys, color="tab:red", lw=2.5, zorder=3,
                    label=f"best trial #{t.number}")
        else:
            ax.plot(range(len(labels)), ys, color=colours[i], lw=1.2, alpha=0.8)
    for x, (name, col) in enumerate(zip(labels, columns, strict=True)):
        ax.axvline(x, color="k", lw=0.8)
        dist = dists.get(name)
        for y, text in _axis_ticks(dist, col):
            ax.text(x + 0.03, y, text, fontsize=7, va="center")
    ax.set_xticks(range(len(labels)), labels, rotation=15)
    ax.set_yticks([0, 1], ["min", "max"])
    ax.set_ylabel("position on each axis (min to max)")
    ax.set_xlim(-0.2, len(labels) - 0.6)
    ax.set_title(f"Parallel coordinates: {head.name} ({len(done)} complete trials; "
                 "colour = objective)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12))
    return _save(fig, path)


def _scaled(dist: Any, value: Any) -> float:
    if _is_categorical(dist):
        return _axis_position(dist, value)
    return math.log10(value) if _is_log(dist) and value > 0 else float(value)


def _normalise(col: list[float]) -> list[float]:
    low, high = min(col), max(col)
    return [0.5 if high == low else (v - low) / (high - low) for v in col]


def _axis_ticks(dist: Any, col: list[float]) -> list[tuple[float, str]]:
    """Labels along one parallel-coordinates axis: categories, or the min and max values."""
    low, high = min(col), max(col)
    if _is_categorical(dist):
        used = sorted(set(col))
        return [(0.5 if high == low else (v - low) / (high - low), str(dist.choices[int(v)]))
                for v in used]
    unscale = (lambda v: 10 ** v) if _is_log(dist) else (lambda v: v)
    if high == low:
        return [(0.5, _fmt_param(unscale(low)))]
    return [(0.0, _fmt_param(unscale(low))), (1.0, _fmt_param(unscale(high)))]


def plot_head_accuracy(study: StudyData, path: Path) -> Path:
    """Per-head accuracy: seed runs, their mean with the 95% interval, and the best trial."""
    heads = study.summary.get("heads") or {}
    names = [h for h in study.heads if h in heads] or list(heads)
    if not names:
        raise _Skip("The per-head accuracy plot needs summary.json with per-head results.")
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(names) + 2.5), 4.5), dpi=110)
    rng = np.random.default_rng(0)  # jitter only
    drawn = set()

    def label(text: str) -> str | None:
        first = text not in drawn
        drawn.add(text)
        return text if first else None

    for x, name in enumerate(names):
        h = heads[name]
        seeds = [a for a in h.get("seed_accuracies") or [] if a is not None]
        if seeds:
            ax.plot(x + rng.uniform(-0.12, 0.12, len(seeds)), seeds, "o", color="grey",
                    alpha=0.6, ms=5, label=label("one seed re-training"))
        if h.get("mean") is not None:
            lo, hi = (h.get("ci95") or [h["mean"], h["mean"]])[:2]
            ax.errorbar(x, h["mean"], yerr=[[h["mean"] - lo], [hi - h["mean"]]], fmt="o",
                        color="k", capsize=6, ms=8, lw=2,
                        label=label("seed mean with 95% interval"))
        best = h.get("dev_accuracy_best", h.get("best_value"))
        if best is not None:
            ax.plot(x + 0.25, best, "D", mfc="none", color="tab:red", ms=8,
                    label=label("best trial's model"))
    ax.set_xticks(range(len(names)), names)
    ax.set_xlim(-0.6, len(names) - 0.4)
    ax.set_xlabel("pooling head")
    ax.set_ylabel(_axis_label(_metric_label(study.summary.get("metric") or "eval_accuracy")))
    n_eval = study.summary.get("n_eval")
    ax.set_title("Accuracy per head" + (f" (validation set, n = {n_eval})" if n_eval else ""))
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return _save(fig, path)


def plot_confusions(panels: list[tuple[str, dict]], path: Path,
                    title: str = "Confusion matrices of the best models") -> Path:
    """Confusion matrices (rows = true label) of the given runs' metrics.json, side by side."""
    panels = [(name, m) for name, m in panels if m.get("eval_confusion")]
    if not panels:
        raise _Skip("No confusion matrix found (metrics.json of the best runs lacks "
                    "eval_confusion).")
    fig, axes = plt.subplots(1, len(panels), figsize=(max(6.0, 4.6 * len(panels) + 0.6), 4.6),
                             dpi=110, squeeze=False)
    for ax, (name, metrics) in zip(axes.flat, panels, strict=True):
        matrix = np.asarray(metrics["eval_confusion"], dtype=float)
        labels = metrics.get("label_names") or [str(i) for i in range(len(matrix))]
        image = ax.imshow(matrix, cmap="Blues", vmin=0)
        row_sums = matrix.sum(axis=1, keepdims=True)
        share = np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0)
        for (i, j), count in np.ndenumerate(matrix):
            dark = count > matrix.max() * 0.6
            ax.text(j, i, f"{int(count)}\n({share[i, j]:.0%} of row)", ha="center", va="center",
                    fontsize=9, color="white" if dark else "black")
        ax.set_xticks(range(len(labels)), labels, rotation=20)
        ax.set_yticks(range(len(labels)), labels)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        acc = metrics.get("eval_accuracy")
        where = metrics.get("evaluated_on", "validation set")
        n = metrics.get("n_eval") or int(matrix.sum())
        ax.set_title(f"{name}" + (f": accuracy {acc:.4f}" if acc is not None else "")
                     + f"\n{where}, n = {n}", fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.75, label="examples")
    fig.suptitle(f"{title}\n(counts; rows = true label)", fontsize=11)
    return _save(fig, path)


# ---------------------------------------------------------------------------------------------
# Formatting helpers for the page
# ---------------------------------------------------------------------------------------------

def fmt_number(value: Any) -> str:
    """The page's one number format: 4 decimals for floats, ints as they are, '–' for none."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4f}"
    return str(value)


def fmt_p(value: Any) -> str:
    if isinstance(value, int | float) and 0 <= value < 1e-4:
        return "<0.0001"
    return fmt_number(value)


def _fmt_param(value: Any) -> str:
    if isinstance(value, float) and value != 0 and abs(value) < 1e-2:
        return f"{value:.3g}"
    return fmt_number(value)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _table(headers: list[str], rows: list[list[str]], table_id: str = "") -> str:
    ident = f' id="{_e(table_id)}"' if table_id else ""
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_e(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _note(text: str) -> str:
    return f'<p class="note">{_e(text)}</p>'


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "head"


@dataclass
class _Page:
    """The report folder being written: figures go to `folder`, HTML fragments to `parts`."""

    folder: Path
    parts: list[str] = field(default_factory=list)

    def add(self, fragment: str) -> None:
        self.parts.append(fragment)

    def figure(self, name: str, caption: str, draw: Any) -> str | None:
        """Draw a figure with `draw(path)`; embed it, or a note when it cannot be drawn."""
        path = self.folder / name
        try:
            result = draw(path)
        except _Skip as exc:
            self.add(_note(str(exc)))
            return None
        except Exception as exc:  # one broken figure must not cost the user the whole page
            plt.close("all")
            self.add(_note(f"Could not draw {name}: {type(exc).__name__}: {exc}"))
            return None
        extra = result[1] if isinstance(result, tuple) else None
        full_caption = caption + (f" Evaluator: {extra}." if extra else "")
        data = base64.b64encode(path.read_bytes()).decode("ascii")
        self.add(
            f'<figure><img src="data:image/png;base64,{data}" alt="{_e(caption)}">'
            f'<figcaption>{_e(full_caption)} <a href="{_e(name)}">{_e(name)}</a></figcaption>'
            "</figure>"
        )
        return extra


CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0 auto;
max-width:1100px;padding:1.5em;color:#222;line-height:1.45}
h1{margin-bottom:0.2em} h2{border-bottom:2px solid #ddd;padding-bottom:0.2em;margin-top:1.8em}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.92em}
th,td{border:1px solid #ccc;padding:0.3em 0.6em;text-align:left}
th{background:#f2f2f2} td{font-variant-numeric:tabular-nums}
figure{margin:1.2em 0} figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.88em;color:#555}
.note{background:#fff6d6;border-left:4px solid #e0b000;padding:0.5em 0.8em}
.meta{color:#666} pre{background:#f7f7f7;padding:0.8em;overflow-x:auto;font-size:0.85em}
nav a{margin-right:1em}
"""


def _html_document(title: str, body: list[str]) -> str:
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
            f"<title>{_e(title)}</title><style>{CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _generated_line(source: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return (f'<p class="meta">Generated {_e(stamp)} by poolbert {_e(__version__)} from the saved '
            f"files only ({_e(source)}); nothing was retrained.</p>")


# ---------------------------------------------------------------------------------------------
# The study report
# ---------------------------------------------------------------------------------------------

def build_report(study_dir: Path, storage: str | None = None) -> Path:
    """Write `<study_dir>/report/` (PNGs + self-contained index.html); return index.html's path.

    `storage` overrides where the Optuna studies are read from (default: study.db or journal.log
    in the study directory, else the storage recorded in config.json).
    """
    study_dir = _existing_dir(study_dir)
    study = load_study_dir(study_dir, storage)
    if not study.heads and not study.summary:
        raise PoolbertError(f"{study_dir}: no study found (no heads/, summary.json, trials.csv "
                            "or Optuna storage with this study's trials)")
    with atomic_dir(study_dir / "report", overwrite=True) as tmp:
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide the report from a web server or colleague
        page = _Page(tmp)
        _study_page(study, page)
        (tmp / "index.html").write_text(
            _html_document(f"poolbert report: {_study_title(study)}", page.parts),
            encoding="utf-8")
    return study_dir / "report" / "index.html"


def _existing_dir(path: Path | str) -> Path:
    path = Path(path)
    if not path.exists():
        raise PoolbertError(f"directory not found: {path}")
    if not path.is_dir():
        raise PoolbertError(f"not a directory: {path}")
    return path


def selection(study: StudyData) -> str | None:
    """"holdout" or "dev": which examples the trials were scored on."""
    found = study.summary.get("selection") or _nested(study.config, "tune", "select_on")
    for head in study.heads.values():
        found = found or (head.best_json or {}).get("selection")
    return found


def objective_label(study: StudyData) -> str:
    """The trials' objective in words: holdout accuracy under --select-on holdout."""
    label = _metric_label(study.summary.get("metric") or "eval_accuracy")
    return label.replace("validation", "holdout") if selection(study) == "holdout" else label


def _study_title(study: StudyData) -> str:
    return str(study.config.get("study_name") or study.path.resolve().name)


def _study_page(study: StudyData, page: _Page) -> None:
    heads = list(study.heads)
    page.add(f"<h1>poolbert study report: {_e(_study_title(study))}</h1>")
    task = study.summary.get("task") or _nested(study.config, "data", "task")
    model = study.summary.get("model") or _nested(study.config, "model", "model_name_or_path")
    page.add(f'<p class="meta">Task: {_e(task or "custom data")} · encoder: {_e(model or "?")} · '
             f"heads: {_e(', '.join(heads) or 'none')}</p>")
    page.add(_generated_line(study.source))
    links = ['<a href="#protocol">Protocol</a>', '<a href="#comparison-section">Comparison</a>']
    links += [f'<a href="#head-{_e(_safe_name(h))}">{_e(h)}</a>' for h in heads]
    links.append('<a href="#config">Configuration</a>')
    page.add("<nav>" + " ".join(links) + "</nav>")
    for note in study.notes:
        page.add(_note(note))
    page.add('<h2 id="protocol">Protocol</h2>')
    page.add("".join(f"<p>{_e(p)}</p>" for p in protocol_text(study)))
    _comparison_section(study, page)
    for head in study.heads.values():
        _head_section(study, head, page)
    _config_section(study, page)


def _nested(data: dict, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def protocol_text(study: StudyData) -> list[str]:
    """The study's protocol in plain sentences, from config.json and summary.json."""
    config, summary = study.config, study.summary
    heads = list(study.heads)
    metric = objective_label(study)
    n_trials = config.get("n_trials")
    counts = {h: len(d.trials) for h, d in study.heads.items()}
    sentences = []
    recorded = ", ".join(f"{h} {n}" for h, n in counts.items())
    trials_text = (f"{n_trials} trials requested per head (recorded: {recorded})"
                   if n_trials is not None else f"trials per head: {recorded}")
    study_name = config.get("study_name")
    naming = f' (named "{study_name}-<head>")' if study_name else ""
    sampler = config.get("sampler")
    pruner = config.get("pruner")
    tools = ", ".join(part for part in (
        f"sampler: {_describe(sampler)}" if sampler else "",
        f"pruner: {_describe(pruner)}" if pruner else "") if part)
    sentences.append(
        f"Each pooling head ({', '.join(heads) or 'none'}) was tuned in its own Optuna study"
        f"{naming}, {trials_text}{'; ' + tools if tools else ''}. Every trial fine-tuned the "
        f"encoder with the sampled hyperparameters and reported the {metric} after each epoch "
        "as an intermediate value, so that the pruner could stop unpromising trials early; "
        "pruned trials are shown with their last reported value.")
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


def _seed_counts(summary: dict) -> str:
    counts = sorted({len(h.get("seeds") or h.get("seed_accuracies") or [])
                     for h in (summary.get("heads") or {}).values()} - {0})
    return " or ".join(str(c) for c in counts)


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
                     fmt_number(h.get("dev_accuracy_best")),
                     fmt_number(len(h.get("seed_accuracies") or [])), fmt_number(h.get("mean")),
                     fmt_number(h.get("std")), interval,
                     fmt_number(h.get("epochs_saved_by_pruning"))])
    return rows


COMPARISON_HEADERS = ["head", "trials (complete / pruned / failed)", "best trial",
                      "best trial value", "best model accuracy", "seeds", "seed mean", "seed std",
                      "95% interval", "epochs saved by pruning"]
TEST_HEADERS = ["head A", "head B", "test", "statistic", "p-value", "difference (A - B)",
                "A right, B wrong", "B right, A wrong", "significant", "alpha", "basis"]


def paired_test_rows(summary: dict) -> list[list[str]]:
    """Rows of the paired-tests table (numbers from summary.json's comparisons)."""
    return [[str(c.get("a")), str(c.get("b")), str(c.get("test", "")),
             fmt_number(c.get("statistic")), fmt_p(c.get("p_value")),
             fmt_number(c.get("difference")),
             fmt_number(c.get("a_correct_b_wrong")), fmt_number(c.get("b_correct_a_wrong")),
             fmt_number(c.get("significant")), fmt_number(c.get("alpha")),
             str(c.get("basis") or "–")]
            for c in summary.get("comparisons") or []]


def _comparison_section(study: StudyData, page: _Page) -> None:
    summary = study.summary
    page.add('<h2 id="comparison-section">Comparison across heads</h2>')
    rows = comparison_rows(summary, list(study.heads))
    if rows:
        page.add(f"<p>All values are accuracies (fraction correct), from summary.json. \"Best "
                 f"trial value\" is the best trial's objective ({_e(objective_label(study))}); "
                 "\"best model accuracy\" is that model on the validation set; seed statistics "
                 "are the validation accuracies of the re-trainings with the best "
                 "hyperparameters.</p>")
        page.add(_table(COMPARISON_HEADERS, rows, "comparison"))
    else:
        page.add(_note("No per-head results in summary.json: no comparison table."))
    tests = paired_test_rows(summary)
    if tests:
        page.add("<h3>Paired tests between heads</h3>")
        page.add(_table(TEST_HEADERS, tests, "tests"))
    elif len(study.heads) < 2:
        page.add(_note("This study has a single head: there is no pair of heads to test."))
    else:
        page.add(_note("summary.json records no paired tests between heads."))
    params = _best_params_rows(study)
    if params:
        page.add("<h3>Best hyperparameters per head</h3>")
        page.add(_table(["hyperparameter", *study.heads], params, "best-params"))
    page.figure("heads_accuracy.png", "Accuracy per head: each seed re-training (grey), the seed "
                "mean with its 95% interval (black) and the best trial's model (red diamond).",
                lambda p: plot_head_accuracy(study, p))
    panels = [(h, best_confusion(d, selection(study))) for h, d in study.heads.items()]
    page.figure("confusion_matrices.png", "Confusion matrices of the best model of each head "
                "(each panel names its evaluation set).", lambda p: plot_confusions(panels, p))


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
    names = _ordered([p for params in per_head.values() for p in params])
    return [[p, *(_fmt_param(per_head[h].get(p)) for h in study.heads)] for p in names]


def best_confusion(head: HeadData, selected_on: str | None) -> dict:
    """The best model's confusion matrix on the validation set when tune saved its predictions
    there (heads/<head>/dev_predictions.csv), else best/metrics.json's, on the set trials were
    scored on."""
    metrics_file = head.best_dir / "metrics.json" if head.best_dir else None
    metrics = read_json(metrics_file) if metrics_file and metrics_file.is_file() else {}
    dev = head.best_dir.parent / "dev_predictions.csv" if head.best_dir else None
    if dev is not None and dev.is_file():
        from_dev = _confusion_from_predictions(dev, metrics.get("label_names"))
        if from_dev:
            return from_dev
    if not metrics.get("eval_confusion"):
        return {}
    where = "holdout slice of train" if selected_on == "holdout" else "validation set"
    return {**metrics, "evaluated_on": where}


def _confusion_from_predictions(path: Path, label_names: list[str] | None) -> dict:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        try:
            rows = [(int(r["label"]), int(r["prediction"])) for r in reader]
        except (KeyError, TypeError, ValueError):  # not the file tune writes: use metrics.json
            return {}
        probs = [c[len("prob_"):] for c in reader.fieldnames or [] if c.startswith("prob_")]
    rows = [(label, pred) for label, pred in rows if label >= 0]  # -1: unlabelled
    if not rows:
        return {}
    names = label_names or probs or [str(i) for i in range(max(max(r) for r in rows) + 1)]
    matrix = np.zeros((len(names), len(names)), dtype=int)
    for label, prediction in rows:
        matrix[label, prediction] += 1
    return {"eval_confusion": matrix.tolist(), "label_names": names, "n_eval": len(rows),
            "eval_accuracy": float(np.trace(matrix) / len(rows)),
            "evaluated_on": "validation set"}


def _head_section(study: StudyData, head: HeadData, page: _Page) -> None:
    metric = objective_label(study)
    safe = _safe_name(head.name)
    page.add(f'<h2 id="head-{_e(safe)}">Head: {_e(head.name)}</h2>')
    states = {s: len(head.by_state(s)) for s in ("COMPLETE", "PRUNED", "FAIL", "RUNNING")}
    page.add(f"<p>{_count(len(head.trials), 'trial')}: {states['COMPLETE']} complete, "
             f"{states['PRUNED']} pruned, {states['FAIL']} failed"
             + (f", {states['RUNNING']} still running" if states["RUNNING"] else "")
             + f"; direction: {_e(head.direction)}.</p>")
    if head.trials and not head.by_state("COMPLETE"):
        page.add(_note("No trial of this head completed, so there is no best trial."))
    elif len(head.by_state("COMPLETE")) == 1:
        page.add(_note("Only one trial completed: importances, slice plots and parallel "
                       "coordinates need at least 2 complete trials."))
    page.figure(f"{safe}_history.png", f"Optimisation history of {head.name} (cf. report fig. 1).",
                lambda p: plot_history(head, p, metric))
    page.figure(f"{safe}_importances.png", f"Hyperparameter importances of {head.name} "
                "(cf. report fig. 2).", lambda p: plot_importances(head, p))
    page.figure(f"{safe}_slices.png", f"Slice plots of {head.name}: objective against each "
                "hyperparameter (cf. report fig. 3).", lambda p: plot_slices(head, p, metric))
    held_out = selection(study) == "holdout"
    scored_on = (" (\"validation\" here is the held-out slice of train the trials were scored "
                 "on)" if held_out else "")
    page.figure(f"{safe}_loss_curve.png", f"Training loss per step, validation loss and accuracy "
                f"per epoch of the best {head.name} model (cf. report figs. 4, 5, 8){scored_on}.",
                lambda p: _best_loss_curve(head, p, held_out))
    page.figure(f"{safe}_intermediate.png", f"The {metric} per epoch reported by every "
                f"{head.name} trial; pruned trials stop early (cross).",
                lambda p: plot_intermediate(head, p, metric))
    page.figure(f"{safe}_parallel.png", f"Parallel coordinates of the complete {head.name} "
                "trials.", lambda p: plot_parallel(head, p, metric))
    failed = [[str(t.number), t.fail_reason or "(no reason recorded)"]
              for t in head.by_state("FAIL")]
    if failed:
        page.add("<h3>Failed trials</h3>" + _table(["trial", "reason"], failed))


def _best_loss_curve(head: HeadData, path: Path, held_out: bool) -> Path:
    history_file = head.best_dir / "history.jsonl" if head.best_dir else None
    if history_file is None or not history_file.is_file():
        raise _Skip(f"No loss curve: heads/{head.name}/best/history.jsonl is missing.")
    history = [r for r in read_jsonl(history_file) if r.get("type") in ("step", "eval")]
    if not history:
        raise _Skip(f"No loss curve: heads/{head.name}/best/history.jsonl has no records.")
    number = (head.best_json or {}).get("trial_number")
    title = f"best {head.name} model" + (f" (trial #{number})" if number is not None else "")
    return plot_loss_curve(history, path, title + (", evaluated on holdout" if held_out else ""))


def _config_section(study: StudyData, page: _Page) -> None:
    page.add('<h2 id="config">Configuration</h2>')
    if study.config:
        page.add("<p>The study's config.json (base run settings and tune settings):</p>")
        page.add(f"<pre>{_e(json.dumps(study.config, indent=2, default=str))}</pre>")
    else:
        page.add(_note("config.json is missing from the study directory."))
    for name, head in study.heads.items():
        path = head.best_dir / "config.json" if head.best_dir else None
        if path is not None and path.is_file():
            page.add(f"<details><summary>Run config of the best {_e(name)} model</summary>"
                     f"<pre>{_e(json.dumps(read_json(path), indent=2, default=str))}</pre>"
                     "</details>")


# ---------------------------------------------------------------------------------------------
# A single training run
# ---------------------------------------------------------------------------------------------

RUN_METRICS = {"eval_accuracy": "validation accuracy", "eval_f1": "validation F1",
               "eval_loss": "validation loss (cross-entropy)", "best_epoch": "best epoch",
               "epochs_run": "epochs run", "n_eval": "validation examples",
               "eval_runtime": "evaluation time (s)",
               "eval_samples_per_second": "evaluation speed (examples/s)",
               "train_runtime": "training time (s)",
               "train_samples_per_second": "training speed (examples/s)"}


def build_run_report(run_dir: Path) -> Path:
    """Write `<run_dir>/report/` for one `poolbert train` run; return index.html's path."""
    run_dir = _existing_dir(run_dir)
    if not (run_dir / "history.jsonl").is_file() and not (run_dir / "metrics.json").is_file():
        raise PoolbertError(f"{run_dir}: not a run directory (no history.jsonl or metrics.json)")
    metrics = _read_optional_json(run_dir / "metrics.json")
    config = _read_optional_json(run_dir / "config.json")
    with atomic_dir(run_dir / "report", overwrite=True) as tmp:
        tmp.chmod(0o755)
        page = _Page(tmp)
        pooling = _nested(config, "model", "pooling") or "run"
        page.add(f"<h1>poolbert run report: {_e(run_dir.resolve().name)}</h1>")
        task = _nested(config, "data", "task")
        model = _nested(config, "model", "model_name_or_path")
        page.add(f'<p class="meta">Task: {_e(task or "custom data")} · encoder: {_e(model or "?")}'
                 f" · pooling: {_e(pooling)}</p>")
        page.add(_generated_line(str(run_dir)))
        page.add("<h2>Metrics</h2>")
        rows = [[label, k, fmt_number(metrics[k])] for k, label in RUN_METRICS.items()
                if k in metrics]
        page.add(_table(["metric", "key in metrics.json", "value"], rows, "metrics") if rows
                 else _note("metrics.json is missing: no metrics table."))
        page.add("<h2>Figures</h2>")
        page.figure("loss_curve.png", "Training loss per step, validation loss and accuracy per "
                    "epoch.", lambda p: _run_loss_curve(run_dir, pooling, p))
        page.figure("confusion_matrix.png", "Confusion matrix on the validation set at the best "
                    "epoch.", lambda p: plot_confusions([(pooling, metrics)], p,
                                                        "Confusion matrix at the best epoch"))
        page.add("<h2>Configuration</h2>")
        page.add(f"<pre>{_e(json.dumps(config, indent=2, default=str))}</pre>" if config
                 else _note("config.json is missing."))
        (tmp / "index.html").write_text(
            _html_document(f"poolbert run report: {run_dir.name}", page.parts), encoding="utf-8")
    return run_dir / "report" / "index.html"


def _run_loss_curve(run_dir: Path, pooling: str, path: Path) -> Path:
    if not (run_dir / "history.jsonl").is_file():
        raise _Skip("No loss curve: history.jsonl is missing.")
    history = [r for r in read_jsonl(run_dir / "history.jsonl")
               if r.get("type") in ("step", "eval")]
    if not history:
        raise _Skip("No loss curve: history.jsonl has no records.")
    return plot_loss_curve(history, path, pooling)


def is_run_dir(path: Path) -> bool:
    study_markers = ("summary.json", "study.db", "journal.log", "trials.csv", "heads")
    if any((path / m).exists() for m in study_markers):
        return False
    return (path / "history.jsonl").is_file() or (path / "metrics.json").is_file()


def build_any_report(path: Path, storage: str | None = None) -> Path:
    """A study report for a study directory, a run report for a run directory."""
    path = _existing_dir(path)
    return build_run_report(path) if is_run_dir(path) else build_report(path, storage)
