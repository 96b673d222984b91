"""A worker's loop: the trials of each head's study, one at a time, until its budget is met.

Every worker (in this process, in spawned processes, or on other machines sharing a database)
runs the same loop. Under a lock shared by the workers of this machine it counts the head's
finished (COMPLETE + PRUNED) and RUNNING trials, and starts a trial only while their sum is
below the budget; the lock is released as soon as the new trial is RUNNING in the storage. So N
local workers produce exactly the requested number of finished trials (Optuna's
MaxTrialsCallback checks only after a trial ends, which lets concurrent workers overshoot).
Workers on other machines (a shared PostgreSQL study) have no common lock: there the count and
the start of a trial are milliseconds apart, and a race can add at most one trial per machine.
A worker that trains K trials at once runs pack_worker's loop instead (processes.run_worker).
With --race the heads take turns, one trial each per round, and a head the race stopped
(racing.py) gets no more.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import optuna

from .. import interrupts
from ..resources import Resources
from .heads import HeadStudy, open_head
from .liveness import fail_dead_workers, fail_stale_trials
from .locks import FileLock
from .objective import Objective
from .racing import Race
from .settings import TuneConfig
from .space import SearchSpace
from .trials import FitFn, TrialFailed, print_trial


@dataclass
class WorkerJob:
    """Everything a worker needs; plain data, so it pickles into a spawned process."""

    tune: TuneConfig
    space: SearchSpace
    index: int = 0
    deadline: float | None = None  # time.time() after which no new trial starts
    progress_bars: bool = True
    gpu: str | None = None  # CUDA_VISIBLE_DEVICES of this worker's process (None: unchanged)
    threads: int | None = None  # torch CPU threads of this worker's process (None: unchanged)

    @property
    def quiet(self) -> bool:
        """No training progress bars (--quiet, or a worker other than the first)."""
        return self.tune.quiet or not self.progress_bars


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def run_unpacked(job: WorkerJob, storage: Any, tuning: Resources, fit_fn: FitFn) -> None:
    """Every head's study to its budget (or the deadline), one trial at a time: head after
    head, or (--race) in rounds of one trial per head, so the race sees every head."""
    if job.tune.race:
        racing = Race(job.tune, job.space, storage, tuning)
        heads = [open_head(job.tune, job.space, storage, head, tuning, job.index, job.quiet)
                 for head in job.tune.heads]
        while heads:
            heads = [h for h in heads
                     if run_head(job, storage, h.name, tuning, fit_fn, h, racing, once=True)]
        return
    for head in job.tune.heads:
        if expired(job.deadline):
            break
        run_head(job, storage, head, tuning, fit_fn)


def run_head(job: WorkerJob, storage: Any, head: str, tuning: Resources, fit_fn: FitFn,
             opened: HeadStudy | None = None, racing: Race | None = None,
             once: bool = False) -> bool:
    """The head's trials until its budget is met; `once`: at most one. Returns whether the
    head may have more to run (False: budget met, given up, stopped by the race, deadline)."""
    tc = job.tune
    opened = opened or open_head(tc, job.space, storage, head, tuning, job.index, job.quiet)
    study, objective = opened.study, Objective(opened.setup, fit_fn)
    lock = FileLock(tc.dir.budget_lock)

    def started(trial: optuna.Trial) -> float:
        lock.release()  # the trial is RUNNING in the storage: other workers count it now
        try:
            return objective(trial)
        except TrialFailed:
            opened.count_failure()
            raise

    while not expired(job.deadline):
        interrupts.check()  # between trials: nothing of a trial is half-written in the storage
        fail_dead_workers(study, tc.max_retry)
        fail_stale_trials(study)
        lock.acquire()
        try:
            if not opened.budget_left() or opened.gave_up or (racing and racing.stopped(head)):
                return False
            study.optimize(started, n_trials=1, catch=(TrialFailed,),
                           callbacks=[lambda _, trial: print_trial(head, trial)])
        finally:
            lock.release()
        if once:
            return True
    return False
