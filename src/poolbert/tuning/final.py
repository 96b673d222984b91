"""After tuning: each head's best model on dev, and its settings re-trained with K seeds.

Under the holdout protocol the best trial's model (chosen on the held-out slice of train) is
scored on dev once, and the seed re-trainings keep their last epoch, so no dev number was used to
choose anything. Under the dev protocol (the report's) the numbers are the selected ones.
"""

from __future__ import annotations

import shutil
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import optuna
import torch
from optuna.trial import FrozenTrial, TrialState

from ..calibration import Calibration, calibrate
from ..config import RunConfig
from ..device import resolve_device, resolve_precision
from ..errors import PoolbertError
from ..files import atomic_dir
from ..layout import HeadDir, Predictions, RunDir, read_predictions, write_predictions
from ..losses import NonFiniteLoss
from ..metrics import criterion
from ..model import calibration_of, load_model, problem_of
from ..pack import train_together
from ..resources import Resources, run_record
from ..scoring import ScoreOptions, score_split
from ..tracking import Tracking
from ..training import TrainResult, fit
from .racing import STOP_ATTR
from .settings import TuneConfig
from .storage import study_name
from .trials import FitFn, study_tracking, trial_config


@dataclass
class SeedRun:
    seed: int
    value: float  # the study's metric on dev
    predictions: Predictions  # over the dev examples, in dev order


@dataclass
class HeadOutcome:
    head: str
    trials: list[FrozenTrial]
    n_requested: int
    best: FrozenTrial | None = None
    dev_value_best: float | None = None  # the best trial's model on dev, the study's metric
    dev_best: Predictions | None = None
    dev_metrics: dict = field(default_factory=dict)  # all of the best model's dev metrics
    seed_runs: list[SeedRun] = field(default_factory=list)
    race_stop: dict | None = None  # --race: the record of the race stopping this head

    @property
    def n_finished(self) -> int:
        return sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in self.trials)


def best_trial(trials: list[FrozenTrial], higher: bool = True) -> FrozenTrial | None:
    """The best value (highest, or lowest for a minimised metric), then the lowest trial
    number: the rule heads/<head>/best/ follows."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    sign = 1.0 if higher else -1.0
    return max(done, key=lambda t: (sign * (t.value or 0.0), -t.number)) if done else None


def dev_predictions(run: RunDir, ids: np.ndarray) -> Predictions:
    """A run's predictions.csv, checked to hold the validation examples in order."""
    return head_predictions(run.predictions_file, ids)


def head_predictions(path: Path, ids: np.ndarray) -> Predictions:
    """A predictions file, checked to hold the validation examples in order."""
    found = read_predictions(path)
    if len(found.ids) != len(ids) or not np.array_equal(found.ids, ids):
        raise PoolbertError(f"{path}: rows do not match the validation examples")
    return found


def score_best_on_dev(tc: TuneConfig, outcome: HeadOutcome, resources: Resources) -> None:
    """The best trial's model on dev (the study's metric), and its predictions for the tests.
    It predicts with the temperature and threshold it was given on the selection set."""
    head = tc.study_dir.head(outcome.head)
    if outcome.best is None or not head.best_json.is_file():
        return
    if head.read_best().get("trial_number") != outcome.best.number:
        print(f"[{outcome.head}] warning: heads/{outcome.head}/best/ does not hold trial "
              f"{outcome.best.number}; its dev score is skipped")
        return
    dev = resources.data.validation
    config = trial_config(tc.run, outcome.head, outcome.best.params)
    judge = criterion(config, resources.data)
    if tc.select_on == "dev":  # trials were scored on dev: the best run's numbers are those
        outcome.dev_metrics = head.best.read_metrics()
        outcome.dev_value_best = judge.value(outcome.dev_metrics)
        outcome.dev_best = dev_predictions(head.best, dev.ids)
        return
    model, _ = load_model(str(head.best.model))
    device = resolve_device(config.train.device)
    precision = resolve_precision(config.train.precision, device)
    how = ScoreOptions(device, precision, resources.tokenizer.pad_token_id or 0,
                  config.train.eval_batch_size, config.train.attention, judge.problem_type,
                  *calibration_of(model.config))
    scores = score_split(model.to(device), resources.cache.get(dev, config.train.max_length), how)
    write_predictions(head.dev_predictions, dev.ids, dev.labels, scores.preds, scores.probs,
                      resources.data.label_names, judge.problem_type)
    outcome.dev_metrics = scores.metrics
    outcome.dev_value_best = judge.value(scores.metrics)
    outcome.dev_best = head_predictions(head.dev_predictions, dev.ids)


