"""Where trials live: the Optuna storage, and one study per head checked on resume.

SQLite (`study.db`, the default) and any SQLAlchemy URL use `RDBStorage` with a heartbeat: a
trial whose worker stopped beating for `grace_period` seconds is marked FAILED and re-queued with
the same parameters (liveness.py); `journal` is Optuna's JournalStorage in the output folder.
"""

from __future__ import annotations

import importlib.util
import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from ..config import RunConfig
from ..errors import PoolbertError
from ..text import first_line, redact, url_password
from .liveness import RetryWithoutOwner
from .outage import RetryingStorage, retrying
from .settings import STORAGE_TIMEOUT_S, TuneConfig

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def storage_description(tc: TuneConfig) -> str:
    if tc.storage is None:
        return str(tc.study_dir.database)
    if tc.storage == "journal":
        return str(tc.study_dir.journal)
    return redact(tc.storage)


def open_storage(tc: TuneConfig, label: str = "poolbert") -> RetryingStorage:
    """The study's storage, every call retried through an outage of up to --storage-timeout
    seconds (outage.py); `label` starts the lines it prints about an outage."""
    return retrying(_open_backend(tc), tc.storage_timeout, storage_description(tc), label)


def _open_backend(tc: TuneConfig) -> optuna.storages.BaseStorage:
    if tc.storage == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(tc.study_dir.journal)))
    url = sqlalchemy_url(tc.storage or tc.study_dir.database_url())
    for attempt in range(3):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                rdb = optuna.storages.RDBStorage(
                    url, engine_kwargs=engine_kwargs(url),
                    heartbeat_interval=tc.heartbeat_interval, grace_period=tc.grace_period,
                    heartbeat_stale_trial_callback=RetryWithoutOwner(tc.max_retry),
                )
            return optuna.storages.get_storage(rdb)  # Optuna's trial cache in front of it
        except Exception as exc:  # driver, URL and connection errors all mean the same here
            if attempt < 2 and _creation_race(exc):
                time.sleep(1.0)  # another command created the tables at the same moment
                continue
            reason = redact(first_line(exc), url_password(url))
            raise PoolbertError(f"cannot open storage {redact(url)}: {reason}") from None
    raise AssertionError("unreachable")  # pragma: no cover


def engine_kwargs(url: str) -> dict[str, Any]:
    """SQLite waits up to 60 s for a locked file. A server's pooled connections are tested
    before use (after a restart they are all dead); PostgreSQL gives up connecting after 10 s
    and probes an idle connection every 10 s after 30 s, so a vanished server is found rather
    than waited on forever (settings in the URL win)."""
    if url.startswith("sqlite"):
        return {"connect_args": {"timeout": 60}}
    kwargs: dict[str, Any] = {"pool_pre_ping": True}
    if url.startswith("postgres"):
        libpq = {"connect_timeout": 10, "keepalives": 1, "keepalives_idle": 30,
                 "keepalives_interval": 10, "keepalives_count": 3}
        query = url.partition("?")[2]
        kwargs["connect_args"] = {k: v for k, v in libpq.items() if f"{k}=" not in query}
    return kwargs


def _creation_race(exc: BaseException) -> bool:
    """Two workers creating a new database's tables at once: one of them fails on a duplicate
    (PostgreSQL: IntegrityError or ProgrammingError; SQLite: OperationalError "table ... already
    exists"). A database that cannot be reached is not a race and is reported at once."""
    import sqlalchemy.exc

    if isinstance(exc, (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError)):
        return True
    return isinstance(exc, sqlalchemy.exc.OperationalError) and "already exists" in str(exc)


def sqlalchemy_url(url: str) -> str:
    """`postgresql://` names no driver, and SQLAlchemy 2.1 then wants psycopg 3; where only
    psycopg2 (poolbert's `postgres` extra) is installed, name that one."""
    scheme, sep, rest = url.partition("://")
    if scheme not in ("postgresql", "postgres") or not sep:
        return url
    if importlib.util.find_spec("psycopg") is None and importlib.util.find_spec("psycopg2"):
        return f"postgresql+psycopg2://{rest}"
    return f"postgresql://{rest}"


