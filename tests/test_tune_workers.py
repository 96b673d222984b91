"""Worker processes sharing one study: exactly the requested trials, no duplicates, none left
RUNNING, in SQLite, in the journal file and (where $POOLBERT_TEST_POSTGRES is set) PostgreSQL."""

from __future__ import annotations

import os

import optuna
import pytest
from helpers import fake_fit, tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.tuning import TuneConfig, run_study
from poolbert.tuning.storage import open_storage

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 24, 12)


def two_workers(tiny, tmp_path, monkeypatch, storage, study_name=None) -> TuneConfig:
    """Run a 5-trial study with 2 spawned workers that really overlap; check the trials."""
    barrier = tmp_path / "barrier"
    barrier.mkdir()
    monkeypatch.setenv("POOLBERT_TEST_BARRIER", str(barrier))  # both workers train at once
    monkeypatch.setenv("POOLBERT_TEST_SLEEP", "0.2")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    tc = TuneConfig(run=tiny_run_config(*tiny), output_dir=str(tmp_path / "s"), heads=["cls"],
                    space="quick", n_trials=5, final_seeds=0, select_on="dev", quiet=True,
                    pruner="none", n_workers=2, storage=storage, study_name=study_name,
                    command=["poolbert", "tune", "--storage", str(storage)])
    summary = run_study(tc, fake_fit)
    study = optuna.load_study(study_name=f"{tc.name}-cls", storage=open_storage(tc))
    trials = study.get_trials()
    numbers = [t.number for t in trials]
    assert sorted(numbers) == list(range(5))  # exactly the budget, numbered once each
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials)  # none RUNNING
    assert len({t.user_attrs["worker"] for t in trials}) == 2  # both processes ran trials
    assert len({tuple(sorted(t.params.items())) for t in trials}) == 5  # no repeated settings
    assert summary["heads"]["cls"]["n_trials"] == 5
    best = (tmp_path / "s" / "heads" / "cls" / "best.json").read_text()
    assert f'"trial_number": {summary["heads"]["cls"]["best_trial"]}' in best
    return tc


@pytest.mark.slow
@pytest.mark.parametrize("storage", [None, "journal"], ids=["sqlite", "journal"])
def test_two_workers_produce_exactly_the_budget(tiny, tmp_path, monkeypatch, storage):
    two_workers(tiny, tmp_path, monkeypatch, storage)
    assert (tmp_path / "s" / ("journal.log" if storage else "study.db")).is_file()


@pytest.mark.slow
def test_two_workers_on_postgresql_and_no_password_on_disk(tiny, tmp_path, monkeypatch,
                                                           postgres_url):
    tc = two_workers(tiny, tmp_path, monkeypatch, postgres_url, study_name="rte")
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert password
    for path in (tmp_path / "s").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".csv", ".md", ".jsonl", ".html"):
            assert password not in path.read_text(errors="ignore"), path
    assert not (tmp_path / "s" / "study.db").exists()
    assert tc.to_dict()["storage"].count("***") == 1
    names = optuna.get_all_study_names(open_storage(tc))
    assert names == ["rte-cls"]


# ----------------------------------------------------------------------------- GPUs

def gpu_plan(n_workers=None, trials_per_gpu=1, device="auto", gpus=("0", "1")):
    from poolbert.config import RunConfig
    from poolbert.tuning.processes import plan_workers

    run = RunConfig()
    run.train.device = device
    tc = TuneConfig(run=run, output_dir="unused", n_workers=n_workers,
                    trials_per_gpu=trials_per_gpu)
    return plan_workers(tc, list(gpus))


def test_one_worker_per_gpu_times_trials_per_gpu():
    assert gpu_plan() == ["0", "1"]
    assert sorted(gpu_plan(trials_per_gpu=3)) == ["0", "0", "0", "1", "1", "1"]
    assert gpu_plan(n_workers=3) == ["0", "1", "0"]  # an explicit count, round-robin


def test_cpu_and_named_devices_are_not_pinned():
    assert gpu_plan(gpus=()) == [None]
    assert gpu_plan(n_workers=3, gpus=()) == [None, None, None]
    assert gpu_plan(trials_per_gpu=4, gpus=()) == [None]  # no GPU: the setting has no effect
    assert gpu_plan(device="cpu") == [None]
    assert gpu_plan(device="cuda:1", n_workers=2) == [None, None]  # the user's choice stands


def test_visible_gpus_follow_cuda_visible_devices(monkeypatch):
    import torch

    from poolbert.tuning.processes import visible_gpus

    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,6")
    assert visible_gpus() == ["4", "6"]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert visible_gpus() == ["0", "1"]
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 0)
    assert visible_gpus() == []