def run_seeds(tc: TuneConfig, outcome: HeadOutcome, resources: Resources,
              fit_fn: FitFn = fit, pack: int = 1) -> int:
    """Re-train the best settings with seeds 1..K on all of train (`pack` at a time, as packed
    trials); finished seeds are reused. Returns how many were trained now."""
    best = outcome.best
    if best is None or tc.final_seeds == 0:
        return 0
    head = tc.study_dir.head(outcome.head)
    seeds = list(range(1, tc.final_seeds + 1))
    _remove_other_seeds(head, seeds)
    selection = "last" if tc.select_on == "holdout" else "best"
    missing = [seed for seed in seeds if not _is_current(head.seed(seed), best, seed)]
    for start in range(0, len(missing), pack):
        chunk = missing[start:start + pack]
        configs = [_seed_config(tc, outcome.head, best, seed, selection) for seed in chunk]
        with ExitStack() as runs:  # each seed run tracked (--report-to) until its files are in
            tracked = [runs.enter_context(_track(tc, outcome.head, best, seed, config))
                       for seed, config in zip(chunk, configs, strict=True)]
            results = _train(configs, resources, fit_fn, selection, tc.quiet, tracked)
            if selection == "last":  # nothing was fitted on dev: the best trial's calibration
                results = [with_calibration(r, resources.data.validation.labels,
                                            _best_calibration(head)) for r in results]
            for config, result, tracking in zip(configs, results, tracked, strict=True):
                seed = config.train.seed
                _save_seed(tc, outcome.head, best, resources, config, selection, result)
                tracking.log_artifacts(head.seed(seed).path)
    judge = criterion(tc.run, resources.data)
    for seed in seeds:
        run = head.seed(seed)
        found = dev_predictions(run, resources.data.validation.ids)
        outcome.seed_runs.append(SeedRun(seed, judge.value(run.read_metrics()), found))
    return len(missing)


def _best_calibration(head: HeadDir) -> Calibration:
    """The temperature and multi-label threshold of the head's best trial, fitted on the
    holdout slice."""
    metrics = head.best.read_metrics()
    return Calibration(float(metrics.get("temperature", 1.0)), metrics.get("eval_threshold", 0.5))


def with_calibration(result: TrainResult, labels: np.ndarray,
                     plan: Calibration) -> TrainResult:
    """A seed run's result re-scored with its best trial's calibration (fitted elsewhere)."""
    how = ScoreOptions(torch.device("cpu"), problem_type=problem_of(result.model.config))
    kept = calibrate(result.model, result.scores, labels, how, plan)
    return replace(result, metrics={**result.metrics, **kept.metrics}, scores=kept)


def _seed_config(tc: TuneConfig, head: str, best: FrozenTrial, seed: int,
                 selection: str) -> RunConfig:
    config = trial_config(tc.run, head, best.params)
    config.train.seed = seed
    stopped_at = best.user_attrs.get("best_epoch")
    if selection == "last" and config.train.early_stopping_patience and stopped_at:
        # early stopping cannot watch dev: train as many epochs as the best trial kept
        config.train.num_train_epochs = int(stopped_at)
    print(f"[{head}] final run with seed {seed} (trial {best.number}'s settings, "
          f"{selection} epoch)", flush=True)
    return config


def _track(tc: TuneConfig, head: str, best: FrozenTrial, seed: int, config: RunConfig) -> Tracking:
    name = f"{head}/seed-{seed}"
    return study_tracking(tc).start(name, config.to_dict(), {
        "head": head, "trial": best.number, "seed": seed}, subdir=name)


def _train(configs: list[RunConfig], resources: Resources, fit_fn: FitFn, selection: str,
           quiet: bool, tracked: list[Tracking]) -> list[TrainResult]:
    """The runs one by one, or (several) as one pack."""
    if len(configs) == 1:
        return [fit_fn(configs[0], resources, quiet=quiet, epoch_selection=selection,
                         **tracked[0].hook())]
    results = train_together(configs, resources, selection,
                             [t.on_record for t in tracked])
    for result in results:
        if isinstance(result, str):  # as fit() raises for a run alone
            raise NonFiniteLoss(result)
    return [r for r in results if not isinstance(r, str)]


def _save_seed(tc: TuneConfig, head: str, best: FrozenTrial, resources: Resources,
               config: RunConfig, selection: str, result: TrainResult) -> None:
    seed = config.train.seed
    record = run_record(config, resources.data, tc.to_dict()["command"])
    record["tune"] = {"head": head, "trial_number": best.number, "params": best.params,
                      "seed": seed, "epoch_selection": selection}
    with atomic_dir(tc.study_dir.head(head).seed(seed).path, overwrite=True) as tmp:
        result.save(tmp, record, resources, save_model=False)


def _is_current(run: RunDir, best: FrozenTrial, seed: int) -> bool:
    """A seed run finished earlier for the same best trial (a resumed command skips it)."""
    if not run.metrics_file.is_file() or not run.config_file.is_file():
        return False
    tune = run.read_config().get("tune") or {}
    return (tune.get("trial_number") == best.number and tune.get("params") == best.params
            and tune.get("seed") == seed)


def _remove_other_seeds(head: HeadDir, seeds: list[int]) -> None:
    keep = {head.seed(s).path for s in seeds}
    for run in head.seed_runs():
        if run.path not in keep:
            shutil.rmtree(run.path, ignore_errors=True)


def collect(tc: TuneConfig, storage: optuna.storages.BaseStorage, head: str,
            n_requested: int) -> HeadOutcome:
    study = optuna.load_study(study_name=study_name(tc, head), storage=storage)
    trials = study.get_trials(deepcopy=False)
    higher = study.direction == optuna.study.StudyDirection.MAXIMIZE
    return HeadOutcome(head, trials, n_requested, best_trial(trials, higher),
                       race_stop=study.user_attrs.get(STOP_ATTR))
