"""Each head's study as a worker drives it: the study opened and checked, its sampler and
pruner, its budget, and the data its trials see."""

from __future__ import annotations

import dataclasses
import json
import sys
import warnings
from dataclasses import dataclass
from typing import Any

import optuna

from ..data import stratified_holdout
from ..resources import Resources
from .liveness import WORKER_ATTR, worker_id
from .settings import MIN_PRUNE_EPOCH, TuneConfig
from .space import HeadSpace, SearchSpace
from .storage import Counts, open_study
from .trials import BestKeeper, TrialSetup, study_tracking


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
    `liveness.fail_dead_workers` instead of staying RUNNING."""

    def before_trial(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        study._storage.set_trial_user_attr(trial._trial_id, WORKER_ATTR, worker_id())
        super().before_trial(study, trial)


def startup_trials(n_trials: int) -> int:
    """TPE's random start-up trials for a head with this budget (before them it has not
    modelled its space; --race judges no head before every head has had them)."""
    return min(10, max(2, n_trials // 3))


def make_sampler(tc: TuneConfig, n_trials: int, index: int,
                 n_existing: int) -> optuna.samplers.TPESampler:
    """TPE seeded from --seed; each worker and each resume draws a different random stream."""
    seed = tc.run.train.seed + 1000 * index + n_existing
    return OwnedTPESampler(seed=seed, n_startup_trials=startup_trials(n_trials))


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

    def ask(self) -> optuna.Trial:
        """A new trial, RUNNING in the storage (its heartbeat is the caller's: Heartbeats)."""
        with warnings.catch_warnings():  # Optuna expects study.optimize to beat for it
            warnings.filterwarnings("ignore", "Heartbeat of storage")
            return self.study.ask()

    def budget_left(self) -> bool:
        """Whether another trial may start (asked under the budget lock): the finished and
        running trials of every worker are fewer than the head's budget."""
        counts = Counts.of(self.study)
        return counts.finished + counts.running < self.n_trials


def open_head(tc: TuneConfig, space: SearchSpace, storage: Any, head: str, tuning: Resources,
              index: int = 0, quiet: bool = True) -> HeadStudy:
    """The head's study (checked to search the same space), its sampler, pruner and trial
    setup, for worker number `index`; `quiet` hides the training progress bars."""
    head_space = space.for_head(head)
    n_trials = n_trials_for(tc, head_space)
    study = open_study(tc, storage, head, study_identity(tc, head_space))
    study.sampler = make_sampler(tc, n_trials, index, len(study.get_trials(deepcopy=False)))
    study.pruner = make_pruner(tc.pruner, n_trials, head_space, tc.run.train.num_train_epochs)
    keeper = BestKeeper(tc.study_dir.head(head).path, head, tc.select_on,
                        higher=tc.direction == "maximize")
    setup = TrialSetup(tc.run, head, head_space, tuning, keeper, quiet=quiet,
                       command=tc.to_dict()["command"], tracking=study_tracking(tc))
    return HeadStudy(head, study, head_space, setup, n_trials)
