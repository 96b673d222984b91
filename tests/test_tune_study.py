"""run_study in this process: failures, resume after Ctrl-C, refusing a changed space, recovery
of a dead worker's trial, and no password in any file."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys

import optuna
import pytest
import torch
import yaml
from helpers import fake_fit, fake_result, tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.errors import PoolbertError
from poolbert.losses import NonFiniteLoss
from poolbert.text import redact
from poolbert.tuning import TuneConfig, load_space, run_study
from poolbert.tuning.heads import OwnedTPESampler
from poolbert.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 32, 16)


def settings(tiny, out, **kwargs) -> TuneConfig:
    defaults = {"heads": ["cls"], "space": "quick", "n_trials": 3, "final_seeds": 0,
                "select_on": "dev", "quiet": True}
    return TuneConfig(run=tiny_run_config(*tiny), output_dir=str(out), **{**defaults, **kwargs})


def load_trials(tc: TuneConfig, head: str = "cls") -> list:
    study = optuna.load_study(study_name=f"{tc.name}-{head}", storage=open_storage(tc))
    return study.get_trials()


def read_csv(path):
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


class Scripted:
    """A train stand-in that raises the scripted error on its n-th call (1-based)."""

    def __init__(self, script: dict):
        self.script, self.calls = script, 0

    def __call__(self, config, res, on_epoch=None, quiet=False, epoch_selection="best"):
        self.calls += 1
        error = self.script.get(self.calls)
        if error is not None:
            raise error
        return fake_fit(config, res, on_epoch, quiet, epoch_selection)


def test_nan_and_out_of_memory_are_recorded_and_the_study_goes_on(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s")
    fit_fn = Scripted({1: torch.cuda.OutOfMemoryError("CUDA out of memory"),
                         2: NonFiniteLoss("training loss became nan at step 1")})
    summary = run_study(tc, fit_fn)
    trials = load_trials(tc)
    assert [t.state.name for t in trials] == ["FAIL", "PRUNED", "COMPLETE", "COMPLETE"]
    rows = read_csv(tmp_path / "s" / "trials.csv")
    assert rows[0]["fail_reason"] == "out of memory: CUDA out of memory"
    assert rows[1]["fail_reason"].startswith("non-finite loss: training loss became nan")
    head = summary["heads"]["cls"]
    counts = (head["n_trials"], head["n_complete"], head["n_pruned"], head["n_failed"])
    assert counts == (4, 2, 1, 1)
    assert head["best_trial"] in (2, 3)


def test_interrupted_study_resumes_with_only_the_remaining_budget(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", n_trials=4, final_seeds=2)
    with pytest.raises(KeyboardInterrupt):
        run_study(tc, Scripted({3: KeyboardInterrupt()}))
    first = load_trials(tc)
    assert [t.state.name for t in first] == ["COMPLETE", "COMPLETE", "FAIL", "WAITING"]
    assert first[2].user_attrs["fail_reason"] == "interrupted"
    assert (tmp_path / "s" / "trials.csv").is_file()  # what finished is on disk
    assert (tmp_path / "s" / "heads" / "cls" / "best.json").is_file()

    again = Scripted({})
    summary = run_study(tc, again)
    trials = load_trials(tc)
    assert [(t.number, t.params, t.value) for t in trials[:2]] == [
        (t.number, t.params, t.value) for t in first[:2]]  # finished trials kept as they were
    assert sum(t.state in FINISHED for t in trials) == 4
    assert trials[3].params == first[2].params  # the interrupted trial ran again first
    assert again.calls == 2 + 2  # two remaining trials, then two final seeds
    assert summary["heads"]["cls"]["seeds"] == [1, 2]

    rerun = Scripted({})
    run_study(tc, rerun)  # nothing left to do: trials and seed runs are reused
    assert rerun.calls == 0
    assert len(load_trials(tc)) == len(trials)


def test_existing_study_with_another_space_is_refused(tiny, tmp_path):
    run_study(settings(tiny, tmp_path / "s", n_trials=1), fake_fit)
    wide = tmp_path / "other.yaml"
    wide.write_text(yaml.safe_dump({"heads": {"cls": {"params": {"learning_rate": {
        "type": "float", "low": 1e-5, "high": 1e-3, "log": True}}}}}))
    with pytest.raises(PoolbertError, match=r"study 's-cls' .* exists with a different "
                                            r"search_space .*--study-name"):
        run_study(settings(tiny, tmp_path / "s", space=str(wide)), fake_fit)
    with pytest.raises(PoolbertError, match="different protocol"):
        run_study(settings(tiny, tmp_path / "s", select_on="holdout"), fake_fit)
    # another study name in the same storage is a fresh study
    run_study(settings(tiny, tmp_path / "s", space=str(wide), study_name="wide",
                       n_trials=1), fake_fit)


def test_a_study_from_before_a_setting_existed_resumes_at_its_default(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", n_trials=1)
    run_study(tc, fake_fit)
    study = optuna.load_study(study_name=f"{tc.name}-cls", storage=open_storage(tc))
    older = dict(study.user_attrs["fixed_settings"])
    for added in ("metric", "class_weights", "early_stopping_patience", "calibrate"):
        del older[added]  # as a study made before these settings existed stored it
    study.set_user_attr("fixed_settings", older)
    run_study(settings(tiny, tmp_path / "s", n_trials=2), fake_fit)  # defaults: resumes
    assert len(load_trials(tc)) == 2
    other = settings(tiny, tmp_path / "s", n_trials=3)
    other.run.train.metric = "loss"
    with pytest.raises(PoolbertError, match=r"different fixed_settings \(metric: auto -> loss"):
        run_study(other, fake_fit)


def test_output_dir_that_is_not_a_study_is_refused(tiny, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.json").write_text("{}")
    with pytest.raises(PoolbertError, match="not a poolbert study"):
        run_study(settings(tiny, tmp_path / "run"), fake_fit)


def test_trial_of_a_dead_worker_is_failed_and_rerun_with_its_parameters(tiny, tmp_path):
    tc = settings(tiny, tmp_path / "s", n_trials=2)
    run_study(settings(tiny, tmp_path / "s", n_trials=1), fake_fit)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study = optuna.load_study(study_name="s-cls", storage=open_storage(tc))
    params = {"learning_rate": 3e-5, "num_train_epochs": 2, "max_length": 64, "dropout": 0.05}
    study.enqueue_trial(params)
    with pytest.warns(UserWarning, match="Heartbeat"):
        trial = study.ask()  # a trial left RUNNING by a process that no longer exists
    load_space("quick").for_head("cls").suggest(trial)
    trial.set_user_attr("worker", f"{socket.gethostname()}:{dead.pid}")
    run_study(tc, fake_fit)
    trials = load_trials(tc)
    assert trials[1].state.name == "FAIL"
    assert trials[1].user_attrs["fail_reason"] == "worker process died during the trial"
    assert trials[2].state.name == "COMPLETE" and trials[2].params == params
    assert trials[2].user_attrs["fail_reason"] == ""  # not inherited from the failed original
    assert sum(t.state in FINISHED for t in trials) == 2
    assert not [t for t in trials if t.state.name == "RUNNING"]


def test_holdout_protocol_scores_dev_once_and_keeps_last_epochs(tiny, tmp_path):
    seen = []

    def fit_fn(config, res, on_epoch=None, quiet=False, epoch_selection="best"):
        seen.append((len(res.data.train), len(res.data.validation), epoch_selection))
        return fake_result(config, res, 0.75, config.train.num_train_epochs)

    tc = settings(tiny, tmp_path / "s", n_trials=1, final_seeds=1, select_on="holdout",
                  holdout_fraction=0.25)
    summary = run_study(tc, fit_fn)
    assert seen == [(24, 8, "best"), (32, 16, "last")]  # trial on train/holdout; seed on all
    assert summary["selection"] == "holdout"
    assert "not used to choose anything" in summary["select_on_description"]
    assert (tmp_path / "s" / "heads" / "cls" / "dev_predictions.csv").is_file()
    assert summary["heads"]["cls"]["dev_value_best"] is not None


def test_database_password_never_reaches_a_file(tiny, tmp_path):
    url = "postgresql://alice:s3cret@127.0.0.1:1/optuna"
    assert redact(url) == "postgresql://alice:***@127.0.0.1:1/optuna"
    assert redact("mysql://u:p@h/db?password=s3cret") == "mysql://u:***@h/db?password=***"
    tc = settings(tiny, tmp_path / "s", storage=url,
                  command=["poolbert", "tune", "--storage", url])
    with pytest.raises(PoolbertError) as info:
        run_study(tc, fake_fit)  # nothing listens on port 1
    assert "s3cret" not in str(info.value) and "alice:***@" in str(info.value)
    assert not (tmp_path / "s").exists()  # refused before anything is written
    record = json.dumps(tc.to_dict())  # what config.json holds once a storage opens
    assert "s3cret" not in record and "alice:***@127.0.0.1" in record
    assert tc.to_dict()["command"][-1] == redact(url)


def test_timeout_stops_new_trials_and_the_study_still_summarises(tiny, tmp_path):
    calls = Scripted({})
    summary = run_study(settings(tiny, tmp_path / "s", heads=["cls", "mean"], n_trials=50,
                                 timeout=1e-6), calls)
    assert calls.calls == 0  # the deadline passed before the first trial could start
    for head in ("cls", "mean"):
        h = summary["heads"][head]
        assert h["n_trials"] == 0 and h["best_trial"] is None and h["seeds"] == []
    assert summary["comparisons"] == []
    assert "Table 1" in (tmp_path / "s" / "summary.md").read_text()


class SignalInSampler(OwnedTPESampler):
    """poolbert's sampler, which also sends Ctrl-C to this process from inside Optuna while
    trial `number` is being created (before_trial, within study.ask) or told (after_trial,
    before its state is stored)."""

    def __init__(self, hook: str, number: int, **kwargs):
        super().__init__(**kwargs)
        self.hook, self.number = hook, number

    def before_trial(self, study, trial):
        super().before_trial(study, trial)
        if self.hook == "before_trial" and trial.number == self.number:
            os.kill(os.getpid(), signal.SIGINT)

    def after_trial(self, study, trial, state, values):
        if self.hook == "after_trial" and trial.number == self.number:
            os.kill(os.getpid(), signal.SIGINT)
        super().after_trial(study, trial, state, values)


@pytest.mark.parametrize("hook", ["before_trial", "after_trial"])
def test_ctrl_c_inside_optuna_leaves_no_trial_running(tiny, tmp_path, monkeypatch, hook):
    """A Ctrl-C that lands while Optuna creates or tells a trial waits for a safe point (the
    next training step, or between trials): no trial is left RUNNING, and resuming meets the
    budget exactly."""
    from poolbert.tuning import heads

    def sampler(tc, n_trials, index, n_existing):
        return SignalInSampler(hook, 1, seed=tc.run.train.seed + n_existing,
                               n_startup_trials=2)

    monkeypatch.setattr(heads, "make_sampler", sampler)
    tc = settings(tiny, tmp_path / "s", n_trials=3)
    with pytest.raises(KeyboardInterrupt):
        run_study(tc)  # the real training loop on the tiny model
    trials = load_trials(tc)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert trials[0].state.name == "COMPLETE"
    if hook == "before_trial":  # stopped at its first training step: marked and queued
        assert trials[1].state.name == "FAIL"
        assert trials[1].user_attrs["fail_reason"] == "interrupted"
        assert trials[1].params and trials[2].state.name == "WAITING"
        assert trials[2].system_attrs["fixed_params"] == trials[1].params
    else:  # it had finished: kept, and no trial started after it
        assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]

    monkeypatch.undo()  # the usual sampler for the resume
    run_study(tc)
    trials = load_trials(tc)
    assert not [t for t in trials if t.state.name == "RUNNING"]
    assert sum(t.state in FINISHED for t in trials) == 3


def test_rerunning_a_finished_study_keeps_its_wall_time(tiny, tmp_path):
    def slow_train(*args, **kwargs):
        import time

        time.sleep(0.4)  # the first command's trials take time; a rerun trains nothing
        return fake_fit(*args, **kwargs)

    tc = settings(tiny, tmp_path / "s", final_seeds=1)
    first = run_study(tc, fit_fn=slow_train)["wall_time_s"]
    assert first >= 1.6  # 3 trials and a seed run
    again = run_study(settings(tiny, tmp_path / "s", final_seeds=1), fit_fn=slow_train)
    assert again["wall_time_s"] == first
    assert json.loads((tmp_path / "s" / "summary.json").read_text())["wall_time_s"] == first
    more = run_study(settings(tiny, tmp_path / "s", final_seeds=1, n_trials=4),
                     fit_fn=slow_train)
    assert more["wall_time_s"] != first  # a command that trained again reports its own time


def test_a_space_longer_than_the_encoder_is_refused_before_anything_is_written(tiny, tmp_path):
    """The tiny BERT takes 128 positions; a space that tries 256 would fail every such trial."""
    long = tmp_path / "long.yaml"
    long.write_text("default:\n  n_trials: 2\n  params:\n    max_length: [64, 256]\n")
    tc = settings(tiny, tmp_path / "s", space=str(long))
    with pytest.raises(PoolbertError, match=r"searches max_length up to 256, above what .* "
                                            r"takes: 128 tokens"):
        run_study(tc, fake_fit)
    assert not (tmp_path / "s").exists()


def test_a_finished_study_is_scored_again_by_evaluate(tiny, tmp_path):
    # the best trial's config.json records its trial ("tune"); evaluate reads it back
    import poolbert

    tc = settings(tiny, tmp_path / "s", n_trials=1)
    summary = run_study(tc)
    metrics = poolbert.evaluate(tmp_path / "s")
    assert metrics["eval_accuracy"] == pytest.approx(summary["heads"]["cls"]["dev_value_best"])
