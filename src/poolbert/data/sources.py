"""Where a task's splits come from: explicit files, a data folder, $POOLBERT_DATA_DIR, or the Hub.

Each split arrives as a DataFrame with a description of where it came from, for error messages.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd

from ..config import DataConfig
from ..errors import PoolbertError
from ..tables import READ_SUFFIXES, read_table
from ..text import first_line
from .tasks import HUB_DATASET, TaskSpec

DATA_DIR_ENV = "POOLBERT_DATA_DIR"
SPLITS = ("train", "validation", "test")


def split_names(spec: TaskSpec | None) -> list[str]:
    """train, validation, test, and the task's further validation splits (MNLI mismatched)."""
    return [*SPLITS, *(spec.extra_validation.values() if spec else ())]


def read_splits(cfg: DataConfig, spec: TaskSpec | None
                ) -> tuple[dict[str, pd.DataFrame], dict[str, str], str]:
    """Each split's rows, where each came from (for messages), and the data's source."""
    files, source = _resolve_files(cfg, spec)
    if files is None:
        assert spec is not None  # _resolve_files sends only a task to the Hub
        frames = _load_hub(spec)
        return frames, {s: f"{source}:{s}" for s in frames}, source
    frames = {s: _read_file(p, spec) for s, p in files.items() if p is not None}
    return frames, {s: str(p) for s, p in files.items() if p is not None}, source


def _read_file(path: Path, spec: TaskSpec | None) -> pd.DataFrame:
    """A split's table; GLUE's CoLA train and dev TSVs come without a header line."""
    names = spec.headerless_columns if spec else None
    if spec and names and path.suffix.lower() == ".tsv":
        with path.open(encoding="utf-8-sig", errors="replace") as handle:
            first = handle.readline().rstrip("\r\n").split("\t")
        if not set(spec.text_columns) & set(first):  # a data row, not a header
            return read_table(path, names=names)
    return read_table(path)


def _resolve_files(cfg: DataConfig,
                   spec: TaskSpec | None) -> tuple[dict[str, Path | None] | None, str]:
    """Paths per split (explicit files first) and a source description; None means the hub."""
    explicit = {"train": cfg.train_file, "validation": cfg.validation_file, "test": cfg.test_file}
    root = Path(cfg.data_dir) if cfg.data_dir else _env_task_dir(spec)
    if root is None and not any(explicit.values()):
        if spec is None:
            raise PoolbertError("no data: give a task, --data-dir or train/validation files")
        return None, f"hub:{HUB_DATASET}/{spec.name}"
    if root is not None and cfg.data_dir and not root.is_dir():
        raise PoolbertError(f"data_dir not found: {root}")
    found = {s: _find_split_file(root, s, spec) for s in split_names(spec)} if root else {}
    files = {s: Path(given) if (given := explicit.get(s)) else found.get(s)
             for s in split_names(spec)}
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
    if split.startswith("validation_"):  # validation_mismatched: GLUE's dev_mismatched
        return [split, "dev_" + split.removeprefix("validation_")]
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
        names = {"train": "train", "validation": spec.validation_split, "test": spec.test_split,
                 **{s: s for s in spec.extra_validation.values()}}
        return {s: dataset[n].to_pandas() for s, n in names.items() if n in dataset}
    except Exception as exc:  # connection, auth and dataset errors all mean the same to the user
        raise PoolbertError(
            f"could not reach the Hugging Face hub for {HUB_DATASET}/{spec.name} "
            f"({first_line(exc)}); download the data and pass --data-dir"
        ) from None
