"""The folders poolbert writes and every file in them: each path and file format defined once.

A run directory (`poolbert train`, a study's best trial, each seed re-training):

    config.json      the resolved settings, data source, library versions, command
    metrics.json     the kept epoch's validation metrics and the training statistics
    history.jsonl    {"type": "step", ...} per optimiser step, {"type": "eval", ...} per epoch
    predictions.csv  the validation set at the kept epoch: id, label, prediction, prob_<label>...
    loss_curve.png   written by `poolbert train`; `poolbert report` draws it for study runs
    model/           save_pretrained: model.safetensors, config.json, tokenizer files
    report/          `poolbert report`

A study directory (`poolbert tune`):

    config.json  study.db or journal.log  trials.csv  summary.json  summary.md  report/
    heads/<head>/best.json             which trial heads/<head>/best/ holds, and its value
    heads/<head>/best/                 that trial's run directory (with model/)
    heads/<head>/dev_predictions.csv   that model scored once on dev (holdout protocol)
    heads/<head>/seeds/seed-<k>/       run directories of the seed re-trainings (no model/)
    .budget.lock, heads/<head>/.best.lock   locks between the workers of one machine
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import PoolbertError
from .files import atomic_open, read_json, read_jsonl, write_json, write_jsonl

PREDICTION_COLUMNS = ("id", "label", "prediction")  # then prob_<label name> per class
TRIAL_COLUMNS = ("head", "number", "state", "value")  # then params_<name>..., TRIAL_ATTRS
TRIAL_ATTRS = ("epochs_run", "duration_s", "fail_reason")


def _json_or_empty(path: Path) -> dict:
    """A JSON object from `path`, or {} when the file is absent (or not an object)."""
    if not path.is_file():
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Predictions:
    """predictions.csv: per-example results in the split's order. By problem type:
    single-label `id,label,prediction,prob_<name>...` (label and prediction as indices, -1:
    unlabelled); multi-label `id,labels,predictions,prob_<name>...` (indices joined by `;`);
    regression `id,label,prediction` (numbers; an empty label: unlabelled)."""

    ids: np.ndarray  # (N,) int64
    labels: np.ndarray  # (N,) int64 | (N, C) 0/1 (-1 rows unlabelled) | (N,) float (NaN)
    preds: np.ndarray  # (N,) int64 | (N, C) 0/1 | (N,) float
    probs: np.ndarray  # (N, C) probabilities; regression (N, 0)
    label_names: list[str]
    problem_type: str = "single_label"

    @property
    def correct(self) -> np.ndarray:
        """(N,) bool: the prediction is right (multi-label: every label of the row)."""
        if self.problem_type == "multi_label":
            return (self.labels == self.preds).all(axis=1)
        return self.labels == self.preds


MULTI_COLUMNS = ("id", "labels", "predictions")


def _indices(row: np.ndarray) -> str:
    return "-1" if (row < 0).any() else ";".join(str(i) for i in np.flatnonzero(row > 0))


def _from_indices(cell: str, width: int) -> np.ndarray:
    out = np.zeros(width, dtype=np.float32)
    if cell == "-1":
        out[:] = -1
    elif cell:
        out[[int(i) for i in cell.split(";")]] = 1
    return out


def write_predictions(path: Path, ids: np.ndarray, labels: np.ndarray, preds: np.ndarray,
                      probs: np.ndarray, label_names: list[str], problem_type: str) -> None:
    with atomic_open(path) as handle:
        writer = csv.writer(handle)
        if problem_type == "regression":
            writer.writerow(PREDICTION_COLUMNS)
            for i, row_id in enumerate(ids):
                label = "" if np.isnan(labels[i]) else f"{labels[i]:.6g}"
                writer.writerow([int(row_id), label, f"{preds[i]:.6f}"])
            return
        multi = problem_type == "multi_label"
        writer.writerow([*(MULTI_COLUMNS if multi else PREDICTION_COLUMNS),
                         *(f"prob_{n}" for n in label_names)])
        for i, row_id in enumerate(ids):
            cells: tuple[str | int, str | int] = (
                (_indices(labels[i]), _indices(preds[i])) if multi
                else (int(labels[i]), int(preds[i])))
            writer.writerow([int(row_id), *cells, *(f"{p:.6f}" for p in probs[i])])


def read_predictions(path: Path) -> Predictions:
    """predictions.csv as written by `write_predictions`, or a one-line error naming it."""
    try:
        with path.open(newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader)
            rows = list(reader)
    except (OSError, StopIteration, csv.Error) as exc:
        raise PoolbertError(f"{path}: cannot read predictions ({type(exc).__name__})") from None
    first = tuple(header[:3])
    names = [c.removeprefix("prob_") for c in header[3:]]
    if first not in (PREDICTION_COLUMNS, MULTI_COLUMNS) or any(
            not c.startswith("prob_") for c in header[3:]):
        raise PoolbertError(f"{path}: not a predictions file (header {', '.join(header)})")
    try:
        table = np.array(rows, dtype=object).reshape(len(rows), len(header))
        ids = table[:, 0].astype(np.int64)
        probs = table[:, 3:].astype(float)
        if first == MULTI_COLUMNS:
            labels = np.stack([_from_indices(c, len(names)) for c in table[:, 1]]) if rows \
                else np.zeros((0, len(names)), dtype=np.float32)
            preds = np.stack([_from_indices(c, len(names)) for c in table[:, 2]]) if rows \
                else np.zeros((0, len(names)), dtype=np.float32)
            return Predictions(ids, labels, preds, probs, names, "multi_label")
        if not names:  # regression: numbers, no probabilities
            labels = np.array([float(c) if c != "" else np.nan for c in table[:, 1]])
            return Predictions(ids, labels, table[:, 2].astype(float), probs, [], "regression")
        ints = table[:, 1:3].astype(np.int64)
    except (ValueError, IndexError):
        raise PoolbertError(f"{path}: a row is not id, label, prediction, probabilities") from None
    return Predictions(ids, ints[:, 0], ints[:, 1], probs, names)


def write_run(folder: Path, record: dict, metrics: dict, history: list[dict],
              predictions: Predictions, model: Any = None, tokenizer: Any = None) -> None:
    """A run directory's files into `folder`: config.json (`record`), metrics.json,
    history.jsonl, predictions.csv and, when `model` is given, model/ (save_pretrained of the
    model and its tokenizer)."""
    run = RunDir(folder)
    folder.mkdir(parents=True, exist_ok=True)
    write_json(run.config_file, record)
    write_json(run.metrics_file, metrics)
    write_jsonl(run.history_file, history)
    p = predictions
    write_predictions(run.predictions_file, p.ids, p.labels, p.preds, p.probs, p.label_names,
                      p.problem_type)
    if model is not None:
        model.save_pretrained(run.model)
        tokenizer.save_pretrained(run.model)


@dataclass(frozen=True)
class RunDir:
    """One training run's folder."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.json"

    @property
    def history_file(self) -> Path:
        return self.path / "history.jsonl"

    @property
    def predictions_file(self) -> Path:
        return self.path / "predictions.csv"

    @property
    def loss_curve(self) -> Path:
        return self.path / "loss_curve.png"

    @property
    def model(self) -> Path:
        return self.path / "model"

    @property
    def report(self) -> Path:
        return self.path / "report"

    def has_model(self) -> bool:
        return (self.model / "config.json").is_file()

    def read_config(self) -> dict:
        return _json_or_empty(self.config_file)

    def read_metrics(self) -> dict:
        return _json_or_empty(self.metrics_file)

    def read_history(self) -> list[dict]:
        return read_jsonl(self.history_file) if self.history_file.is_file() else []

    def read_predictions(self) -> Predictions:
        return read_predictions(self.predictions_file)


