"""Reading what `poolbert tune` and `poolbert train` wrote, for the report.

Trials come from the Optuna storage when it can be opened (it has the per-epoch intermediate
values), else from trials.csv (distributions inferred from the values); what is missing becomes
a note on the page rather than an error. Every path comes from `poolbert.layout`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from ..errors import PoolbertError
from ..layout import HeadDir, Predictions, RunDir, StudyDir, read_predictions
from ..metrics import LABELS, METRIC_KEYS, classification_metrics, labelled
from ..text import first_line, redact, url_password
from ..tuning.results import StudyResult, read_result

# metrics.json key -> words: "eval_mcc" -> "validation Matthews correlation"
METRIC_LABELS = MappingProxyType({key: f"validation {LABELS[name]}"
                                  for name, key in METRIC_KEYS.items()})


_NO_PREDICTIONS = Predictions(np.zeros(0, np.int64), np.zeros(0, np.int64),
                              np.zeros(0, np.int64), np.zeros((0, 0)), [])


class _NoStorage(Exception):
    """The Optuna storage cannot be read; the message becomes a note and trials.csv is used."""


@dataclass
class TrialRecord:
    number: int
    state: str  # COMPLETE, PRUNED, FAIL, RUNNING, WAITING
    value: float | None  # the objective; for a pruned trial its last reported value
    params: dict[str, Any]
    distributions: dict[str, Any]  # optuna distributions (inferred when read from trials.csv)
    intermediate: dict[int, float] = field(default_factory=dict)
    fail_reason: str = ""

    @property
    def objective(self) -> float:
        """The value, for a trial known to have one (as `HeadData.scored()` returns)."""
        if self.value is None:
            raise ValueError(f"trial {self.number} has no objective value")
        return self.value


@dataclass
class HeadData:
    name: str
    trials: list[TrialRecord]
    direction: str = "maximize"
    best_json: dict | None = None
    best_dir: Path | None = None

    @property
    def best_run(self) -> RunDir | None:
        return RunDir(self.best_dir) if self.best_dir else None

    def by_state(self, state: str) -> list[TrialRecord]:
        return [t for t in self.trials if t.state == state]

    def scored(self) -> list[TrialRecord]:
        """The complete trials that have an objective value."""
        return [t for t in self.by_state("COMPLETE") if t.value is not None]

    def best_trial(self) -> TrialRecord | None:
        done = self.scored()
        if not done:
            return None
        pick = max if self.direction == "maximize" else min
        return pick(done, key=lambda t: t.objective)


@dataclass
class StudyData:
    path: Path
    config: dict
    result: StudyResult | None  # summary.json; None until the study has finished
    heads: dict[str, HeadData]
    source: str  # where the trials came from, in words
    notes: list[str] = field(default_factory=list)


def existing_dir(path: Path | str) -> Path:
    """`path` as a Path, or a one-line error when it is missing or not a folder."""
    path = Path(path)
    if not path.exists():
        raise PoolbertError(f"directory not found: {path}")
    if not path.is_dir():
        raise PoolbertError(f"not a directory: {path}")
    return path


def load_study_dir(study_dir: Path, storage: str | None = None) -> StudyData:
    """Everything the report needs from a study directory; missing parts become notes."""
    folder = StudyDir(study_dir)
    config, result = folder.read_config(), read_result(folder)
    notes: list[str] = []
    if result is None:
        notes.append("summary.json is missing: the comparison table and seed statistics are not "
                      "available (the study may not have finished).")
    known = _known_heads(folder, config, result)
    try:
        trials, directions, source = _trials_from_storage(folder, config, known, storage)
    except _NoStorage as exc:
        notes.append(str(exc))
        trials, directions, source = _trials_from_csv(folder.read_trials()), {}, "trials.csv"
        if not trials:
            notes.append("trials.csv is missing or empty: no per-trial figures.")
    heads = {}
    for name in _ordered(list(known) + list(trials)):
        head_dir = folder.head(name)
        best = head_dir.best.path
        heads[name] = HeadData(
            name=name, trials=trials.get(name, []), direction=directions.get(name, "maximize"),
            best_json=head_dir.read_best() or None,
            best_dir=best if best.is_dir() else None,
        )
    return StudyData(study_dir, config, result, heads, source, notes)


def _ordered(names: list[str]) -> list[str]:
    return list(dict.fromkeys(names))


def _known_heads(folder: StudyDir, config: dict, result: StudyResult | None) -> list[str]:
    names = list(config.get("poolings") or [])
    names += list(result.heads if result else [])
    return _ordered(names + folder.head_names())


# ---------------------------------------------------------------------------------------------
# Trials from the Optuna storage
# ---------------------------------------------------------------------------------------------

def _storage_of(folder: StudyDir, config: dict) -> str:
    """The study's own storage: study.db, else journal.log, else the one config.json names."""
    if folder.database.is_file():
        return folder.database_url()
    if folder.journal.is_file():
        return str(folder.journal)
    if config.get("storage"):
        return str(config["storage"])
    raise _NoStorage("No Optuna storage found (study.db or journal.log); figures are drawn from "
                     "trials.csv, which has no per-epoch intermediate values.")


