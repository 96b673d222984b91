"""Loading, validating, tokenising and batching text-classification data.

Every problem with the user's data becomes a one-line `PoolbertError` naming the file and the
column or value, so the CLI can print it without a traceback.
"""

from __future__ import annotations

import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from .config import DataConfig
from .errors import PoolbertError
from .tables import READ_SUFFIXES, read_table
from .text import first_line

HUB_DATASET = "nyu-mll/glue"
DATA_DIR_ENV = "POOLBERT_DATA_DIR"
SPLITS = ("train", "validation", "test")
ID_COLUMNS = ("idx", "index")  # the hub's `idx`, the original GLUE TSVs' `index`
SUBSET_SEED = 0
MEGABATCH_FACTOR = 50  # as transformers' LengthGroupedSampler


@dataclass
class TaskSpec:
    name: str
    text_columns: list[str]
    label_names: list[str]
    validation_split: str = "validation"
    test_split: str = "test"
    # the original GLUE TSVs name some columns differently from the hub (original -> hub name)
    tsv_aliases: dict[str, str] = field(default_factory=dict)


GLUE_TASKS: dict[str, TaskSpec] = {
    "rte": TaskSpec("rte", ["sentence1", "sentence2"], ["entailment", "not_entailment"]),
    "cola": TaskSpec("cola", ["sentence"], ["unacceptable", "acceptable"]),
    "sst2": TaskSpec("sst2", ["sentence"], ["negative", "positive"]),
    "mrpc": TaskSpec(
        "mrpc", ["sentence1", "sentence2"], ["not_equivalent", "equivalent"],
        tsv_aliases={"#1 String": "sentence1", "#2 String": "sentence2", "Quality": "label"},
    ),
    "qqp": TaskSpec(
        "qqp", ["question1", "question2"], ["not_duplicate", "duplicate"],
        tsv_aliases={"is_duplicate": "label"},
    ),
    "mnli": TaskSpec(
        "mnli", ["premise", "hypothesis"], ["entailment", "neutral", "contradiction"],
        validation_split="validation_matched", test_split="test_matched",
        tsv_aliases={"sentence1": "premise", "sentence2": "hypothesis", "gold_label": "label"},
    ),
    "qnli": TaskSpec("qnli", ["question", "sentence"], ["entailment", "not_entailment"]),
    "wnli": TaskSpec("wnli", ["sentence1", "sentence2"], ["not_entailment", "entailment"]),
}


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


@dataclass
class Encoded:
    input_ids: list[np.ndarray]
    token_type_ids: list[np.ndarray] | None
    labels: np.ndarray
    lengths: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


# ----------------------------------------------------------------------------- loading


def load_data(cfg: DataConfig) -> LoadedData:
    """Read, validate and (optionally) subsample train/validation[/test] as `cfg` describes."""
    spec = task_spec(cfg.task)
    files, source = _resolve_files(cfg, spec)
    if files is None:
        frames = _load_hub(spec)
        where = {s: f"{source}:{s}" for s in SPLITS}
    else:
        frames = {s: read_table(p) for s, p in files.items() if p is not None}
        where = {s: str(p) for s, p in files.items() if p is not None}
    columns = _text_columns(cfg, spec, frames["train"], where["train"])
    needed = [*columns, cfg.label_column]
    frames = {s: _apply_aliases(f, spec, needed) for s, f in frames.items()}
    label_names = _label_names(spec, frames["train"], cfg.label_column, where["train"])
    splits = {
        s: _build_split(s, f, where[s], columns, cfg.label_column, label_names, spec is None)
        for s, f in frames.items()
    }
    train = _subsample(splits["train"], cfg.max_train_samples)
    validation = _subsample(splits["validation"], cfg.max_eval_samples)
    return LoadedData(train, validation, splits.get("test"), label_names, columns, source)


