"""After tuning: each head's best model on dev, and its settings re-trained with K seeds.

Under the holdout protocol the best trial's model (chosen on the held-out slice of train) is
scored on dev once, and the seed re-trainings keep their last epoch, so no dev number was used to
choose anything. Under the dev protocol (the report's) the numbers are the selected ones.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import optuna
import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from ..device import resolve_device, resolve_precision
from ..errors import PoolbertError
from ..evaluate import evaluate
from ..files import atomic_dir, read_json
from ..model import load_model
from ..train import Resources, run_record, save_run, train, write_predictions
from .objective import TrainFn, trial_config
from .settings import TuneConfig


@dataclass
class SeedRun:
    seed: int
    accuracy: float
    correct: np.ndarray  # (N,) bool over the dev examples, in dev order
    probs: np.ndarray  # (N, C) class probabilities


@dataclass
class HeadOutcome:
    head: str
    trials: list[FrozenTrial]
    n_requested: int
    best: FrozenTrial | None = None
    dev_accuracy_best: float | None = None
    dev_correct_best: np.ndarray | None = None
    seed_runs: list[SeedRun] = field(default_factory=list)


def best_trial(trials: list[FrozenTrial]) -> FrozenTrial | None:
    """Highest value, then lowest trial number (the rule heads/<head>/best/ follows)."""
    done = [t for t in trials if t.state == TrialState.COMPLETE and t.value is not None]
    return max(done, key=lambda t: (t.value, -t.number)) if done else None


def read_predictions(predictions_csv: Path, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-example correctness (N,) and class probabilities (N, C) from predictions.csv."""
    frame = pd.read_csv(predictions_csv)
    if len(frame) != len(ids) or not np.array_equal(frame["id"].to_numpy(), ids):
        raise PoolbertError(f"{predictions_csv}: rows do not match the validation examples")
    probs = frame[[c for c in frame.columns if c.startswith("prob_")]].to_numpy(dtype=float)
    return frame["label"].to_numpy() == frame["prediction"].to_numpy(), probs


def score_best_on_dev(tc: TuneConfig, outcome: HeadOutcome, resources: Resources) -> None:
    """dev accuracy of the best trial's model, and per-example correctness for the tests."""
    head_dir = tc.out / "heads" / outcome.head
    best_json = head_dir / "best.json"
    if outcome.best is None or not best_json.is_file():
        return
    if read_json(best_json).get("trial_number") != outcome.best.number:
        print(f"[{outcome.head}] warning: heads/{outcome.head}/best/ does not hold trial "
              f"{outcome.best.number}; its dev score is skipped")
        return
    dev = resources.data.validation
    if tc.select_on == "dev":  # trials were scored on dev: the best run's numbers are those
        outcome.dev_accuracy_best = float(read_json(head_dir / "best" / "metrics.json")
                                          ["eval_accuracy"])
        outcome.dev_correct_best = read_predictions(head_dir / "best" / "predictions.csv",
                                                    dev.ids)[0]
        return
    config = trial_config(tc.run, outcome.head, outcome.best.params)
    model, _ = load_model(str(head_dir / "best" / "model"))
    device = resolve_device(config.train.device)
    precision = resolve_precision(config.train.precision, device)
    scores = evaluate(model.to(device), resources.cache.get(dev, config.train.max_length),
                      config.train.eval_batch_size, device, precision,
                      resources.tokenizer.pad_token_id or 0)
    write_predictions(head_dir / "dev_predictions.csv", dev.ids, dev.labels, scores,
                      resources.data.label_names)
    outcome.dev_accuracy_best = float(scores.metrics["eval_accuracy"])
    outcome.dev_correct_best = scores.preds == dev.labels


def run_seeds(tc: TuneConfig, outcome: HeadOutcome, resources: Resources,
              train_fn: TrainFn = train) -> None:
    """Re-train the best settings with seeds 1..K on all of train; finished seeds are reused."""
    if outcome.best is None or tc.final_seeds == 0:
        return
    seeds_dir = tc.out / "heads" / outcome.head / "seeds"
    seeds = list(range(1, tc.final_seeds + 1))
    _remove_other_seeds(seeds_dir, seeds)
    selection = "last" if tc.select_on == "holdout" else "best"
    for seed in seeds:
        folder = seeds_dir / f"seed-{seed}"
        if not _is_current(folder, outcome.best, seed):
            _train_seed(tc, outcome, resources, train_fn, seed, selection, folder)
        metrics = read_json(folder / "metrics.json")
        correct, probs = read_predictions(folder / "predictions.csv",
                                          resources.data.validation.ids)
        outcome.seed_runs.append(SeedRun(seed, float(metrics["eval_accuracy"]), correct, probs))


def _train_seed(tc: TuneConfig, outcome: HeadOutcome, resources: Resources, train_fn: TrainFn,
                seed: int, selection: str, folder: Path) -> None:
    config = trial_config(tc.run, outcome.head, outcome.best.params)
    config.train.seed = seed
    print(f"[{outcome.head}] final run with seed {seed} (trial {outcome.best.number}'s settings, "
          f"{selection} epoch)", flush=True)
    result = train_fn(config, resources, quiet=tc.quiet, epoch_selection=selection)
    record = run_record(config, resources, tc.to_dict()["command"])
    record["tune"] = {"head": outcome.head, "trial_number": outcome.best.number,
                      "params": outcome.best.params, "seed": seed, "epoch_selection": selection}
    with atomic_dir(folder, overwrite=True) as tmp:
        save_run(result, record, resources, tmp, save_model=False)


def _is_current(folder: Path, best: FrozenTrial, seed: int) -> bool:
    """A seed run finished earlier for the same best trial (a resumed command skips it)."""
    if not (folder / "metrics.json").is_file() or not (folder / "config.json").is_file():
        return False
    tune = read_json(folder / "config.json").get("tune") or {}
    return (tune.get("trial_number") == best.number and tune.get("params") == best.params
            and tune.get("seed") == seed)


def _remove_other_seeds(seeds_dir: Path, seeds: list[int]) -> None:
    if not seeds_dir.is_dir():
        return
    keep = {f"seed-{s}" for s in seeds}
    for folder in seeds_dir.iterdir():
        if folder.is_dir() and folder.name.startswith("seed-") and folder.name not in keep:
            shutil.rmtree(folder, ignore_errors=True)


def collect(tc: TuneConfig, storage: object, head: str, n_requested: int) -> HeadOutcome:
    from .storage import study_name

    study = optuna.load_study(study_name=study_name(tc, head), storage=storage)
    trials = study.get_trials(deepcopy=False)
    return HeadOutcome(head, trials, n_requested, best_trial(trials))
