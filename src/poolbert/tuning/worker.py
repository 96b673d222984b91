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
import warnings
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from .. import interrupts
from ..resources import Resources
from .heads import HeadStudy, open_head
from .liveness import Heartbeats, fail_dead_workers, fail_stale_trials
from .locks import FileLock
from .objective import Objective
from .outage import StorageLost
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
    objective = Objective(opened.setup, fit_fn)
    lock = FileLock(tc.study_dir.budget_lock)
    with Heartbeats(storage, tc.heartbeat_interval) as beats:
        while not expired(job.deadline):
            interrupts.check()  # between trials: nothing of a trial is half-written
            fail_dead_workers(opened.study, tc.max_retry)
            fail_stale_trials(opened.study)
            with lock:  # released once the new trial is RUNNING: other workers count it
                if (not opened.budget_left() or opened.gave_up
                        or (racing and racing.stopped(head))):
                    return False
                trial = opened.ask()
            run_trial(opened, objective, trial, beats)
            if once:
                return True
    return False


def run_trial(head: HeadStudy, objective: Objective, trial: optuna.Trial,
              beats: Heartbeats) -> None:
    """The objective, then the trial told as study.optimize tells it (a failure other than
    out of memory is told and raised). Asked and told here rather than in study.optimize, so
    that a lost storage stops the worker without Optuna trying to tell the trial."""
    beats.add(trial._trial_id)
    value: float | None = None
    state: TrialState | None = TrialState.FAIL
    try:
        value, state = objective(trial), None  # None: COMPLETE, or FAIL for a NaN value
    except optuna.TrialPruned:
        state = TrialState.PRUNED
    except TrialFailed:
        head.count_failure()
    except StorageLost:
        raise  # nothing can be told; the next worker fails and re-queues the trial
    except (Exception, KeyboardInterrupt):
        head.study.tell(trial, state=TrialState.FAIL)
        raise
    finally:
        beats.trial_ids.discard(trial._trial_id)
    with warnings.catch_warnings():  # a NaN value is told FAIL quietly, as study.optimize does
        warnings.filterwarnings("ignore", "The value nan is not acceptable")
        frozen = head.study.tell(trial, value, state=state)
    print_trial(head.name, frozen)