def task_spec(task: str | None) -> TaskSpec | None:
    """The GLUE preset for `task` (case-insensitive), None for custom data."""
    if task is None or task == "":
        return None
    spec = GLUE_TASKS.get(task.lower())
    if spec is None:
        known = ", ".join(sorted(GLUE_TASKS))
        raise PoolbertError(f"unknown task {task!r}; known tasks: {known} (or none: custom data)")
    return spec


def _resolve_files(cfg: DataConfig,
                   spec: TaskSpec | None) -> tuple[dict[str, Path | None] | None, str]:
    """Paths per split (explicit files first) and a source description; None means the hub."""
    explicit = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    root = Path(cfg.data_dir) if cfg.data_dir else _env_task_dir(spec)
    if root is None and not any(explicit.values()):
        if spec is None:
            raise PoolbertError("no data: give a task, --data-dir or train/validation files")
        return None, f"hub:{HUB_DATASET}/{spec.name}"
    if cfg.data_dir and not root.is_dir():
        raise PoolbertError(f"data_dir not found: {root}")
    found = {s: _find_split_file(root, s, spec) for s in SPLITS} if root else {}
    files = {s: Path(explicit[s]) if explicit[s] else found.get(s) for s in SPLITS}
    for split in ("train", "validation"):
        if files[split] is None:
            place = f"in {root} (looked for {_candidate_names(split, spec)})" if root else ""
            raise PoolbertError(f"no {split} file {place}".strip() + f"; set {split}_file")
    return files, str(cfg.train_file or root)


def _env_task_dir(spec: TaskSpec | None) -> Path | None:
    """`$POOLBERT_DATA_DIR/glue/<task>` when that folder exists (a shared local mirror)."""
    root = os.environ.get(DATA_DIR_ENV)
    if not root or spec is None:
        return None
    folder = Path(root) / "glue" / spec.name
    return folder if folder.is_dir() else None


def _split_stems(split: str, spec: TaskSpec | None) -> list[str]:
    """File stems a split may use: the hub's split names and the original GLUE `dev`."""
    if split == "train":
        return ["train"]
    if split == "validation":
        extra = [spec.validation_split, "dev_matched"] if spec and spec.name == "mnli" else []
        return [*extra, "validation", "dev", "valid", "val"]
    return [spec.test_split, "test"] if spec and spec.test_split != "test" else ["test"]


def _candidate_names(split: str, spec: TaskSpec | None) -> str:
    names = [f"{stem}{ext}" for stem in _split_stems(split, spec) for ext in READ_SUFFIXES]
    return ", ".join(names[:6]) + (", ..." if len(names) > 6 else "")


def _find_split_file(root: Path, split: str, spec: TaskSpec | None) -> Path | None:
    for stem in _split_stems(split, spec):
        for ext in READ_SUFFIXES:
            path = root / f"{stem}{ext}"
            if path.is_file():
                return path
    return None


def _load_hub(spec: TaskSpec) -> dict[str, pd.DataFrame]:
    """The real GLUE download; any failure (usually no network) becomes one clear line."""
    try:
        import datasets

        dataset = datasets.load_dataset(HUB_DATASET, spec.name)
        names = {"train": "train", "validation": spec.validation_split, "test": spec.test_split}
        return {s: dataset[n].to_pandas() for s, n in names.items() if n in dataset}
    except Exception as exc:  # connection, auth and dataset errors all mean the same to the user
        raise PoolbertError(
            f"could not reach the Hugging Face hub for {HUB_DATASET}/{spec.name} "
            f"({first_line(exc)}); download the data and pass --data-dir"
        ) from None


def _text_columns(cfg: DataConfig, spec: TaskSpec | None, frame: pd.DataFrame,
                  where: str) -> list[str]:
    columns = list(cfg.text_columns) if cfg.text_columns else None
    if columns is None and spec is None:
        present = ", ".join(map(str, frame.columns))
        raise PoolbertError(f"{where}: custom data needs text_columns (columns present: {present})")
    columns = columns or list(spec.text_columns)
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


# ----------------------------------------------------------------------------- validation


