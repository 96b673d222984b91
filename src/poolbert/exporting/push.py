"""An export on the Hugging Face Hub: `push` exports (unless given an export) and uploads."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path

from ..errors import PoolbertError
from ..text import first_line, redact
from .convert import export_model
from .sources import resolve_source

NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"
COMMIT_MESSAGE = "Upload model with poolbert"


def push(
    source: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    head: str = "best",
    license: str = "apache-2.0",
    echo: Callable[[str], None] = print,
) -> list[tuple[str, int]]:
    """Export `source` (unless it is an export already) and upload it; returns (file, bytes)."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PoolbertError(f"invalid --repo-id {repo_id!r}: {first_line(exc)}") from None
    token = None if dry_run else get_token()
    if not dry_run and not token:
        raise PoolbertError(NO_TOKEN)
    src = resolve_source(source, head)
    with tempfile.TemporaryDirectory(prefix="poolbert-push-") as tmp:
        folder = src.model_dir if src.exported else export_model(
            source, Path(tmp) / "export", head=head, license=license, repo_id=repo_id)
        files = folder_files(folder)
        if dry_run:
            where = folder if src.exported else f"an export of {source}"
            _list_files(files, f"dry run: would upload {len(files)} files from {where} to "
                        f"{repo_id}" + (f" (branch {revision})" if revision else "") + ":", echo)
            return files
        url = _upload(folder, repo_id, token, private, revision, commit_message)
    echo(f"pushed {len(files)} files to {url}")
    return files


def _list_files(files: list[tuple[str, int]], title: str, echo: Callable[[str], None]) -> None:
    echo(title)
    for name, size in files:
        echo(f"  {human_size(size):>10}  {name}")
    echo(f"  {human_size(sum(s for _, s in files)):>10}  total")


def _upload(folder: Path, repo_id: str, token: str | None, private: bool, revision: str | None,
            commit_message: str | None) -> str:
    """create_repo + upload_folder; every failure is one line naming the repo, token redacted."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                 commit_message=commit_message or COMMIT_MESSAGE)
    except Exception as exc:  # network, HTTP, auth: all mean "not pushed" to the user
        reason = first_line(exc)
        if isinstance(exc, HfHubHTTPError):
            if exc.response is not None and exc.response.status_code in (401, 403):
                reason += " (check that the token is valid and has write access)"
        elif isinstance(exc, OSError) or type(exc).__module__.split(".")[0].startswith("httpx"):
            reason = f"cannot reach the Hugging Face Hub ({reason})"
        raise PoolbertError(f"push to {repo_id} failed: {redact(reason, token)}") from None
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}")


def folder_files(folder: Path) -> list[tuple[str, int]]:
    """(relative path, bytes) of every file below `folder`, in path order."""
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size)
                  for p in folder.rglob("*") if p.is_file())


def human_size(size: float) -> str:
    """1234567 -> '1.2 MB' (decimal units, as the Hub shows sizes)."""
    if size < 1000:
        return f"{size:.0f} B"
    units = ["kB", "MB", "GB"]
    size /= 1000
    while size >= 1000 and len(units) > 1:
        size /= 1000
        units.pop(0)
    return f"{size:.1f} {units[0]}"