@dataclass(frozen=True)
class HeadDir:
    """One head's part of a study: its best run, that run's dev score, its seed runs."""

    path: Path

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def best_json(self) -> Path:
        return self.path / "best.json"

    @property
    def best(self) -> RunDir:
        return RunDir(self.path / "best")

    @property
    def dev_predictions(self) -> Path:
        return self.path / "dev_predictions.csv"

    @property
    def seeds(self) -> Path:
        return self.path / "seeds"

    @property
    def best_lock(self) -> Path:
        return self.path / ".best.lock"

    def seed(self, seed: int) -> RunDir:
        return RunDir(self.seeds / f"seed-{seed}")

    def seed_runs(self) -> list[RunDir]:
        """The seed-<k> folders present, in seed order."""
        if not self.seeds.is_dir():
            return []
        found = [p for p in self.seeds.iterdir() if p.is_dir() and p.name.startswith("seed-")
                 and p.name[5:].isdigit()]
        return [RunDir(p) for p in sorted(found, key=lambda p: int(p.name[5:]))]

    def read_best(self) -> dict:
        return _json_or_empty(self.best_json)


# what a study directory holds from its first moments (another command may be creating it)
STUDY_STARTING = ("study.db", "journal.log", "heads")
# any of these marks a folder as a study rather than a run
STUDY_MARKERS = ("summary.json", "study.db", "journal.log", "trials.csv", "heads")