def _build_split(name: str, frame: pd.DataFrame, where: str, text_columns: list[str],
                 label_column: str, label_names: list[str], custom: bool) -> TextSplit:
    for column in text_columns:
        _require_column(frame, column, where)
    texts = [texts_of(frame[c], c, where) for c in text_columns]
    if name == "test" and label_column not in frame.columns:
        labels = np.full(len(frame), -1, dtype=np.int64)  # GLUE test sets hide their labels
    else:
        _require_column(frame, label_column, where)
        labels = _labels(frame[label_column], label_column, where, label_names, custom,
                         unlabeled_ok=name == "test")
    return TextSplit(name, texts[0], texts[1] if len(texts) > 1 else None, labels, _ids(frame))


def _require_column(frame: pd.DataFrame, column: str, where: str) -> None:
    if column not in frame.columns:
        present = ", ".join(map(str, frame.columns))
        raise PoolbertError(f"{where}: missing column {column!r} (columns present: {present})")


def texts_of(series: pd.Series, column: str, where: str, offset: int = 0) -> list[str]:
    """A column's texts; a missing, empty or non-text cell is an error naming its row (rows
    counted from 1 after the header, plus `offset` for a chunk of a longer file)."""
    out = []
    for row, value in enumerate(series.tolist(), start=offset + 1):
        if _is_container(value):  # JSON arrays/objects, parquet list columns
            raise PoolbertError(f"{where}: text in column {column!r} at row {row} is a "
                                f"{type(value).__name__}, not a string")
        text = value if isinstance(value, str) else None if _is_missing(value) else str(value)
        if text is None or not text.strip():
            raise PoolbertError(f"{where}: empty text in column {column!r} at row {row}")
        out.append(text)
    return out


def _is_container(value: Any) -> bool:
    return isinstance(value, list | dict | tuple | set | np.ndarray)


