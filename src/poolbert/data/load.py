"""Loading a task's data: read the splits, check every text and label, subsample.

Every problem with the user's data becomes a one-line `PoolbertError` naming the file and the
column or value, so the CLI can print it without a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..config import DataConfig
from ..errors import PoolbertError
from .labels import is_container, is_missing, label_names_of, parse_labels, require_column
from .sources import read_splits
from .tasks import TaskSpec, task_spec

ID_COLUMNS = ("idx", "index")  # the hub's `idx`, the original GLUE TSVs' `index`
SUBSET_SEED = 0


@dataclass
class TextSplit:
    """One validated split: texts, int64 labels (-1 = unlabeled) and int64 ids."""

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
    label_names: list[str]
    text_columns: list[str]
    source: str  # "hub:nyu-mll/glue/rte" or a path



def load_data(cfg: DataConfig) -> LoadedData:
    """Read, validate and (optionally) subsample train/validation[/test] as `cfg` describes."""
    spec = task_spec(cfg.task)
    frames, where, source = read_splits(cfg, spec)
    columns = _text_columns(cfg, spec, frames["train"], where["train"])
    needed = [*columns, cfg.label_column]
    frames = {s: _apply_aliases(f, spec, needed) for s, f in frames.items()}
    label_names = label_names_of(spec, frames["train"], cfg.label_column, where["train"])
    splits = {
        s: _build_split(s, f, where[s], columns, cfg.label_column, label_names, spec is None)
        for s, f in frames.items()
    }
    train = _subsample(splits["train"], cfg.max_train_samples)
    validation = _subsample(splits["validation"], cfg.max_eval_samples)
    return LoadedData(train, validation, splits.get("test"), label_names, columns, source)


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
                 label_column: str, label_names: list[str], custom: bool) -> TextSplit:
    for column in text_columns:
        require_column(frame, column, where)
    texts = [texts_of(frame[c], c, where) for c in text_columns]
    if name == "test" and label_column not in frame.columns:
        labels = np.full(len(frame), -1, dtype=np.int64)  # GLUE test sets hide their labels
    else:
        require_column(frame, label_column, where)
        labels = parse_labels(frame[label_column], label_column, where, label_names, custom,
                         unlabeled_ok=name == "test")
    return TextSplit(name, texts[0], texts[1] if len(texts) > 1 else None, labels, _ids(frame))


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
    """Split off `fraction` of each label's rows as a holdout (for tuning without the dev set)."""
    if not 0.0 < fraction < 1.0:
        raise PoolbertError(f"holdout fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    held: list[np.ndarray] = []
    for label in np.unique(split.labels):
        rows = rng.permutation(np.flatnonzero(split.labels == label))
        held.append(rows[: int(round(fraction * len(rows)))])
    holdout = np.sort(np.concatenate(held)).astype(np.int64)
    rest = np.setdiff1d(np.arange(len(split)), holdout)
    if len(holdout) == 0 or len(rest) == 0:
        raise PoolbertError(f"holdout fraction {fraction} of {len(split)} rows leaves a side empty")
    return _subset(split, rest, "train_tune"), _subset(split, holdout, "holdout")
