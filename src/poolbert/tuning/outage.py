"""A storage that rides out an outage: every call retries a lost connection with backoff.

Every Optuna storage a study opens is wrapped in `RetryingStorage`. A call that fails because
the database connection was lost or refused (a restarted server, a dropped network), or because
a SQLite or journal file is locked or briefly unreadable, is tried again with backoff until the
storage answers or `patience` seconds have passed since it was lost. The first failure prints one
line, the first answer after it another. Past the bound the call raises `StorageLost`, and so
does every later call, at once: the worker stops with one line, and its RUNNING trial is failed
and re-queued by the next worker that runs (liveness.py).

Heartbeats are never retried in place: a missed beat is noted and the next beat tries again, so
the heartbeat thread never blocks and training goes on; a worker's main thread waits only when
it needs the storage itself (an epoch's report, a trial's records, the next trial). Right after
an outage no trial counts as stale until live workers have had time to beat again.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import optuna
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from .. import interrupts
from ..errors import PoolbertError
from ..text import first_line, redact

T = TypeVar("T")
FIRST_DELAY_S = 0.25  # the first retry; each next one waits twice as long, up to MAX_DELAY_S
MAX_DELAY_S = 5.0
# database errors that no retry cures: a missing database, table or role, a wrong password
PERMANENT = ("does not exist", "authentication failed", "no such table", "no such column",
             "already exists", "syntax error", "permission denied")


class StorageLost(PoolbertError):
    """The storage stayed unreachable past the bound (one line, exit code 2)."""


def is_transient(exc: BaseException) -> bool:
    """A lost or refused database connection, a locked SQLite file, an unreadable journal file:
    worth trying again. Bad data, a missing table or a finished trial are not."""
    sa: Any = None
    try:
        import sqlalchemy.exc as sa
    except ImportError:  # a journal file's storage needs no SQLAlchemy, and may run without it
        pass

    seen: BaseException | None = exc
    while seen is not None:
        if sa is not None:
            if isinstance(seen, sa.DBAPIError) and seen.connection_invalidated:
                return True
            if isinstance(seen, (sa.DisconnectionError, sa.InterfaceError, sa.TimeoutError)):
                return True
            if isinstance(seen, sa.OperationalError):
                return not any(text in str(seen).lower() for text in PERMANENT)
        if isinstance(seen, OSError):
            return not isinstance(seen, (PermissionError, IsADirectoryError, NotADirectoryError))
        seen = seen.__cause__  # Optuna raises StorageInternalError from SQLAlchemy's error
    return False


def root_cause(exc: BaseException) -> str:
    """The driver's own message (Optuna's wrapper says only that a commit failed)."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    return f"{type(exc).__name__}: {first_line(exc)}"


