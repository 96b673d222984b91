"""A worker: one process that runs trials of each head's study until its budget is met.

Every worker (in this process, in spawned processes, or on other machines sharing a database)
runs the same loop. Under a lock shared by the workers of this machine it counts the head's
finished (COMPLETE + PRUNED) and RUNNING trials, and starts a trial only while their sum is
below the budget; the lock is released as soon as the new trial is RUNNING in the storage. So N
local workers produce exactly the requested number of finished trials (Optuna's
MaxTrialsCallback checks only after a trial ends, which lets concurrent workers overshoot).
Workers on other machines (a shared PostgreSQL study) have no common lock: there the count and
the start of a trial are milliseconds apart, and a race can add at most one trial per machine.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import sys
import time
from dataclasses import dataclass
from typing import Any

import optuna

from .. import interrupts
from ..data import stratified_holdout
from ..errors import PoolbertError
from ..resources import Resources
from ..text import fmt_number
from ..training import fit
from .objective import BestKeeper, FitFn, Objective, TrialFailed, TrialSetup, study_tracking
from .settings import MIN_PRUNE_EPOCH, TuneConfig
from .space import HeadSpace, SearchSpace
from .storage import (
    WORKER_ATTR,
    Counts,
    FileLock,
    fail_dead_workers,
    fail_stale_trials,
    open_storage,
    open_study,
    worker_id,
)


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


def tuning_resources(resources: Resources, tc: TuneConfig) -> Resources:
    """The data trials see: train and dev, or (holdout) a stratified split of train alone.

    Tokenizer, token cache and encoder weights are shared, so nothing is read twice."""
    if tc.select_on == "dev":
        return resources
    fit, held = stratified_holdout(resources.data.train, tc.holdout_fraction, tc.run.train.seed)
    data = dataclasses.replace(resources.data, train=fit, validation=held)
    return dataclasses.replace(resources, data=data)


def study_identity(tc: TuneConfig, space: HeadSpace) -> dict[str, Any]:
    """What must match for trials to be comparable; stored on the study, checked on resume."""
    run = tc.run.to_dict()
    machine_specific = {"data_dir", "train_file", "validation_file", "test_file", "device",
                        "precision", "compile", "eval_batch_size", "report_to"}
    fixed = {k: v for section in run.values() for k, v in section.items()
             if k not in machine_specific and k not in space.params and k != "pooling"}
    identity = {"search_space": space.to_dict()["params"],
                "protocol": {"select_on": tc.select_on,
                             "holdout_fraction": tc.holdout_fraction if tc.select_on == "holdout"
                             else None},
                "fixed_settings": fixed}
    return json.loads(json.dumps(identity))  # as the storage returns it (tuples become lists)


def n_trials_for(tc: TuneConfig, space: HeadSpace) -> int:
    return tc.n_trials or space.n_trials


class OwnedTPESampler(optuna.samplers.TPESampler):
    """TPE that records this worker ("host:pid") on a trial as Optuna creates it, before any
    parameter is sampled: a trial whose worker dies at any later point is found by
    `fail_dead_workers` instead of staying RUNNING."""

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        study._storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR, worker_id())
        super().before_trial(study, trial)


def make_sampler(tc: TuneConfig, n_trials: int, index: int,
                 n_existing: int) -> optuna.samplers.TPESampler:
    """TPE seeded from --seed; each worker and each resume draws a different random stream."""
    seed = tc.run.train.seed + 1000 * index + n_existing
    return OwnedTPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 3)))


def make_pruner(name: str, n_trials: int, space: HeadSpace,
                fixed_epochs: int) -> optuna.pruners.BasePruner:
    """Nothing is pruned before MIN_PRUNE_EPOCH; the objective enforces it as well."""
    if name == "none":
        return optuna.pruners.NopPruner()
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=min(5, max(2, n_trials // 4)),
                                           n_warmup_steps=MIN_PRUNE_EPOCH)
    max_epochs = max(space.max_epochs(fixed_epochs), MIN_PRUNE_EPOCH + 1)
    return optuna.pruners.HyperbandPruner(min_resource=MIN_PRUNE_EPOCH, max_resource=max_epochs,
                                          reduction_factor=3)


def describe_pruner(name: str) -> str:
    return {"none": "none (every trial runs all its epochs)",
            "median": f"MedianPruner (n_warmup_steps={MIN_PRUNE_EPOCH}: no pruning before epoch "
                      f"{MIN_PRUNE_EPOCH})",
            "hyperband": f"HyperbandPruner (min_resource={MIN_PRUNE_EPOCH} epochs, "
                         "reduction_factor=3)"}[name]


def run_worker(job: WorkerJob, fit_fn: FitFn = fit,
               resources: Resources | None = None) -> Resources:
    """Run every head's study to its budget (or the deadline); returns the loaded resources."""
    resources = resources or Resources.load(job.tune.run)
    tuning = tuning_resources(resources, job.tune)
    storage = open_storage(job.tune)
    from .pack_worker import pack_size, run_packed  # it builds on this module's pieces

    size = pack_size(job.tune, resources)
    if size > 1:
        run_packed(job, storage, tuning, size)
        return resources
    for head in job.tune.heads:
        if expired(job.deadline):
            break
        run_head(job, storage, head, tuning, fit_fn)
    return resources


