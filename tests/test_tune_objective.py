"""The trial objective: real training on a tiny model, pruning, failures, the best-model folder."""

from __future__ import annotations

import json

import optuna
import pytest
import torch
from helpers import fake_fit, fake_result, tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.losses import NonFiniteLoss
from poolbert.resources import Resources
from poolbert.training import fit
from poolbert.tuning import BestKeeper, Objective, TrialFailed, TrialSetup, load_space
from poolbert.tuning.heads import make_pruner

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def resources(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    config = tiny_run_config(tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 32, 16))
    return config, Resources.load(config)


def make_objective(tmp_path, resources, fit_fn=fake_fit, head="cls"):
    config, res = resources
    space = load_space("quick").for_head(head)
    keeper = BestKeeper(tmp_path / "heads" / head, head, "dev")
    return Objective(TrialSetup(config, head, space, res, keeper), fit_fn)


PARAMS = {"learning_rate": 2e-4, "num_train_epochs": 2, "max_length": 64, "dropout": 0.1}


def test_fixed_trial_with_real_training(tmp_path, resources):
    objective = make_objective(tmp_path, resources, fit_fn=fit)
    trial = optuna.trial.FixedTrial(PARAMS)
    value = objective(trial)
    assert 0.0 <= value <= 1.0
    assert trial.user_attrs["epochs_run"] == 2 and trial.user_attrs["planned_epochs"] == 2
    assert trial.user_attrs["best_epoch"] in (1, 2) and trial.user_attrs["duration_s"] > 0
    head = tmp_path / "heads" / "cls"
    best = json.loads((head / "best.json").read_text())
    assert best == {"head": "cls", "trial_number": 0, "value": value, "params": PARAMS,
                    "selection": "dev"}
    for name in ("config.json", "metrics.json", "history.jsonl", "predictions.csv",
                 "model/model.safetensors", "model/config.json", "model/tokenizer.json"):
        assert (head / "best" / name).is_file(), name
    config = json.loads((head / "best" / "config.json").read_text())
    assert config["train"]["learning_rate"] == 2e-4 and config["model"]["pooling"] == "cls"
    assert config["tune"]["trial_number"] == 0
    metrics = json.loads((head / "best" / "metrics.json").read_text())
    assert metrics["eval_accuracy"] == value


def test_only_a_better_trial_replaces_the_best(tmp_path, resources):
    accuracies = iter([0.5, 0.75, 0.6, 0.75])

    def fit_fn(config, res, on_epoch=None, quiet=False, epoch_selection="best"):
        return fake_result(config, res, next(accuracies), 2)

    objective = make_objective(tmp_path, resources, fit_fn)
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=4)
    best = json.loads((tmp_path / "heads" / "cls" / "best.json").read_text())
    assert best["trial_number"] == 1 and best["value"] == 0.75  # the tie (trial 3) loses
    saved = json.loads((tmp_path / "heads" / "cls" / "best" / "config.json").read_text())
    assert saved["tune"]["trial_number"] == 1
    leftovers = [p.name for p in (tmp_path / "heads" / "cls").iterdir() if p.name.startswith(".t")]
    assert leftovers == []


def hopeful_then_hopeless(config, res, on_epoch=None, quiet=False, epoch_selection="best"):
    """0.9 every epoch, except learning_rate 2e-5 (the hopeless trial): 0.0 every epoch."""
    accuracy = 0.0 if config.train.learning_rate == 2e-5 else 0.9
    for epoch in range(1, config.train.num_train_epochs + 1):
        on_epoch(epoch, {"eval_accuracy": accuracy})
    return fake_result(config, res, accuracy, config.train.num_train_epochs)


