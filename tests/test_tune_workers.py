"""Worker processes sharing one study: exactly the requested trials, no duplicates, none left
RUNNING, in SQLite, in the journal file and (where $POOLBERT_TEST_POSTGRES is set) PostgreSQL."""

from __future__ import annotations

import os
import uuid

import optuna
import pytest
from helpers import fake_train, tiny_bert_dir, tiny_glue_dir, tiny_run_config

from poolbert.tune import TuneConfig, run_study
from poolbert.tune.storage import open_storage

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
    summary = run_study(tc, fake_train)
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


@pytest.fixture
def postgres_url():
    """A fresh database on the server of $POOLBERT_TEST_POSTGRES, dropped afterwards (since
    PostgreSQL 15 a plain role may not create tables in another database's public schema)."""
    url = os.environ.get("POOLBERT_TEST_POSTGRES")
    if not url:
        pytest.skip("needs $POOLBERT_TEST_POSTGRES, a PostgreSQL URL (.ci/start-postgres)")
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"poolbert_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()


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