def existing_storage_url(storage: str) -> str:
    """A storage given as a SQLite file path (.db, .sqlite, .sqlite3) as its sqlite:/// URL;
    URLs and journal file paths are returned as they are."""
    if storage.endswith((".db", ".sqlite", ".sqlite3")) and "://" not in storage:
        return f"sqlite:///{Path(storage).resolve()}"
    return storage


def open_existing_storage(storage: str,
                          patience: float = STORAGE_TIMEOUT_S) -> optuna.storages.BaseStorage:
    """Open a storage that already holds studies, to read them: a SQLite file path, a database
    URL (no tables are created), or a journal file (a path or journal://path). Its calls ride
    out an outage of up to `patience` seconds, then raise outage.StorageLost.

    Raises whatever the backend raises (FileNotFoundError for a missing journal file, the
    driver's errors for a database); callers that can do without the storage catch it.
    """
    storage = existing_storage_url(storage)
    if "://" not in storage or storage.startswith("journal"):
        from optuna.storages.journal import JournalFileBackend

        path = storage.split("://", 1)[-1]
        if not Path(path).is_file():  # JournalFileBackend would create an empty one
            raise FileNotFoundError(path)
        backend: optuna.storages.BaseStorage = optuna.storages.JournalStorage(
            JournalFileBackend(path))
    else:
        url = sqlalchemy_url(storage)
        backend = optuna.storages.get_storage(optuna.storages.RDBStorage(
            url, engine_kwargs=engine_kwargs(url), skip_table_creation=True))
    return retrying(backend, patience, storage, label="report")


def study_name(tc: TuneConfig, head: str) -> str:
    return f"{tc.name}-{head}"


def open_study(tc: TuneConfig, storage: Any, head: str, identity: dict[str, Any],
               sampler: optuna.samplers.BaseSampler | None = None,
               pruner: optuna.pruners.BasePruner | None = None) -> optuna.Study:
    """Create the head's study, or load it after checking it searches the same space.

    `identity` (search space, selection protocol, fixed settings) is stored as study user
    attributes; a study of that name with other values is refused rather than mixed.
    """
    name = study_name(tc, head)
    direction = optuna.study.StudyDirection[tc.direction.upper()]
    study = optuna.create_study(storage=storage, study_name=name, direction=direction,
                                sampler=sampler, pruner=pruner, load_if_exists=True)
    stored = study.user_attrs
    if not stored:
        for key, value in identity.items():
            study.set_user_attr(key, value)
        return study
    for key, value in identity.items():
        found = _with_new_defaults(stored[key], value) if key in stored else value
        if found != value:
            raise PoolbertError(
                f"study {name!r} in {storage_description(tc)} exists with a different {key} "
                f"({_difference(found, value)}); use another --study-name or --output-dir"
            )
    return study


def _with_new_defaults(stored: Any, asked: Any) -> Any:
    """A stored identity with the settings added to poolbert after the study was made read as
    their defaults, so a study made by an older version resumes when they are left alone."""
    if not isinstance(stored, dict) or not isinstance(asked, dict):
        return stored
    defaults = {k: v for section in RunConfig().to_dict().values() for k, v in section.items()}
    defaults = json.loads(json.dumps(defaults))  # as the storage returns it
    return {**{k: defaults[k] for k in asked if k not in stored and k in defaults}, **stored}


def _difference(stored: Any, asked: Any) -> str:
    """The keys that differ (stored -> asked), short enough for one line."""
    if isinstance(stored, dict) and isinstance(asked, dict):
        keys = [k for k in dict.fromkeys([*stored, *asked]) if stored.get(k) != asked.get(k)]
        text = "; ".join(f"{k}: {stored.get(k)} -> {asked.get(k)}" for k in keys)
    else:
        text = f"{stored} -> {asked}"
    return text if len(text) <= 300 else text[:297] + "..."


@dataclass
class Counts:
    finished: int  # COMPLETE + PRUNED: what the budget counts
    running: int

    @classmethod
    def of(cls, study: optuna.Study) -> Counts:
        trials = study.get_trials(deepcopy=False)
        state = [t.state for t in trials]
        return cls(sum(s in FINISHED for s in state), state.count(TrialState.RUNNING))
