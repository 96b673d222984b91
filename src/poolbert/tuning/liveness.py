"""Dead-worker detection: which trials belong to a process that is gone, and the heartbeats.

Each trial records its worker ("host:pid") as Optuna creates it. A worker fails and re-queues
the RUNNING trials of dead processes on its own machine (every storage); on a database Optuna's
heartbeat does it from any machine once a trial stopped beating for `grace_period` seconds
(Optuna's JournalStorage has no heartbeat).
"""

from __future__ import annotations

import copy
import os
import socket
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.trial import TrialState

WORKER_ATTR = "worker"  # "host:pid" of the process running the trial


def worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RetryWithoutOwner(RetryHeartbeatStaleTrialCallback):
    """Re-queue a failed trial with its parameters, but not its dead owner's "host:pid": the
    copy would otherwise look dead, and be failed again, until its new worker records itself."""

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        trial = copy.deepcopy(trial)
        trial.user_attrs = {k: v for k, v in trial.user_attrs.items() if k != WORKER_ATTR}
        super().__call__(study, trial)


def fail_dead_workers(study: optuna.Study, max_retry: int) -> list[int]:
    """FAIL the RUNNING trials whose process on this machine is gone, and re-queue them."""
    host = socket.gethostname()
    storage = study._storage  # as Optuna's own callbacks do
    failed = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = str(trial.user_attrs.get(WORKER_ATTR, ""))
        owner_host, _, pid = owner.rpartition(":")
        if owner_host != host or not pid.isdigit() or _alive(int(pid)):
            continue
        try:
            storage.set_trial_user_attr(trial._trial_id, "fail_reason",
                                        "worker process died during the trial")
            if storage.set_trial_state_values(trial._trial_id, TrialState.FAIL):
                failed.append(trial.number)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    retry = RetryWithoutOwner(max_retry)
                retry(study, storage.get_trial(trial._trial_id))
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker got there first
    return failed


def fail_stale_trials(study: optuna.Study) -> None:
    """Optuna's heartbeat check (RDB storages): FAIL and re-queue trials that stopped beating."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)


def _alive(pid: int) -> bool:
    """Whether process `pid` still runs. A killed worker stays a zombie until its parent (the
    `poolbert tune` command, busy joining another worker) reaps it: a zombie counts as dead."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # Linux: field 3 of /proc/<pid>/stat is the state, after the parenthesised name
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): kill(pid, 0) is all there is
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


@dataclass
class Heartbeats:
    """Optuna's heartbeat for each running trial of this worker (its trials are asked and
    told by hand, not by study.optimize, which would beat for them). Only storages with a
    heartbeat (databases) have one."""

    storage: Any
    interval: float
    trial_ids: set[int] = field(default_factory=set)
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Heartbeats:
        if is_heartbeat_enabled(self.storage):
            threading.Thread(target=self._beat, daemon=True, name="poolbert-heartbeat").start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()

    def add(self, trial_id: int) -> None:
        if is_heartbeat_enabled(self.storage):
            self.storage.record_heartbeat(trial_id)
        self.trial_ids.add(trial_id)

    def _beat(self) -> None:
        while not self._stop.wait(self.interval):
            for trial_id in list(self.trial_ids):
                self.storage.record_heartbeat(trial_id)
