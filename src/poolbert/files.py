"""Writing outputs safely: never half-written, never silently over an earlier run.

Every file poolbert writes goes through `atomic_open` (a temporary sibling, renamed into place
on success) and every folder through `atomic_dir`."""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from .errors import PoolbertError


def check_output_dir(path: str | os.PathLike, overwrite: bool) -> Path:
    """Refuse an existing non-empty output directory unless `overwrite` (checked before any work)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise PoolbertError(f"output path exists and is not a directory: {path}")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise PoolbertError(f"output directory exists: {path} (use --overwrite to replace it)")
    return path


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike, overwrite: bool = False) -> Iterator[Path]:
    """Yield a temporary sibling directory; on success it replaces `path` in one rename.

    On an exception (or Ctrl-C) the temporary directory is removed and `path` is untouched, so a
    folder at `path` is always complete.
    """
    path = check_output_dir(path, overwrite)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    make_ordinary(tmp)
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    replace_dir(tmp, path)


def make_ordinary(folder: Path) -> None:
    """mkdtemp makes a folder private (0700); a finished run is an ordinary folder that a web
    server or a colleague can read (0777 less the umask)."""
    mask = os.umask(0)
    os.umask(mask)
    folder.chmod(0o777 & ~mask)


def replace_dir(src: Path, dst: Path) -> None:
    """Move a finished directory into place; an earlier one is moved aside first, then deleted."""
    old = None
    if dst.exists():
        old = dst.with_name(f".{dst.name}.old-{os.getpid()}")
        dst.rename(old)
    src.rename(dst)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def refuse_unfinished(path: str | os.PathLike) -> None:
    """A folder left by a killed save (atomic_dir's `.name.tmp-*`, replace_dir's `.name.old-*`)
    is never a model to load, even when its files look complete."""
    name = Path(path).name
    if name.startswith(".") and (".tmp-" in name or ".old-" in name):
        raise PoolbertError(f"{path}: an unfinished save left by a stopped process, not a model "
                            "(delete it)")


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike) -> Iterator[TextIO]:
    """A text file written under a temporary sibling name, renamed into place only on success."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            yield handle
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_open(path) as handle:
        handle.write(text)


def write_json(path: str | os.PathLike, data: Any) -> None:
    write_text(path, json.dumps(data, indent=2, default=_json_default) + "\n")


def write_jsonl(path: str | os.PathLike, rows: list[dict]) -> None:
    write_text(path, "".join(json.dumps(row, default=_json_default) + "\n" for row in rows))


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PoolbertError(f"file not found: {path}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PoolbertError(f"{path}: not valid JSON ({exc})") from None


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    path = Path(path)
    if not path.exists():
        raise PoolbertError(f"file not found: {path}")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def _json_default(value: Any) -> Any:
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def library_versions() -> dict[str, str]:
    """Versions that decide a run's numbers, recorded in every config.json."""
    from importlib.metadata import PackageNotFoundError, version

    versions = {"python": platform.python_version()}
    for name in ("poolbert", "torch", "transformers", "tokenizers", "datasets", "optuna"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = "not installed"
    return versions