def test_median_pruner_stops_a_hopeless_trial_at_epoch_two(tmp_path, resources):
    objective = make_objective(tmp_path, resources, hopeful_then_hopeless)
    space = objective.setup.space
    study = optuna.create_study(direction="maximize",
                                pruner=make_pruner("median", 4, space, 2))
    for lr in (5e-5, 6e-5, 2e-5):
        study.enqueue_trial({**PARAMS, "learning_rate": lr, "num_train_epochs": 3})
    study.enqueue_trial({**PARAMS, "learning_rate": 2e-5, "num_train_epochs": 2})
    study.optimize(objective, n_trials=4)
    good1, good2, hopeless, short = study.trials
    assert short.state == optuna.trial.TrialState.COMPLETE  # its last epoch: nothing to save
    assert good1.state == good2.state == optuna.trial.TrialState.COMPLETE
    assert hopeless.state == optuna.trial.TrialState.PRUNED
    assert hopeless.user_attrs["epochs_run"] == 2  # not at epoch 1: RTE is noisy early
    assert hopeless.user_attrs["planned_epochs"] == 3
    assert list(hopeless.intermediate_values) == [1, 2]


def test_no_pruning_at_epoch_one(tmp_path, resources):
    objective = make_objective(tmp_path, resources, hopeful_then_hopeless)
    study = optuna.create_study(direction="maximize",
                                pruner=optuna.pruners.MedianPruner(n_startup_trials=1))
    for lr in (5e-5, 2e-5):
        study.enqueue_trial({**PARAMS, "learning_rate": lr, "num_train_epochs": 3})
    study.optimize(objective, n_trials=2)
    assert study.trials[1].user_attrs["epochs_run"] == 2  # pruner allowed it; objective waited


def raising(exc):
    def fit_fn(config, res, on_epoch=None, quiet=False, epoch_selection="best"):
        on_epoch(1, {"eval_accuracy": 0.5})
        raise exc
    return fit_fn


def test_nan_loss_becomes_a_pruned_trial_with_a_reason(tmp_path, resources):
    objective = make_objective(tmp_path, resources,
                               raising(NonFiniteLoss("training loss became nan at step 3")))
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=1)
    trial = study.trials[0]
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert trial.user_attrs["fail_reason"].startswith("non-finite loss: training loss became nan")
    assert trial.user_attrs["epochs_run"] == 1


@pytest.mark.parametrize("error", [
    torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
    RuntimeError("DefaultCPUAllocator: not enough memory: you tried to allocate; out of memory"),
])
def test_out_of_memory_fails_the_trial_with_a_reason(tmp_path, resources, error):
    objective = make_objective(tmp_path, resources, raising(error))
    study = optuna.create_study(direction="maximize")
    study.optimize(objective, n_trials=2, catch=(TrialFailed,))  # the study goes on
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 2
    assert study.trials[0].user_attrs["fail_reason"].startswith("out of memory: ")


def test_other_errors_are_recorded_and_raised(tmp_path, resources):
    objective = make_objective(tmp_path, resources, raising(ValueError("a bug")))
    study = optuna.create_study(direction="maximize")
    with pytest.raises(ValueError, match="a bug"):
        study.optimize(objective, n_trials=1, catch=(TrialFailed,))
    assert study.trials[0].user_attrs["fail_reason"] == "ValueError: a bug"


def test_interrupt_marks_the_trial_and_queues_its_parameters(tmp_path, resources):
    objective = make_objective(tmp_path, resources, raising(KeyboardInterrupt()))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(PARAMS)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(objective, n_trials=1)
    failed, waiting = study.get_trials()
    assert failed.state == optuna.trial.TrialState.FAIL
    assert failed.user_attrs["fail_reason"] == "interrupted"
    assert waiting.state == optuna.trial.TrialState.WAITING
    assert waiting.user_attrs["retry_of"] == 0


def test_pruners_never_stop_before_epoch_two(tmp_path, resources):
    space = load_space("paper").for_head("cls")
    assert isinstance(make_pruner("none", 48, space, 3), optuna.pruners.NopPruner)
    median = make_pruner("median", 48, space, 3)
    assert median._n_warmup_steps == 2 and median._n_startup_trials == 5
    hyperband = make_pruner("hyperband", 48, space, 3)
    assert hyperband._min_resource == 2 and hyperband._max_resource == 15  # most epochs searched