def test_worker_process_is_pinned_before_it_runs(monkeypatch):
    from poolbert.tuning import processes
    from poolbert.tuning.worker import WorkerJob

    seen = []
    monkeypatch.setattr(processes, "run_worker", lambda job, fn: seen.append(
        os.environ.get("CUDA_VISIBLE_DEVICES")))
    monkeypatch.setattr(processes, "_quiet_logs", lambda: None)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    job = WorkerJob(tune=None, space=None, index=1, gpu="1")
    processes.worker_process(job, fake_fit, errors=None)
    assert seen == ["1"]


def test_a_dead_unreaped_worker_counts_as_dead():
    """A SIGKILLed worker is a zombie until its parent reaps it: its trial must still be freed."""
    import subprocess
    import sys
    import time

    from poolbert.tuning.liveness import _alive

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    try:
        deadline = time.time() + 30
        while _alive(child.pid) and time.time() < deadline:  # exits, is not reaped: a zombie
            time.sleep(0.05)
        assert not _alive(child.pid)
        assert os.path.exists(f"/proc/{child.pid}")  # still in the process table
    finally:
        child.wait()
    assert _alive(os.getpid())


def test_tables_created_by_two_commands_at_once_count_as_a_race_not_an_error():
    import sqlalchemy.exc

    from poolbert.tuning.storage import _creation_race

    sqlite = sqlalchemy.exc.OperationalError("CREATE TABLE study_directions", {},
                                             Exception("table study_directions already exists"))
    assert _creation_race(sqlite)  # the second command retries instead of failing
    unreachable = sqlalchemy.exc.OperationalError("connect", {}, Exception("could not connect"))
    assert not _creation_race(unreachable)  # reported at once, in one line


@pytest.mark.filterwarnings("ignore:Heartbeat of storage")  # asked by hand, as workers do
def test_each_running_trial_has_its_heartbeat(tmp_path):
    """Workers ask and tell trials themselves (packed or not): Heartbeats beats for them, as
    study.optimize would, so a dead worker's trial is found from any machine."""
    import sqlite3
    import time

    from poolbert.config import RunConfig
    from poolbert.tuning.liveness import Heartbeats

    tc = TuneConfig(run=RunConfig(), output_dir=str(tmp_path))
    storage = open_storage(tc)
    study = optuna.create_study(storage=storage, study_name="s")
    first, second = study.ask(), study.ask()
    with Heartbeats(storage, 0.2) as beats:
        beats.add(first._trial_id)
        beats.add(second._trial_id)
        time.sleep(0.5)
    con = sqlite3.connect(tmp_path / "study.db")
    rows = con.execute("SELECT trial_id FROM trial_heartbeats ORDER BY trial_id").fetchall()
    con.close()
    assert rows == [(first._trial_id,), (second._trial_id,)]


DIES_AFTER_ASK = """
import os, sys
import optuna
from poolbert.tuning.heads import make_sampler
from poolbert.config import RunConfig
from poolbert.tuning import TuneConfig

tc = TuneConfig(run=RunConfig(), output_dir=".")
study = optuna.create_study(study_name="s", storage=sys.argv[1], load_if_exists=True,
                            sampler=make_sampler(tc, 4, 0, 0))
study.ask()  # the trial is RUNNING; no parameter sampled yet
os._exit(0)  # the worker dies before its objective ever ran
"""


def test_a_worker_dying_as_its_trial_is_created_does_not_strand_the_trial(tmp_path):
    """The worker is recorded on a trial as Optuna creates it, so even a trial whose worker
    died before sampling a parameter is failed and no longer counted as running."""
    import subprocess
    import sys

    from poolbert.tuning.liveness import fail_dead_workers

    url = f"sqlite:///{tmp_path / 'study.db'}"
    subprocess.run([sys.executable, "-c", DIES_AFTER_ASK, url], check=True, timeout=120)
    study = optuna.load_study(study_name="s", storage=url)
    (trial,) = study.get_trials()
    assert trial.state.name == "RUNNING" and not trial.params and "worker" in trial.user_attrs
    assert fail_dead_workers(study, max_retry=2) == [trial.number]
    trials = study.get_trials()
    assert trials[0].state.name == "FAIL"
    assert trials[0].user_attrs["fail_reason"] == "worker process died during the trial"
    assert [t.state.name for t in trials[1:]] == ["WAITING"]  # re-queued, to be sampled anew
