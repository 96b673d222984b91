"""A study rides out its storage (issue 23): a database connection cut mid-trial, a locked
SQLite file, an unreadable journal file. Workers retry with backoff for --storage-timeout
seconds while training goes on, say once that the storage is lost and once that it is back,
and past the bound stop in one line; the rerun completes the study."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import optuna
import pytest
import sqlalchemy.exc
from helpers import tiny_bert_dir, tiny_glue_dir
from optuna.storages.journal import JournalFileBackend
from proxy import TcpProxy
from test_reliability import (
    check_budget,
    run,
    start,
    trials_of,
    tune_argv,
    wait_for_running,
    write_lr_space,
)

from poolbert.tuning.outage import RetryingStorage, StorageLost, is_transient, retrying

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 24, 12)


@pytest.fixture(scope="module")
def lr_space(tmp_path_factory) -> Path:
    return write_lr_space(tmp_path_factory.mktemp("space") / "lr.yaml")


@contextlib.contextmanager
def tune(argv: list[str], log: Path) -> Iterator[subprocess.Popen]:
    """`poolbert tune` running; killed if the test ends first."""
    proc = start(argv, log)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def wait_for_trials(out: Path, direct: str) -> None:
    """Both workers mid-trial."""
    wait_for_running(out, "rte", direct, at_least=2, after=1.0)


@pytest.fixture
def proxied(postgres_url):
    """(the study's URL through a TcpProxy, the proxy, the direct URL for checking)."""
    parts = urlsplit(postgres_url)
    proxy = TcpProxy(parts.hostname or "127.0.0.1", parts.port or 5432)
    netloc = parts.netloc.rsplit("@", 1)[0] + f"@127.0.0.1:{proxy.port}"
    try:
        yield parts._replace(netloc=netloc).geturl(), proxy, postgres_url
    finally:
        proxy.close()


# ------------------------------------------------------------ a database lost mid-trial


@pytest.mark.slow
def test_two_workers_ride_out_a_database_cut_mid_trial(tiny, tmp_path, lr_space, proxied):
    url, proxy, direct = proxied
    out = tmp_path / "study"
    # ~5 s a trial (40 epochs of the tiny model), each epoch reported to the database
    argv = tune_argv(tiny, out, lr_space, 4, "--n-workers", "2", "--num-train-epochs", "40",
                     "--study-name", "rte", "--storage", url)
    with tune(argv, tmp_path / "tune.log") as proc:
        wait_for_trials(out, direct)
        proxy.cut(6.0)
        code = proc.wait(timeout=900)
    log = (tmp_path / "tune.log").read_text(errors="replace")
    assert code == 0, log
    assert "Traceback" not in log, log
    for worker in ("worker 0", "worker 1"):  # each said it once, and that it was back
        lost = [line for line in log.splitlines() if line.startswith(f"[{worker}] storage")]
        assert len(lost) >= 2 and "lost" in lost[0] and "back after" in lost[1], log
    assert "ci-secret-pw" not in log
    trials = trials_of(out, "rte", direct)
    check_budget(trials, 4)
    assert len(trials) == 4  # nothing failed or ran twice: the outage cost no trial


@pytest.mark.slow
def test_an_outage_past_the_bound_stops_cleanly_and_the_rerun_completes(tiny, tmp_path,
                                                                        lr_space, proxied):
    url, proxy, direct = proxied
    out = tmp_path / "study"
    argv = tune_argv(tiny, out, lr_space, 3, "--n-workers", "2", "--num-train-epochs", "40",
                     "--study-name", "rte", "--storage", url, "--storage-timeout", "4")
    with tune(argv, tmp_path / "tune.log") as proc:
        wait_for_trials(out, direct)
        proxy.cut(3600)
        code = proc.wait(timeout=300)
    proxy.restore()
    log = (tmp_path / "tune.log").read_text(errors="replace")
    assert code == 2, log
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if line.startswith("poolbert: error:")]
    assert len(errors) == 1 and "unreachable for 4 s" in errors[0], log
    assert "run the same command again" in errors[0].lower()
    stranded = [t for t in trials_of(out, "rte", direct) if t.state.name == "RUNNING"]
    assert stranded  # nothing could be written: the trials the workers held are RUNNING
    again = run(argv, timeout=900)
    assert again.returncode == 0, again.stderr
    assert "Traceback" not in again.stderr
    trials = trials_of(out, "rte", direct)
    check_budget(trials, 3)
    for trial in stranded:  # failed as a dead worker's, re-run with the same parameters
        assert trials[trial.number].state.name == "FAIL"
        assert [t for t in trials if t.system_attrs.get("failed_trial") == trial.number]


# ------------------------------------------------------------- files: SQLite and journal


def sqlite_storage(path: Path, patience: float) -> RetryingStorage:
    """A study.db whose driver gives up on a lock after 0.1 s (the command waits 60 s)."""
    rdb = optuna.storages.RDBStorage(f"sqlite:///{path}",
                                     engine_kwargs={"connect_args": {"timeout": 0.1}})
    return retrying(optuna.storages.get_storage(rdb), patience, str(path), label="test")


def hold_lock(path: Path, seconds: float) -> threading.Thread:
    """Another process's write transaction on the SQLite file for `seconds`."""
    locked = threading.Event()

    def hold() -> None:
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        locked.set()
        time.sleep(seconds)
        con.execute("COMMIT")
        con.close()

    thread = threading.Thread(target=hold)
    thread.start()
    locked.wait()
    return thread