def _is_missing(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def _label_key(value: Any) -> str | None:
    """A label as a comparable string: integers (also 1.0, "1") in decimal form; None if missing."""
    if _is_missing(value):
        return None
    if isinstance(value, bool | np.bool_ | numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return str(int(value)) if float(value).is_integer() else str(value)
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


def _label_names(spec: TaskSpec | None, train: pd.DataFrame, column: str, where: str) -> list[str]:
    """The preset's names, or for custom data the sorted distinct train labels."""
    if spec is not None:
        return list(spec.label_names)
    _require_column(train, column, where)
    keys = {_label_key(v) for v in _factorize(train[column], column, where)[1]} - {None}
    if not keys:
        raise PoolbertError(f"{where}: column {column!r} holds no labels")
    if all(_is_int_key(k) for k in keys):
        return sorted(keys, key=int)
    return sorted(keys)


def _factorize(series: pd.Series, column: str, where: str) -> tuple[np.ndarray, Any]:
    """Codes per row and distinct values, in order of first appearance (NaN/None: code -1)."""
    containers = series.map(_is_container).to_numpy(dtype=bool)
    if containers.any():  # JSON arrays/objects: unhashable, and no label anyway
        row = int(np.argmax(containers)) + 1
        raise PoolbertError(f"{where}: label in column {column!r} at row {row} is not a single "
                            f"value: {_show(series.iloc[row - 1])}")
    return pd.factorize(series, use_na_sentinel=True)


def _labels(series: pd.Series, column: str, where: str, names: list[str], custom: bool,
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


# ----------------------------------------------------------------------------- tokenising


class TokenCache:
    """Tokenise each split once per max_length; tuning trials reuse the same arrays."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        # values keep their split alive, so an id() in a key is never reused by another object
        self._cache: dict[tuple[str, int, int], tuple[TextSplit, Encoded]] = {}

    def get(self, split: TextSplit, max_length: int) -> Encoded:
        key = (split.name, id(split), max_length)
        if key not in self._cache:
            self._cache[key] = (split, encode(self.tokenizer, split, max_length))
        return self._cache[key][1]


def encode(tokenizer: Any, split: TextSplit, max_length: int) -> Encoded:
    """One batched call of the fast tokenizer; truncated, unpadded (padding happens per batch)."""
    out = tokenizer(split.texts_a, split.texts_b, truncation=True, max_length=max_length,
                    padding=False, return_attention_mask=False)
    as_arrays = lambda rows: [np.asarray(r, dtype=np.int64) for r in rows]  # noqa: E731
    input_ids = as_arrays(out["input_ids"])
    types = as_arrays(out["token_type_ids"]) if "token_type_ids" in out else None
    lengths = np.array([len(r) for r in input_ids], dtype=np.int64)
    return Encoded(input_ids, types, split.labels.astype(np.int64), lengths)


# ----------------------------------------------------------------------------- batching


def _cut(order: np.ndarray, size: int) -> list[np.ndarray]:
    return [order[i : i + size] for i in range(0, len(order), size)]


def train_batches(enc: Encoded, batch_size: int, seed: int, epoch: int,
                  group_by_length: bool = True) -> list[np.ndarray]:
    """Index arrays for one epoch, the same for the same (seed, epoch); last partial kept."""
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(enc))
    if not group_by_length:
        return _cut(order, batch_size)
    # as LengthGroupedSampler: sort within megabatches, so batches pad little but stay random
    mega = [m[np.argsort(-enc.lengths[m], kind="stable")]
            for m in _cut(order, MEGABATCH_FACTOR * batch_size)]
    batches = _cut(np.concatenate(mega), batch_size) if mega else []
    batches = [batches[i] for i in rng.permutation(len(batches))]
    if batches:  # the longest batch first: an out-of-memory shows at step 1, not mid-epoch
        longest = max(range(len(batches)), key=lambda b: enc.lengths[batches[b]].max())
        batches.insert(0, batches.pop(longest))
    return batches


def eval_batches(enc: Encoded, batch_size: int) -> list[np.ndarray]:
    """Indices sorted by length (longest first) so batches pad little; callers restore order."""
    return _cut(np.argsort(-enc.lengths, kind="stable"), batch_size)


def bucket_width(longest: int, multiple: int | None, cap: int | None = None) -> int:
    """The padded width of a batch: its longest row, rounded up to `multiple` and capped at
    `cap` (max_length), so a GPU sees a handful of shapes instead of one per length."""
    if not multiple:
        return longest
    width = -(-longest // multiple) * multiple
    return max(longest, min(width, cap)) if cap else width


def collate(enc: Encoded, indices: np.ndarray, pad_id: int,
            pad_to_multiple_of: int | None = None, cap: int | None = None,
            width: int | None = None) -> dict[str, torch.Tensor]:
    """Pad a batch to its longest row, rounded up to a multiple and capped (`bucket_width`), or
    to a given `width` (several packed trials' batches share one)."""
    indices = np.asarray(indices, dtype=np.int64)
    lengths = enc.lengths[indices]
    if width is None:
        width = bucket_width(int(lengths.max()) if len(indices) else 0, pad_to_multiple_of, cap)
    input_ids = np.full((len(indices), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(indices), width), dtype=np.int64)
    types = np.zeros_like(mask) if enc.token_type_ids is not None else None
    for row, (i, n) in enumerate(zip(indices, lengths, strict=True)):
        input_ids[row, :n] = enc.input_ids[i]
        mask[row, :n] = 1
        if types is not None:
            types[row, :n] = enc.token_type_ids[i]
    batch = {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(mask)}
    if types is not None:
        batch["token_type_ids"] = torch.from_numpy(types)
    batch["labels"] = torch.from_numpy(enc.labels[indices].astype(np.int64))
    return batch


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Copy a batch to `device`; on CUDA through pinned memory without waiting, so the host
    goes on collating the next batch while the GPU works."""
    if device.type != "cuda":
        return {k: v.to(device) for k, v in batch.items()}
    return {k: v.pin_memory().to(device, non_blocking=True) for k, v in batch.items()}
