"""Loading a task's data: read the splits, check every text and label, subsample.

Every problem with the user's data becomes a one-line `PoolbertError` naming the file and the
column or value, so the CLI can print it without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import PoolbertError
from .labels import (
    is_container,
    is_missing,
    label_names_of,
    multilabel_names,
    parse_label_columns,
    parse_label_lists,
    parse_labels,
    parse_targets,
    require_column,
)
from .sources import read_splits
from .tasks import TaskSpec, task_spec

ID_COLUMNS = ("idx", "index")  # the hub's `idx`, the original GLUE TSVs' `index`
SUBSET_SEED = 0


@dataclass
class TextSplit:
    """One validated split: texts, labels and int64 ids. Labels by problem type: single_label
    (N,) int64 indices (-1: unlabeled); multi_label (N, C) float32 0/1 (a row of -1:
    unlabeled); regression (N,) float32 targets (NaN: unlabeled)."""

    name: str
    texts_a: list[str]
    texts_b: list[str] | None
    labels: np.ndarray
    ids: np.ndarray

    def __len__(self) -> int:
        return len(self.texts_a)


@dataclass
class LoadedData:
    train: TextSplit
    validation: TextSplit
    test: TextSplit | None
    label_names: list[str]  # for regression: the target's name
    text_columns: list[str]
    source: str  # "hub:nyu-mll/glue/rte" or a path
    problem_type: str = "single_label"  # "multi_label", "regression"
    extra: dict[str, TextSplit] = field(default_factory=dict)  # scored at the end (MNLI mm)



def load_data(cfg: DataConfig) -> LoadedData:
    """Read, validate and (optionally) subsample train/validation[/test] as `cfg` describes."""
    spec = task_spec(cfg.task)
    frames, where, source = read_splits(cfg, spec)
    columns = _text_columns(cfg, spec, frames["train"], where["train"])
    needed = [*columns, *(cfg.label_columns or [cfg.label_column])]
    frames = {s: _apply_aliases(f, spec, needed) for s, f in frames.items()}
    labels = Labels.of(cfg, spec, frames["train"], where["train"])
    splits = {s: _build_split(s, f, where[s], columns, labels) for s, f in frames.items()}
    train = _subsample(splits["train"], cfg.max_train_samples)
    validation = _subsample(splits["validation"], cfg.max_eval_samples)
    extra = {name: _subsample(splits[split], cfg.max_eval_samples)
             for name, split in (spec.extra_validation.items() if spec else ()) if split in splits}
    return LoadedData(train, validation, splits.get("test"), labels.names, columns, source,
                      labels.problem_type, extra)


@dataclass
class Labels:
    """How a task's labels are read: its problem type, label names and columns."""

    problem_type: str
    names: list[str]
    column: str
    columns: list[str] | None  # multi-label as one 0/1 column per label
    custom: bool  # labels of custom data; a task's are its preset's (or indices into them)

    @classmethod
    def of(cls, cfg: DataConfig, spec: TaskSpec | None, train: pd.DataFrame,
           where: str) -> Labels:
        problem = _problem_type(cfg, spec, train)
        custom = spec is None
        if problem == "regression":
            names = list(spec.label_names) if spec else [cfg.label_column]
        elif cfg.label_columns:
            names = list(cfg.label_columns)
        elif problem == "multi_label":
            require_column(train, cfg.label_column, where)
            names = multilabel_names(train[cfg.label_column], cfg.label_column, where)
        else:
            names = label_names_of(spec, train, cfg.label_column, where)
        return cls(problem, list(names), cfg.label_column, cfg.label_columns, custom)

    def parse(self, frame: pd.DataFrame, where: str, unlabeled_ok: bool) -> np.ndarray:
        if self.columns:
            return parse_label_columns(frame, self.columns, where, unlabeled_ok)
        require_column(frame, self.column, where)
        series = frame[self.column]
        if self.problem_type == "multi_label":
            return parse_label_lists(series, self.column, where, self.names, unlabeled_ok)
        if self.problem_type == "regression":
            targets = parse_targets(series, self.column, where, unlabeled_ok)
            if unlabeled_ok and not self.custom:
                targets[targets == -1] = np.nan  # GLUE test sets mark hidden labels with -1
            return targets
        return parse_labels(series, self.column, where, self.names, self.custom, unlabeled_ok)

    def unlabeled(self, n: int) -> np.ndarray:
        """Labels of a split that has none (GLUE's test sets)."""
        if self.problem_type == "multi_label":
            return np.full((n, len(self.names)), -1, dtype=np.float32)
        if self.problem_type == "regression":
            return np.full(n, np.nan, dtype=np.float32)
        return np.full(n, -1, dtype=np.int64)


def _problem_type(cfg: DataConfig, spec: TaskSpec | None, train: pd.DataFrame) -> str:
    """The problem type asked for; auto: the task's, else multi-label for label columns or a
    label column of lists (any row), else single-label. A task's own type cannot be changed."""
    if spec is not None and cfg.problem_type not in ("auto", spec.problem_type):
        raise PoolbertError(f"problem_type {cfg.problem_type} does not fit task {spec.name} "
                            f"({spec.problem_type})")
    if cfg.problem_type != "auto":
        return cfg.problem_type
    if spec is not None:
        return spec.problem_type
    if cfg.label_columns:
        return "multi_label"
    values = (train[cfg.label_column].dropna().tolist() if cfg.label_column in train.columns
              else [])
    return "multi_label" if any(_listed(v) for v in values) else "single_label"