@dataclass(frozen=True)
class StudyDir:
    """A `poolbert tune` output directory."""

    path: Path

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def database(self) -> Path:
        return self.path / "study.db"

    @property
    def journal(self) -> Path:
        return self.path / "journal.log"

    @property
    def trials_csv(self) -> Path:
        return self.path / "trials.csv"

    @property
    def summary_json(self) -> Path:
        return self.path / "summary.json"

    @property
    def summary_md(self) -> Path:
        return self.path / "summary.md"

    @property
    def report(self) -> Path:
        return self.path / "report"

    @property
    def heads(self) -> Path:
        return self.path / "heads"

    @property
    def budget_lock(self) -> Path:
        return self.path / ".budget.lock"

    def head(self, name: str) -> HeadDir:
        return HeadDir(self.heads / name)

    def head_names(self) -> list[str]:
        """Heads with a folder under heads/, in name order."""
        if not self.heads.is_dir():
            return []
        return sorted(p.name for p in self.heads.iterdir() if p.is_dir())

    def database_url(self) -> str:
        return f"sqlite:///{self.database.resolve()}"

    def read_config(self) -> dict:
        return _json_or_empty(self.config_file)

    def read_trials(self) -> list[dict[str, str]]:
        return read_trials_csv(self.trials_csv)


def is_study(path: Path) -> bool:
    return any((path / marker).exists() for marker in STUDY_MARKERS)


def is_run(path: Path) -> bool:
    run = RunDir(path)
    return not is_study(path) and (run.history_file.is_file() or run.metrics_file.is_file())


def write_trials_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    """trials.csv: one row per trial; `rows` hold TRIAL_COLUMNS, "params" (a dict) and
    TRIAL_ATTRS. Parameter columns are the union over all rows, in order of first appearance."""
    params = list(dict.fromkeys(p for row in rows for p in row["params"]))
    with atomic_open(path) as handle:
        writer = csv.writer(handle)
        writer.writerow([*TRIAL_COLUMNS, *(f"params_{p}" for p in params), *TRIAL_ATTRS])
        for row in rows:
            writer.writerow([*(_cell(row.get(c)) for c in TRIAL_COLUMNS),
                             *(_cell(row["params"].get(p)) for p in params),
                             *(_cell(row.get(a)) for a in TRIAL_ATTRS)])


def _cell(value: Any) -> Any:
    return "" if value is None else value


def read_trials_csv(path: Path) -> list[dict[str, str]]:
    """trials.csv as rows of text cells ([] when the file is absent)."""
    if not path.is_file():
        return []
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))