@dataclass
class HeadStudy:
    """One head's study as a worker drives it."""

    name: str
    study: optuna.Study
    space: HeadSpace
    setup: TrialSetup
    n_trials: int
    failures: int = 0  # this worker's trials that ran out of memory (alone, when packed)

    @property
    def max_failures(self) -> int:
        return max(3, self.n_trials)

    @property
    def gave_up(self) -> bool:
        """After max_failures this worker leaves the head to the others."""
        return self.failures >= self.max_failures

    def count_failure(self) -> None:
        self.failures += 1
        if self.failures == self.max_failures:
            print(f"[{self.name}] {self.failures} failed trials in this worker; moving on",
                  file=sys.stderr, flush=True)

    def budget_left(self) -> bool:
        """Whether another trial may start (asked under the budget lock): the finished and
        running trials of every worker are fewer than the head's budget."""
        counts = Counts.of(self.study)
        return counts.finished + counts.running < self.n_trials


def open_head(job: WorkerJob, storage: Any, head: str, tuning: Resources) -> HeadStudy:
    """The head's study (checked to search the same space), its sampler, pruner and trial setup."""
    tc = job.tune
    space = job.space.for_head(head)
    n_trials = n_trials_for(tc, space)
    study = open_study(tc, storage, head, study_identity(tc, space))
    study.sampler = make_sampler(tc, n_trials, job.index, len(study.get_trials(deepcopy=False)))
    study.pruner = make_pruner(tc.pruner, n_trials, space, tc.run.train.num_train_epochs)
    keeper = BestKeeper(tc.dir.head(head).path, head, tc.select_on,
                        higher=tc.direction == "maximize")
    setup = TrialSetup(tc.run, head, space, tuning, keeper, quiet=tc.quiet or not job.progress_bars,
                       command=tc.to_dict()["command"], tracking=study_tracking(tc))
    return HeadStudy(head, study, space, setup, n_trials)


def run_head(job: WorkerJob, storage: Any, head: str, tuning: Resources,
             fit_fn: FitFn) -> None:
    tc = job.tune
    opened = open_head(job, storage, head, tuning)
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
            if not opened.budget_left() or opened.gave_up:
                return
            study.optimize(started, n_trials=1, catch=(TrialFailed,),
                           callbacks=[lambda _, trial: print_trial(head, trial)])
        finally:
            lock.release()


def print_trial(head: str, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial (the progress of a study, also with --quiet)."""
    attrs = trial.user_attrs
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    params = ", ".join(f"{k}={fmt_number(v, small=math.inf)}" for k, v in trial.params.items())
    reason = f"  ({attrs['fail_reason']})" if attrs.get("fail_reason") else ""
    print(f"[{head}] trial {trial.number} {trial.state.name.lower()} value {value} "
          f"epochs {attrs.get('epochs_run', '-')}/{attrs.get('planned_epochs', '-')} "
          f"{attrs.get('duration_s', 0):.0f}s  {params}{reason}", flush=True)


def expired(deadline: float | None) -> bool:
    return deadline is not None and time.time() >= deadline


def worker_process(job: WorkerJob, fit_fn: FitFn, errors: Any) -> None:
    """Entry point of a spawned worker: exit 0, 2 (its error is put on `errors`) or 130.
    Ctrl-C and SIGTERM stop it at the next safe point, however often they come; the parent
    kills a worker that has not stopped after its grace period."""
    try:
        with interrupts.deferred(escalate=False):
            if job.gpu is not None:  # before this process first touches CUDA
                os.environ["CUDA_VISIBLE_DEVICES"] = job.gpu
            if job.threads is not None:  # N workers x all cores each: threads fight for cores
                import torch

                torch.set_num_threads(job.threads)
            _quiet_logs()
            run_worker(job, fit_fn)
    except PoolbertError as exc:
        errors.put(f"worker {job.index}: {exc}")
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)


def _quiet_logs() -> None:
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # print_trial reports each trial