def test_a_locked_sqlite_file_is_waited_out(tmp_path, capsys):
    storage = sqlite_storage(tmp_path / "study.db", patience=60)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    holder = hold_lock(tmp_path / "study.db", 1.5)
    trial.set_user_attr("epochs_run", 3)  # blocked by the lock, retried until it is free
    holder.join()
    assert study.trials[0].user_attrs["epochs_run"] == 3
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 2, lines
    assert lines[0].startswith("[test] storage ") and " lost (OperationalError: database is " \
        "locked); retrying for up to 60 s" in lines[0]
    assert "back after" in lines[1]


def test_past_the_bound_every_call_stops_at_once_and_heartbeats_stay_quiet(tmp_path, capsys):
    storage = sqlite_storage(tmp_path / "study.db", patience=1.0)
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    holder = hold_lock(tmp_path / "study.db", 3.0)
    with pytest.raises(StorageLost, match=r"unreachable for 1 s \(OperationalError: database "
                                          r"is locked\); stopped"):
        trial.set_user_attr("epochs_run", 3)
    holder.join()
    start = time.monotonic()
    with pytest.raises(StorageLost):  # the storage is free again, but this worker has stopped
        study.tell(trial, 1.0)
    assert time.monotonic() - start < 0.5
    storage.record_heartbeat(trial._trial_id)  # no exception in the heartbeat thread
    assert len(capsys.readouterr().err.splitlines()) == 1  # "lost", said once


@pytest.mark.filterwarnings("ignore:Heartbeat of storage",
                            "ignore::optuna.exceptions.ExperimentalWarning")
def test_no_trial_is_stale_right_after_an_outage(tmp_path):
    """Live workers' beats were missed during the outage: until they have had time to beat
    again, their trials are not taken for dead."""
    rdb = optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 'study.db'}",
                                     engine_kwargs={"connect_args": {"timeout": 0.1}},
                                     heartbeat_interval=1, grace_period=1)
    storage = retrying(optuna.storages.get_storage(rdb), 60, "study.db", label="test")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)  # older than the grace period (SQLite keeps whole seconds): stale
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]
    hold_lock(tmp_path / "study.db", 1.0)
    study.set_user_attr("seen", True)  # waits the lock out: lost, then back
    assert storage.back_within(1.0)
    assert storage._get_stale_trial_ids(study._study_id) == []  # a beat may still be coming
    time.sleep(2.1)  # two heartbeat intervals
    assert storage._get_stale_trial_ids(study._study_id) == [trial._trial_id]


class FlakyJournal(JournalFileBackend):
    """A journal file that cannot be read or written until `until` (an NFS server away)."""

    until = 0.0

    def read_logs(self, log_number_from):
        self._fail()
        return super().read_logs(log_number_from)

    def append_logs(self, logs):
        self._fail()
        super().append_logs(logs)

    def _fail(self) -> None:
        if time.monotonic() < self.until:
            raise OSError(5, "Input/output error")


def test_an_unreadable_journal_file_is_waited_out(tmp_path, capsys):
    backend = FlakyJournal(str(tmp_path / "journal.log"))
    storage = retrying(optuna.storages.JournalStorage(backend), 60, "journal.log", label="test")
    study = optuna.create_study(storage=storage, study_name="s")
    trial = study.ask()
    backend.until = time.monotonic() + 1.0
    study.tell(trial, 0.5)
    assert study.trials[0].state.name == "COMPLETE" and study.trials[0].value == 0.5
    err = capsys.readouterr().err
    assert "lost (OSError: [Errno 5] Input/output error)" in err and "back after" in err


# ------------------------------------------------------------------------ what is retried


def test_only_lost_connections_and_busy_files_are_retried():
    def wrapped(error: Exception) -> Exception:
        outer = optuna.exceptions.StorageInternalError("An exception is raised during the commit")
        outer.__cause__ = error
        return outer

    gone = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(
        "server closed the connection unexpectedly"))
    assert is_transient(wrapped(gone))
    assert is_transient(sqlalchemy.exc.OperationalError("x", {}, Exception(
        "database is locked")))
    assert is_transient(OSError(5, "Input/output error"))
    assert not is_transient(sqlalchemy.exc.OperationalError("x", {}, Exception(
        'database "nope" does not exist')))
    assert not is_transient(wrapped(sqlalchemy.exc.IntegrityError("x", {}, Exception("dup"))))
    assert not is_transient(optuna.exceptions.UpdateFinishedTrialError("finished"))
    assert not is_transient(KeyError("no study"))


def test_a_journal_study_without_sqlalchemy_judges_its_errors(monkeypatch):
    # bench/gpu.sh's machines have no SQLAlchemy: their studies use the journal file, and an
    # error of a storage call (a trial already finished) is judged without importing it
    monkeypatch.setitem(sys.modules, "sqlalchemy", None)
    monkeypatch.setitem(sys.modules, "sqlalchemy.exc", None)
    assert is_transient(OSError(5, "Input/output error"))
    assert not is_transient(optuna.exceptions.UpdateFinishedTrialError("finished"))


def test_a_finish_whose_answer_was_lost_is_not_told_twice(tmp_path):
    """The first attempt reached the storage but its answer did not: the retry finds the
    trial finished, which is what it was asked to do, not an error."""
    inner = optuna.storages.InMemoryStorage()
    storage = retrying(inner, 30, "memory", label="test")
    study = optuna.create_study(storage=storage)
    trial = study.ask()
    original = inner.set_trial_state_values
    calls = []

    def answer_lost(*args, **kwargs):
        calls.append(args)
        result = original(*args, **kwargs)
        if len(calls) == 1:
            raise sqlalchemy.exc.OperationalError("COMMIT", {}, Exception("connection reset"))
        return result

    inner.set_trial_state_values = answer_lost
    study.tell(trial, 1.0)
    assert len(calls) == 2 and study.trials[0].state.name == "COMPLETE"