class RetryingStorage(BaseStorage):
    """`storage` with every call retried through an outage of up to `patience` seconds; lines
    about the outage start with `label` and name the storage as `description` (redacted)."""

    def __init__(self, storage: BaseStorage, patience: float, description: str,
                 label: str = "poolbert") -> None:
        self.inner = storage
        self.patience = patience
        self.description = redact(description)
        self.label = label
        self._lock = threading.Lock()
        self._lost_at: float | None = None  # time.monotonic() when the outage began
        self._back_at: float | None = None
        self._gave_up: str | None = None  # StorageLost's message, once given up

    # -- the retry loop -------------------------------------------------------------------

    def _retry(self, attempt: Callable[[], T]) -> T:
        if self._gave_up is not None:
            raise StorageLost(self._gave_up)
        delay = FIRST_DELAY_S
        while True:
            try:
                result = attempt()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                remaining = self._lost(exc)
                self._wait(min(delay, remaining))
                delay = min(2 * delay, MAX_DELAY_S)
                continue
            self._answered()
            return result

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        method = getattr(self.inner, name)
        return self._retry(lambda: method(*args, **kwargs))

    @staticmethod
    def _wait(seconds: float) -> None:
        """Sleep between attempts; a Ctrl-C (deferred while trials run) stops the wait."""
        main = threading.current_thread() is threading.main_thread()
        if main:
            interrupts.check()
        time.sleep(seconds)
        if main:
            interrupts.check()

    def _lost(self, exc: BaseException) -> float:
        """Note a failed call; the seconds left to retry it. Past the bound: StorageLost."""
        now = time.monotonic()
        reason = redact(root_cause(exc))
        with self._lock:
            if self._lost_at is None:
                self._lost_at = now
                self._say(f"storage {self.description} lost ({reason}); retrying for up to "
                          f"{self.patience:.0f} s, training goes on")
            remaining = self._lost_at + self.patience - now
            if remaining <= 0 and self._gave_up is None:
                self._gave_up = (f"storage {self.description} unreachable for "
                                 f"{self.patience:.0f} s ({reason}); stopped. Run the same "
                                 "command again to resume")
            gave_up = self._gave_up
        if gave_up is not None:
            raise StorageLost(gave_up) from None
        return remaining

    def _answered(self) -> None:
        if self._lost_at is None:  # the usual case, without taking the lock
            return
        with self._lock:
            if self._lost_at is not None:
                self._back_at = time.monotonic()
                self._say(f"storage {self.description} back after "
                          f"{self._back_at - self._lost_at:.0f} s")
                self._lost_at = None

    def _say(self, line: str) -> None:
        print(f"[{self.label}] {line}", file=sys.stderr, flush=True)

    def back_within(self, seconds: float) -> bool:
        """Whether the storage came back from an outage less than `seconds` ago."""
        return self._back_at is not None and time.monotonic() - self._back_at < seconds

    # -- BaseStorage, each call retried -----------------------------------------------------

    def create_new_study(self, *args: Any, **kwargs: Any) -> int:
        return self._call("create_new_study", *args, **kwargs)

    def delete_study(self, *args: Any, **kwargs: Any) -> None:
        self._call("delete_study", *args, **kwargs)

    def set_study_user_attr(self, *args: Any, **kwargs: Any) -> None:
        self._call("set_study_user_attr", *args, **kwargs)

    def set_study_system_attr(self, *args: Any, **kwargs: Any) -> None:
        self._call("set_study_system_attr", *args, **kwargs)

    def get_study_id_from_name(self, *args: Any, **kwargs: Any) -> int:
        return self._call("get_study_id_from_name", *args, **kwargs)

    def get_study_name_from_id(self, *args: Any, **kwargs: Any) -> str:
        return self._call("get_study_name_from_id", *args, **kwargs)

    def get_study_directions(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_study_directions", *args, **kwargs)

    def get_study_user_attrs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._call("get_study_user_attrs", *args, **kwargs)

    def get_study_system_attrs(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return self._call("get_study_system_attrs", *args, **kwargs)

    def get_all_studies(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("get_all_studies", *args, **kwargs)

    def create_new_trial(self, *args: Any, **kwargs: Any) -> int:
        return self._call("create_new_trial", *args, **kwargs)

    def set_trial_param(self, *args: Any, **kwargs: Any) -> None:
        self._call("set_trial_param", *args, **kwargs)

    def get_trial_id_from_study_id_trial_number(self, *args: Any, **kwargs: Any) -> int:
        return self._call("get_trial_id_from_study_id_trial_number", *args, **kwargs)

    def set_trial_state_values(self, trial_id: int, state: TrialState,
                               values: Sequence[float] | None = None) -> bool:
        """A retry after a lost answer may find its own first attempt done: that is success."""
        attempts = 0

        def attempt() -> bool:
            nonlocal attempts
            attempts += 1
            try:
                return self.inner.set_trial_state_values(trial_id, state, values)
            except optuna.exceptions.UpdateFinishedTrialError:
                if attempts > 1 and self.inner.get_trial(trial_id).state == state:
                    return True
                raise

        return self._retry(attempt)

    def set_trial_intermediate_value(self, *args: Any, **kwargs: Any) -> None:
        self._call("set_trial_intermediate_value", *args, **kwargs)

    def set_trial_user_attr(self, *args: Any, **kwargs: Any) -> None:
        self._call("set_trial_user_attr", *args, **kwargs)

    def set_trial_system_attr(self, *args: Any, **kwargs: Any) -> None:
        self._call("set_trial_system_attr", *args, **kwargs)

    def get_trial(self, *args: Any, **kwargs: Any) -> FrozenTrial:
        return self._call("get_trial", *args, **kwargs)

    def get_all_trials(self, *args: Any, **kwargs: Any) -> list[FrozenTrial]:
        return self._call("get_all_trials", *args, **kwargs)

    def get_n_trials(self, *args: Any, **kwargs: Any) -> int:
        return self._call("get_n_trials", *args, **kwargs)

    def get_best_trial(self, *args: Any, **kwargs: Any) -> FrozenTrial:
        return self._call("get_best_trial", *args, **kwargs)

    def remove_session(self) -> None:
        self.inner.remove_session()


class RetryingHeartbeatStorage(RetryingStorage, BaseHeartbeat):
    """RetryingStorage of a storage with Optuna's heartbeat (RDBStorage)."""

    inner: Any

    def record_heartbeat(self, trial_id: int) -> None:
        """One attempt: a missed beat is noted, and the next beat tries again."""
        if self._gave_up is not None:
            return  # the main thread stops at its next call
        try:
            self.inner.record_heartbeat(trial_id)
        except Exception as exc:
            if not is_transient(exc):
                raise
            try:
                self._lost(exc)
            except StorageLost:
                pass  # said once; the main thread stops at its next call
            return
        self._answered()

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        """None right after an outage: live workers' beats are late, not missing."""
        interval = self.get_heartbeat_interval() or 0
        if self.back_within(2 * interval):
            return []
        return self._call("_get_stale_trial_ids", study_id)

    def get_heartbeat_interval(self) -> int | None:
        return self.inner.get_heartbeat_interval()

    def get_heartbeat_stale_trial_callback(self) -> Any:
        return self.inner.get_heartbeat_stale_trial_callback()


def retrying(storage: BaseStorage, patience: float, description: str,
             label: str = "poolbert") -> RetryingStorage:
    """`storage` behind retries; with the heartbeat methods where it has them."""
    kind = RetryingHeartbeatStorage if isinstance(storage, BaseHeartbeat) else RetryingStorage
    return kind(storage, patience, description, label)
