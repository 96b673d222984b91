"""Trial bookkeeping shared by unpacked and packed trials: a trial's settings, what it records
about itself, its reports to the pruner, its Ctrl-C mark and re-queue, its printed line, and
the best run of a head (heads/<head>/best/) kept as trials finish.
"""

from __future__ import annotations

import copy
import math
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna

from ..config import RunConfig, apply_overrides
from ..files import make_ordinary, replace_dir, write_json
from ..layout import HeadDir
from ..metrics import criterion
from ..resources import Resources, run_record
from ..text import fmt_number
from ..tracking import Plan, Tracking, check_tools
from ..training import TrainResult
from .locks import FileLock
from .settings import MIN_PRUNE_EPOCH, TuneConfig
from .space import HeadSpace

FitFn = Callable[..., TrainResult]  # training.fit, or a test's fake


class TrialFailed(Exception):
    """A trial that cannot finish (out of memory); the study records it and goes on."""


def trial_config(base: RunConfig, head: str, params: dict[str, Any]) -> RunConfig:
    """The fixed settings, the head's pooling, then the sampled values (which may set pooling)."""
    config = copy.deepcopy(base)
    config.model.pooling = head
    apply_overrides(config, params, source="search space")
    return config.validate()


class BestKeeper:
    """`heads/<head>/best/` holds the run of the best trial so far (best value, highest or
    lowest as the study's metric goes, then lowest trial number); it is replaced in one rename,
    and `best.json` follows it."""

    def __init__(self, head_dir: Path, head: str, selection: str, higher: bool = True) -> None:
        self.dir, self.head, self.selection = HeadDir(head_dir), head, selection
        self.sign = 1.0 if higher else -1.0

    def current(self) -> dict | None:
        if not self.dir.best.path.is_dir():
            return None
        return self.dir.read_best() or None

    def beats(self, number: int, value: float) -> bool:
        best = self.current()
        if best is None or best.get("value") is None:
            return True
        return (self.sign * value, -number) > (self.sign * best["value"], -best["trial_number"])

    def offer(self, number: int, value: float, params: dict,
              write_run: Callable[[Path], None]) -> bool:
        """Write the trial's run to a temporary folder and make it the best if it still beats
        the best when the lock is held (other workers may finish at the same time)."""
        self.dir.path.mkdir(parents=True, exist_ok=True)
        if not self.beats(number, value):
            return False
        tmp = Path(tempfile.mkdtemp(prefix=f".trial-{number}.tmp-", dir=self.dir.path))
        make_ordinary(tmp)
        try:
            write_run(tmp)
            with FileLock(self.dir.best_lock):
                if not self.beats(number, value):
                    return False
                replace_dir(tmp, self.dir.best.path)
                write_json(self.dir.best_json, {
                    "head": self.head, "trial_number": number, "value": value,
                    "params": params, "selection": self.selection})
                return True
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


@dataclass
class TrialSetup:
    base: RunConfig  # fixed settings shared by every trial
    head: str
    space: HeadSpace
    resources: Resources  # trials train on resources.data.train, are scored on its validation
    keeper: BestKeeper
    quiet: bool = True
    command: list[str] | None = None
    tracking: Plan = field(default_factory=Plan)  # --report-to: one tracked run per trial

    def track(self, number: int, config: RunConfig) -> Tracking:
        """Trial `number`'s run in the tracking tools (a pruned trial ends as pruned)."""
        return self.tracking.start(f"{self.head}/trial-{number}", config.to_dict(),
                                   {"head": self.head, "trial": number},
                                   subdir=f"{self.head}/trial-{number}",
                                   pruned=(optuna.TrialPruned,))


def study_tracking(tc: TuneConfig) -> Plan:
    """A study's tracked runs: under its folder, the study's name as the experiment."""
    return Plan(check_tools(tc.run.train.report_to), tc.study_dir.path, tc.name)


class TrialClock:
    """What a trial records about itself (trials.csv, the report): planned and run epochs,
    duration, best epoch, fail reason."""

    def __init__(self, trial: Any, config: RunConfig, head: str) -> None:
        self.trial, self.epochs, self.start = trial, 0, time.perf_counter()
        if trial.user_attrs.get("fail_reason"):  # a re-run inherits its failed original's attrs
            trial.set_user_attr("fail_reason", "")
        trial.set_user_attr("planned_epochs", config.train.num_train_epochs)
        trial.set_user_attr("head", head)  # optuna-dashboard shows it beside the trial

    def record(self, **attrs: Any) -> None:
        self.trial.set_user_attr("epochs_run", self.epochs)
        self.trial.set_user_attr("duration_s", round(time.perf_counter() - self.start, 3))
        for key, value in attrs.items():
            self.trial.set_user_attr(key, value)


def should_stop(trial: Any, epoch: int, last: int, value: float) -> bool:
    """Report the epoch's value of the study's metric; whether the pruner stops the trial here
    (never before MIN_PRUNE_EPOCH, never after the last epoch: that would save nothing)."""
    trial.report(value, epoch)
    return MIN_PRUNE_EPOCH <= epoch < last and trial.should_prune()


def keep_if_best(setup: TrialSetup, result: TrainResult, config: RunConfig, number: int,
                 params: dict[str, Any], tracking: Tracking | None = None) -> float:
    """The trial's value; its run becomes heads/<head>/best/ if it beats the best so far. The
    tracking tools keep the run's files (without the model) of every trial."""
    value = criterion(config, setup.resources.data).value(result.metrics)

    def write_run(folder: Path, save_model: bool = True) -> None:
        record = run_record(config, setup.resources.data, setup.command)
        record["tune"] = {"head": setup.head, "trial_number": number, "params": params,
                          "value": value, "selection": setup.keeper.selection}
        result.save(folder, record, setup.resources, save_model=save_model)
        # no loss_curve.png: plotting belongs to `report`; it draws from history.jsonl

    setup.keeper.offer(number, value, params, write_run)
    if tracking is not None:
        tracking.log_files(lambda folder: write_run(folder, save_model=False))
    return value


def mark_interrupted(trial: optuna.Trial, params: dict[str, Any], space: HeadSpace) -> None:
    """Ctrl-C during a trial: it is marked, and queued for the resume once every parameter of
    the space was drawn (else the resume's sampler draws it afresh)."""
    trial.set_user_attr("fail_reason", "interrupted")
    if len(params) == len(space.params):
        requeue(trial, params)


def requeue(trial: Any, params: dict) -> None:
    """Queue the interrupted trial's parameters so that resuming runs them first."""
    study = getattr(trial, "study", None)  # FixedTrial has none
    if study is None:
        return
    try:
        study.enqueue_trial(params, user_attrs={"retry_of": trial.number})
    except Exception:  # best effort while shutting down
        pass


def print_trial(head: str, trial: optuna.trial.FrozenTrial) -> None:
    """One line per finished trial (the progress of a study, also with --quiet)."""
    attrs = trial.user_attrs
    value = f"{trial.value:.4f}" if trial.value is not None else "-"
    params = ", ".join(f"{k}={fmt_number(v, small=math.inf)}" for k, v in trial.params.items())
    reason = f"  ({attrs['fail_reason']})" if attrs.get("fail_reason") else ""
    print(f"[{head}] trial {trial.number} {trial.state.name.lower()} value {value} "
          f"epochs {attrs.get('epochs_run', '-')}/{attrs.get('planned_epochs', '-')} "
          f"{attrs.get('duration_s', 0):.0f}s  {params}{reason}", flush=True)
