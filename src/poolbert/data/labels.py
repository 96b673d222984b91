"""Labels as the user's files give them (ints, names, numbers as text) to indices into the
label names; every unknown or missing label is a one-line error naming its row."""

from __future__ import annotations

import json
import numbers
import re
from typing import Any

import numpy as np
import pandas as pd

from ..errors import PoolbertError
from .tasks import TaskSpec


def is_container(value: Any) -> bool:
    return isinstance(value, list | dict | tuple | set | np.ndarray)


def is_missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _label_key(value: Any) -> str | None:
    """A label as a comparable string: integers (also 1.0, "1") in decimal form; None if missing."""
    if is_missing(value):
        return None
    if isinstance(value, bool | np.bool_ | numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return str(int(float(value))) if float(value).is_integer() else str(value)
    text = str(value).strip()
    if _is_int_key(text):
        return str(int(text))  # exact, where float() would round long integers
    try:
        number = float(text)
    except ValueError:
        return text or None
    return str(int(number)) if number.is_integer() else text


def _is_int_key(key: str) -> bool:
    return re.fullmatch(r"-?[0-9]+", key) is not None  # not str.isdigit: "²" is a digit there


def label_names_of(spec: TaskSpec | None, train: pd.DataFrame, column: str, where: str) -> list[str]:
    """The preset's names, or for custom data the sorted distinct train labels."""
    if spec is not None:
        return list(spec.label_names)
    require_column(train, column, where)
    keys = {k for v in _factorize(train[column], column, where)[1]
            if (k := _label_key(v)) is not None}
    if not keys:
        raise PoolbertError(f"{where}: column {column!r} holds no labels")
    return _sorted_keys(keys)


def _sorted_keys(keys: set[str]) -> list[str]:
    """Label names in order: by number where every one is an integer, else as text."""
    return sorted(keys, key=int) if all(_is_int_key(k) for k in keys) else sorted(keys)


def _factorize(series: pd.Series, column: str, where: str) -> tuple[np.ndarray, Any]:
    """Codes per row and distinct values, in order of first appearance (NaN/None: code -1)."""
    containers = series.map(is_container).to_numpy(dtype=bool)
    if containers.any():  # JSON arrays/objects: unhashable, and no label anyway
        row = int(np.argmax(containers)) + 1
        raise PoolbertError(f"{where}: label in column {column!r} at row {row} is not a single "
                            f"value: {_show(series.iloc[row - 1])}")
    return pd.factorize(series, use_na_sentinel=True)


def parse_labels(series: pd.Series, column: str, where: str, names: list[str], custom: bool,
            unlabeled_ok: bool) -> np.ndarray:
    """int64 label indices; each distinct value is mapped once, so large splits stay fast."""
    codes, uniques = _factorize(series, column, where)
    keys = [_label_key(v) for v in uniques]
    mapped = np.array([_label_index(k, names, custom, unlabeled_ok) for k in keys] + [-1],
                      dtype=np.int64)
    if not unlabeled_ok:
        missing = np.isin(codes, [-1] + [u for u, k in enumerate(keys) if k is None])
        if missing.any():
            row = int(np.argmax(missing)) + 1
            raise PoolbertError(f"{where}: missing label in column {column!r} at row {row}")
    _check_known(mapped[:-1], keys, uniques, codes, column, where, names, custom)
    return mapped[codes]


def _label_index(key: str | None, names: list[str], custom: bool, unlabeled_ok: bool) -> int:
    """Index into `names`, -1 for unlabeled, -2 for a value that is no label."""
    if key is None or (unlabeled_ok and key == "-1"):
        return -1 if unlabeled_ok else -2
    if key in names:
        return names.index(key)
    if not custom and _is_int_key(key) and 0 <= int(key) < len(names):
        return int(key)  # task data stores labels as indices into the preset's names
    return -2


def _check_known(mapped: np.ndarray, keys: list[str | None], uniques: Any, codes: np.ndarray,
                 column: str, where: str, names: list[str], custom: bool) -> None:
    bad = [u for u, k in enumerate(keys) if mapped[u] == -2 and k is not None]
    if not bad:
        return
    u = bad[0]  # factorize numbers values by first appearance, so this is the earliest row
    value, row, listed = _show(uniques[u]), int(np.argmax(codes == u)) + 1, ", ".join(names)
    if custom:
        raise PoolbertError(f"{where}: label {value} in column {column!r} (row {row}) does not "
                            f"occur in the train split (train labels: {listed})")
    expected = f"{listed} or 0-{len(names) - 1}"
    if len(bad) == sum(k is not None for k in keys):
        raise PoolbertError(f"{where}: column {column!r} does not hold labels (first value "
                            f"{value} at row {row}); expected {expected}")
    raise PoolbertError(f"{where}: unknown label {value} in column {column!r} (row {row}); "
                        f"expected {expected}")


def _show(value: Any, limit: int = 60) -> str:
    """A value for an error message: repr, cut short so the message stays one readable line."""
    text = repr(value.item() if isinstance(value, np.generic) else value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_column(frame: pd.DataFrame, column: str, where: str) -> None:
    if column not in frame.columns:
        present = ", ".join(map(str, frame.columns))
        raise PoolbertError(f"{where}: missing column {column!r} (columns present: {present})")


# ----------------------------------------------------------------------------- multi-label


def label_list(value: Any) -> list[str] | None:
    """A multi-label cell as label keys: a list (JSON array, parquet list), a JSON array as
    text, or names separated by `|`; an empty list or string means no label; None if missing."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except json.JSONDecodeError:
                return None  # not a list after all: reported as such by the caller
        else:
            return [part.strip() for part in text.split("|") if part.strip()]
    if is_container(value) and not isinstance(value, dict | set):
        keys = [_label_key(v) for v in list(value)]
        return [k for k in keys if k is not None]
    return None if is_missing(value) else [_label_key(value) or ""]


def multilabel_names(series: pd.Series, column: str, where: str) -> list[str]:
    """The label names of a multi-label list column: every name train uses, sorted."""
    names: set[str] = set()
    for row, value in enumerate(series.tolist(), start=1):
        keys = label_list(value)
        if keys is None:
            raise PoolbertError(f"{where}: labels in column {column!r} at row {row} are not a "
                                f"list of labels: {_show(value)}")
        names.update(keys)
    if not names:
        raise PoolbertError(f"{where}: column {column!r} holds no labels")
    return _sorted_keys(names)


def parse_label_lists(series: pd.Series, column: str, where: str, names: list[str],
                      unlabeled_ok: bool) -> np.ndarray:
    """(N, C) 0/1 floats; a row without its labels (unlabeled_ok: a test split) is all -1."""
    out = np.zeros((len(series), len(names)), dtype=np.float32)
    index = {name: i for i, name in enumerate(names)}
    for row, value in enumerate(series.tolist(), start=1):
        keys = label_list(value)
        if keys is None:
            if unlabeled_ok and is_missing(value):
                out[row - 1] = -1
                continue
            raise PoolbertError(f"{where}: labels in column {column!r} at row {row} are not a "
                                f"list of labels: {_show(value)}")
        for key in keys:
            if key not in index:
                raise PoolbertError(f"{where}: unknown label {key!r} in column {column!r} (row "
                                    f"{row}); the labels: {', '.join(names)}")
            out[row - 1, index[key]] = 1
    return out


COLUMN_FLAGS = {"0": 0, "1": 1, "false": 0, "true": 1}  # what a 0/1 label column may hold


def parse_label_columns(frame: pd.DataFrame, columns: list[str], where: str,
                        unlabeled_ok: bool) -> np.ndarray:
    """(N, C) 0/1 floats from one 0/1 (or true/false) column per label."""
    out = np.zeros((len(frame), len(columns)), dtype=np.float32)
    for j, column in enumerate(columns):
        require_column(frame, column, where)
        for row, value in enumerate(frame[column].tolist(), start=1):
            key = _label_key(value)
            flag = COLUMN_FLAGS.get((key or "").lower())
            if flag is None:
                if unlabeled_ok and key in (None, "-1"):
                    out[row - 1] = -1
                    continue
                raise PoolbertError(f"{where}: column {column!r} at row {row} holds "
                                    f"{_show(value)}; a label column holds 0 or 1")
            out[row - 1, j] = flag
    return out


# ----------------------------------------------------------------------------- regression


def parse_targets(series: pd.Series, column: str, where: str, unlabeled_ok: bool) -> np.ndarray:
    """(N,) float32 regression targets; a missing one (unlabeled_ok: a test split) is NaN."""
    out = np.empty(len(series), dtype=np.float32)
    for row, value in enumerate(series.tolist(), start=1):
        if is_missing(value) or (isinstance(value, str) and not value.strip()):
            if unlabeled_ok:
                out[row - 1] = np.nan
                continue
            raise PoolbertError(f"{where}: missing regression target in column {column!r} at "
                                f"row {row}")
        try:
            if isinstance(value, bool) or is_container(value):
                raise ValueError
            number = float(value)
        except (TypeError, ValueError):
            raise PoolbertError(f"{where}: regression target {_show(value)} in column "
                                f"{column!r} at row {row} is not a number") from None
        if not np.isfinite(number):
            raise PoolbertError(f"{where}: regression target {_show(value)} in column "
                                f"{column!r} at row {row} is not finite")
        out[row - 1] = number
    return out