def _listed(value: object) -> bool:
    """A multi-label cell: a list, a JSON array as text, or names joined by `|`."""
    if isinstance(value, str):
        return value.strip().startswith("[") or "|" in value
    return is_container(value)


def _text_columns(cfg: DataConfig, spec: TaskSpec | None, frame: pd.DataFrame,
                  where: str) -> list[str]:
    columns = list(cfg.text_columns) if cfg.text_columns else None
    if columns is None and spec is None:
        present = ", ".join(map(str, frame.columns))
        raise PoolbertError(f"{where}: custom data needs text_columns (columns present: {present})")
    columns = columns or list(spec.text_columns if spec is not None else [])
    if not 1 <= len(columns) <= 2:
        raise PoolbertError(f"text_columns takes one or two columns, got {columns}")
    return columns


def _apply_aliases(frame: pd.DataFrame, spec: TaskSpec | None, needed: list[str]) -> pd.DataFrame:
    """Rename original-GLUE column names to the hub's, only where the hub's name is missing."""
    if spec is None:
        return frame
    renames = {old: new for old, new in spec.tsv_aliases.items()
               if new in needed and new not in frame.columns and old in frame.columns}
    return frame.rename(columns=renames) if renames else frame


def _build_split(name: str, frame: pd.DataFrame, where: str, text_columns: list[str],
                 labels: Labels) -> TextSplit:
    for column in text_columns:
        require_column(frame, column, where)
    texts = [texts_of(frame[c], c, where) for c in text_columns]
    needed = labels.columns or [labels.column]
    if name == "test" and not set(needed) & set(frame.columns):
        values = labels.unlabeled(len(frame))  # GLUE test sets hide their labels
    else:
        values = labels.parse(frame, where, unlabeled_ok=name == "test")
    return TextSplit(name, texts[0], texts[1] if len(texts) > 1 else None, values, _ids(frame))


def texts_of(series: pd.Series, column: str, where: str, offset: int = 0) -> list[str]:
    """A column's texts; a missing, empty or non-text cell is an error naming its row (rows
    counted from 1 after the header, plus `offset` for a chunk of a longer file)."""
    out = []
    for row, value in enumerate(series.tolist(), start=offset + 1):
        if is_container(value):  # JSON arrays/objects, parquet list columns
            raise PoolbertError(f"{where}: text in column {column!r} at row {row} is a "
                                f"{type(value).__name__}, not a string")
        text = value if isinstance(value, str) else None if is_missing(value) else str(value)
        if text is None or not text.strip():
            raise PoolbertError(f"{where}: empty text in column {column!r} at row {row}")
        out.append(text)
    return out


def _ids(frame: pd.DataFrame) -> np.ndarray:
    """The dataset's own example ids where they are integers, else row numbers from 0."""
    for column in ID_COLUMNS:
        if column in frame.columns:
            ids = pd.to_numeric(frame[column], errors="coerce")
            if not ids.isna().any() and (ids == ids.round()).all():
                return ids.to_numpy().astype(np.int64)
    return np.arange(len(frame), dtype=np.int64)


def _subset(split: TextSplit, indices: np.ndarray, name: str | None = None) -> TextSplit:
    indices = np.asarray(indices, dtype=np.int64)
    pick = lambda texts: [texts[i] for i in indices]  # noqa: E731
    return TextSplit(
        name or split.name, pick(split.texts_a),
        pick(split.texts_b) if split.texts_b is not None else None,
        split.labels[indices], split.ids[indices],
    )


def _subsample(split: TextSplit, limit: int | None) -> TextSplit:
    """First `limit` rows after a fixed-seed shuffle (kept in file order), so a small run still
    sees every label instead of the file's first, often single-label, block."""
    if limit is None or limit >= len(split):
        return split
    chosen = np.random.default_rng(SUBSET_SEED).permutation(len(split))[:limit]
    return _subset(split, np.sort(chosen))


def stratified_holdout(split: TextSplit, fraction: float,
                       seed: int) -> tuple[TextSplit, TextSplit]:
    """Split off `fraction` of the rows as a holdout (for tuning without the dev set): of each
    label's rows for single-label data, of all rows (at random) for multi-label and
    regression."""
    if not 0.0 < fraction < 1.0:
        raise PoolbertError(f"holdout fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    single = split.labels.ndim == 1 and split.labels.dtype == np.int64
    groups = np.unique(split.labels) if single else [None]
    for label in groups:
        members = np.flatnonzero(split.labels == label) if single else np.arange(len(split))
        rows = rng.permutation(members)
        held.append(rows[: int(round(fraction * len(rows)))])
    holdout = np.sort(np.concatenate(held)).astype(np.int64)
    rest = np.setdiff1d(np.arange(len(split)), holdout)
    if len(holdout) == 0 or len(rest) == 0:
        raise PoolbertError(f"holdout fraction {fraction} of {len(split)} rows leaves a side empty")
    return _subset(split, rest, "train_tune"), _subset(split, holdout, "holdout")