def _open_storage(folder: StudyDir, config: dict, storage: str | None) -> tuple[Any, str]:
    """The opened storage and its URL (or journal path)."""
    url = _storage_of(folder, config) if storage is None else storage
    # imported only now: poolbert.tuning brings in torch, which a study without storage never needs
    from ..tuning.storage import existing_storage_url, open_existing_storage

    try:
        url = existing_storage_url(url)
        return open_existing_storage(url), url
    except Exception as exc:  # any driver's error: the report falls back to trials.csv
        raise _NoStorage(f"Could not open the Optuna storage {redact(url)} "
                         f"({type(exc).__name__}: {redact(first_line(exc), url_password(url))}); "
                         "figures are drawn from trials.csv.") from None


def _trials_from_storage(folder: StudyDir, config: dict, known: list[str], storage: str | None
                         ) -> tuple[dict[str, list[TrialRecord]], dict[str, str], str]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    opened, url = _open_storage(folder, config, storage)
    description = redact(url)
    try:
        names = optuna.study.get_all_study_names(opened)
    except Exception as exc:
        raise _NoStorage(f"Could not read studies from {description} ({type(exc).__name__}: "
                         f"{redact(str(exc), url_password(url))}); figures are drawn from "
                         "trials.csv.") from None
    trials, directions = {}, {}
    for study_name, head in _heads_of_studies(names, config.get("study_name"), known).items():
        study = optuna.load_study(study_name=study_name, storage=opened)
        directions[head] = "minimize" if study.direction.name == "MINIMIZE" else "maximize"
        trials[head] = [_record_from_frozen(t) for t in study.get_trials(deepcopy=False)]
    if not trials:
        raise _NoStorage(f"No study of this run found in {description}; figures are drawn from "
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


# ---------------------------------------------------------------------------------------------
# Trials from trials.csv
# ---------------------------------------------------------------------------------------------

def _trials_from_csv(rows: list[dict[str, str]]) -> dict[str, list[TrialRecord]]:
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


def param_names(trials: list[TrialRecord]) -> list[str]:
    """The hyperparameters of these trials, in order of first appearance."""
    return _ordered([p for t in trials for p in t.params])


# ---------------------------------------------------------------------------------------------
# What the saved files say about the study
# ---------------------------------------------------------------------------------------------

def nested(data: Any, *keys: str) -> Any:
    """data[k1][k2]...; None where a level is missing or not a dict."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def metric_label(metric: str | None) -> str:
    return METRIC_LABELS.get(metric or "", metric or "objective value")


def selection(study: StudyData) -> str | None:
    """"holdout" or "dev": which examples the trials were scored on."""
    found = (study.result and study.result.selection) or nested(study.config, "tune",
                                                                 "select_on")
    for head in study.heads.values():
        found = found or (head.best_json or {}).get("selection")
    return found


def objective_label(study: StudyData) -> str:
    """The trials' objective in words: holdout accuracy under --select-on holdout."""
    label = metric_label(study.result.metric if study.result else "eval_accuracy")
    return label.replace("validation", "holdout") if selection(study) == "holdout" else label


def best_confusion(head: HeadData, selected_on: str | None) -> dict:
    """The best model's confusion matrix on the validation set when tune saved its predictions
    there (heads/<head>/dev_predictions.csv), else best/metrics.json's, on the set trials were
    scored on."""
    if head.best_dir is None:
        return {}
    metrics = RunDir(head.best_dir).read_metrics()
    dev = HeadDir(head.best_dir.parent).dev_predictions  # best/ sits in its head's folder
    if dev.is_file():
        from_dev = _confusion_from_predictions(dev, metrics.get("label_names"))
        if from_dev:
            return from_dev
    if not metrics.get("eval_confusion"):
        return {}
    where = "holdout slice of train" if selected_on == "holdout" else "validation set"
    return {**metrics, "evaluated_on": where}


def best_predictions(head: HeadData) -> tuple[str, Predictions, float | None]:
    """(head, its best model's predictions on the validation set, that model's temperature):
    heads/<head>/dev_predictions.csv under the holdout protocol, else best/predictions.csv."""
    if head.best_dir is None:
        return head.name, _NO_PREDICTIONS, None
    best = RunDir(head.best_dir)
    dev = HeadDir(head.best_dir.parent).dev_predictions
    path = dev if dev.is_file() else best.predictions_file
    try:
        found = read_predictions(path) if path.is_file() else _NO_PREDICTIONS
    except PoolbertError:
        found = _NO_PREDICTIONS
    return head.name, found, best.read_metrics().get("temperature")


def _confusion_from_predictions(path: Path, label_names: list[str] | None) -> dict:
    try:
        predictions = read_predictions(path)
    except PoolbertError:  # not the file tune writes: use metrics.json
        return {}
    rows = labelled(predictions.labels)
    labels, preds = predictions.labels[rows], predictions.preds[rows]
    if not len(labels):
        return {}
    names = label_names or predictions.label_names
    scored = classification_metrics(labels, preds, len(names))
    return {"eval_confusion": scored["eval_confusion"], "label_names": names,
            "n_eval": len(labels), "eval_accuracy": scored["eval_accuracy"],
            "evaluated_on": "validation set"}
