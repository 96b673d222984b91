"""FileLock: an exclusive lock between the processes of one machine (the budget lock that
makes local workers meet a head's budget exactly, and the lock around heads/<head>/best/)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

try:  # POSIX; elsewhere workers of one machine do without the lock
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None  # type: ignore[assignment]  # FileLock then locks nothing


class FileLock:
    """An exclusive lock between the processes of one machine (flock); release() is idempotent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._handle: Any = None

    def acquire(self) -> FileLock:
        if fcntl is not None and self._handle is None:
            handle = open(self.path, "a+")  # held open until release()
            fcntl.flock(handle, fcntl.LOCK_EX)
            self._handle = handle
        return self

    def release(self) -> None:
        if self._handle is not None:
            handle, self._handle = self._handle, None
            fcntl.flock(handle, fcntl.LOCK_UN)
            handle.close()

    def __enter__(self) -> FileLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
