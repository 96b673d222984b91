"""The one reader and writer of the user's tables: csv, tsv, jsonl/json and parquet.

Training data, `evaluate` and `predict` read their files here, so every command refuses the
same malformed input with the same one-line error naming the file and the line: a row with more
or fewer fields than the header (pandas would silently shift it under an index, or pad it),
broken quoting, a line that is not JSON. Text cells stay text: nothing is guessed from them.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TextIO

import pandas as pd
import pyarrow as pa

from .errors import PoolbertError
from .files import atomic_open
from .text import first_line

READ_SUFFIXES = (".parquet", ".csv", ".tsv", ".jsonl", ".json")
WRITE_SUFFIXES = (".csv", ".tsv", ".jsonl")
# pyarrow and the codecs raise their own types for a file they cannot parse
READ_ERRORS = (ValueError, UnicodeError, pa.ArrowException, OSError, csv.Error)


@contextlib.contextmanager
def reading_errors(path: Path) -> Iterator[None]:
    """Turn a reader's failure (bad bytes, parser, arrow) into one line naming the file."""
    try:
        yield
    except PoolbertError:
        raise
    except UnicodeDecodeError as exc:
        raise PoolbertError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except READ_ERRORS as exc:
        raise PoolbertError(f"{path}: cannot read: {first_line(exc)}") from None


def check_readable(path: Path) -> None:
    if path.suffix.lower() not in READ_SUFFIXES:
        raise PoolbertError(f"{path}: unsupported file type {path.suffix!r} "
                            f"(use {', '.join(READ_SUFFIXES)})")
    if not path.is_file():
        raise PoolbertError(f"{path}: file not found")
    if path.stat().st_size == 0:
        raise PoolbertError(f"{path}: file is empty")


def read_table(path: str | os.PathLike, names: list[str] | None = None) -> pd.DataFrame:
    """A whole file as a DataFrame with string column names; at least one row. `names`: a
    csv/tsv without a header line, its columns."""
    path = Path(path)
    chunks = list(read_chunks(path, chunk_size=None, names=names))
    frame = pd.concat(chunks, ignore_index=True) if len(chunks) > 1 else chunks[0]
    if len(frame) == 0:
        raise PoolbertError(f"{path}: no rows")
    return frame


def read_chunks(path: str | os.PathLike, chunk_size: int | None,
                names: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """The file in DataFrames of `chunk_size` rows (None: one frame), in file order; the first
    frame is yielded (possibly empty) before a later malformed row is found."""
    path = Path(path)
    check_readable(path)
    suffix = path.suffix.lower()
    with reading_errors(path):
        if suffix in (".csv", ".tsv"):
            yield from _delimited(path, chunk_size, tsv=suffix == ".tsv", names=names)
        elif suffix == ".parquet":
            yield from _parquet(path, chunk_size)
        else:
            yield from _json(path, chunk_size)


def _delimited(path: Path, chunk_size: int | None, tsv: bool,
               names: list[str] | None = None) -> Iterator[pd.DataFrame]:
    """csv (quoted fields may hold commas, quotes and newlines) or tsv (GLUE's: never quoted,
    so sentences keep unbalanced quotes); every row must have the header's number of fields."""
    with path.open(encoding="utf-8-sig", errors="strict", newline="") as handle:
        reader = (csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE) if tsv
                  else csv.reader(handle, quoting=csv.QUOTE_MINIMAL, strict=True))
        header = names or next((row for row in reader if row), None)
        if header is None:
            raise PoolbertError(f"{path}: file is empty")
        _check_header(header, path)
        rows: list[list[str]] = []
        for fields in reader:
            if not fields:
                continue  # a blank line
            if len(fields) != len(header):
                raise PoolbertError(
                    f"{path}: cannot read: line {reader.line_num}: {len(fields)} fields where the "
                    f"header has {len(header)} ({', '.join(header)})")
            rows.append(fields)
            if chunk_size is not None and len(rows) == chunk_size:
                yield pd.DataFrame(rows, columns=header, dtype=str)
                rows = []
        if rows or chunk_size is None:
            yield pd.DataFrame(rows, columns=header, dtype=str)


def _check_header(header: list[str], path: Path) -> None:
    seen = set()
    for name in header:
        if name in seen:
            raise PoolbertError(f"{path}: cannot read: column {name!r} appears twice in the "
                                "header")
        seen.add(name)


def _parquet(path: Path, chunk_size: int | None) -> Iterator[pd.DataFrame]:
    import pyarrow.parquet as pq

    if chunk_size is None:
        frame = pd.read_parquet(path)
        frame.columns = [str(c) for c in frame.columns]
        yield frame
        return
    for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size):
        frame = batch.to_pandas()
        frame.columns = [str(c) for c in frame.columns]
        yield frame


def _json(path: Path, chunk_size: int | None) -> Iterator[pd.DataFrame]:
    """JSON lines (one object per line), or a .json file holding one array of objects."""
    with path.open(encoding="utf-8", errors="strict") as handle:
        if path.suffix.lower() == ".json" and handle.read(64).lstrip().startswith("["):
            handle.seek(0)
            items = json.load(handle)
            for i, item in enumerate(items, start=1):
                _check_record(item, path, f"item {i}")
            yield pd.DataFrame.from_records(items)
            return
        handle.seek(0)
        records: list[dict[str, Any]] = []
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise PoolbertError(f"{path}: cannot read: line {number}: not JSON ({exc.msg})"
                                    ) from None
            _check_record(record, path, f"line {number}")
            records.append(record)
            if chunk_size is not None and len(records) == chunk_size:
                yield pd.DataFrame.from_records(records)
                records = []
        if records or chunk_size is None:
            yield pd.DataFrame.from_records(records)


def _check_record(record: Any, path: Path, where: str) -> None:
    if not isinstance(record, dict):
        raise PoolbertError(f"{path}: cannot read: {where}: expected a JSON object of column: "
                            f"value, got a {type(record).__name__}")


def check_writable(path: Path, overwrite: bool) -> None:
    """An output table: a known suffix, a folder that exists, nothing replaced by accident."""
    if path.suffix.lower() not in WRITE_SUFFIXES:
        raise PoolbertError(f"{path}: unsupported output file type {path.suffix!r} "
                            f"(use {', '.join(WRITE_SUFFIXES)})")
    check_output_file(path, overwrite)


def check_output_file(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise PoolbertError(f"{path}: is a directory, expected a file name")
    if path.exists() and not overwrite:
        raise PoolbertError(f"{path}: exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise PoolbertError(f"{path.parent}: folder not found")


@contextlib.contextmanager
def open_table(path: Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A `write(frame)` function appending rows as csv, tsv or jsonl (by suffix), atomically."""
    kind = path.suffix.lower()
    with atomic_open(path) as handle:
        header = [True]

        def write(frame: pd.DataFrame) -> None:
            _write_frame(handle, frame, kind, header[0])
            header[0] = False

        yield write


def _write_frame(handle: TextIO, frame: pd.DataFrame, kind: str, header: bool) -> None:
    if kind == ".jsonl":
        text = frame.to_json(orient="records", lines=True, force_ascii=False)
        handle.write(text.rstrip("\n") + "\n" if len(frame) else "")
    else:
        frame.to_csv(handle, sep="\t" if kind == ".tsv" else ",", index=False, header=header,
                     lineterminator="\n")
