"""Faults and load on real `poolbert tune` processes (issue 7): many workers on one study in
SQLite, a journal file and PostgreSQL; a worker killed with SIGKILL; Ctrl-C and SIGTERM; a kill
during a model save; bad input that must write nothing; no secret in any output."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.encoder import load_encoder
from poolbert.errors import PoolbertError
from poolbert.tuning.storage import sqlalchemy_url

optuna.logging.set_verbosity(optuna.logging.WARNING)
FINISHED = ("COMPLETE", "PRUNED")
TOKEN = "hf_FAKEsecret123"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 24, 12)


def write_lr_space(path: Path, n_trials: int | None = None) -> Path:
    """Only the learning rate is searched, so --num-train-epochs sets how long a trial takes."""
    budget = f"    n_trials: {n_trials}\n" if n_trials is not None else ""
    path.write_text("heads:\n  cls:\n" + budget + "    params:\n      learning_rate: "
                    "{type: float, low: 2.0e-5, high: 2.0e-4, log: true}\n")
    return path


@pytest.fixture(scope="module")
def lr_space(tmp_path_factory) -> Path:
    return write_lr_space(tmp_path_factory.mktemp("space") / "lr.yaml", n_trials=3)


def env(**extra: str) -> dict[str, str]:
    """One torch thread per process: the test machine has two cores."""
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1", **extra}


def tune_argv(tiny, out: Path, space: Path | str, n_trials: int, *extra: str) -> list[str]:
    model, data = tiny
    return [sys.executable, "-m", "poolbert", "tune", "--model", str(model), "--data-dir",
            str(data), "--output-dir", str(out), "--poolings", "cls", "--space", str(space),
            "--n-trials", str(n_trials), "--final-seeds", "0", "--select-on", "dev",
            "--pruner", "none", "--batch-size", "8", "--device", "cpu", "--quiet",
            *(["--max-length", "32"] if space != "quick" else []), *extra]


def start(argv: list[str], log: Path, new_group: bool = False,
          **extra_env: str) -> subprocess.Popen:
    """`new_group`: the command leads its own process group, as a job in a terminal does."""
    handle = log.open("wb")
    return subprocess.Popen(argv, stdout=handle, stderr=subprocess.STDOUT, env=env(**extra_env),
                            process_group=0 if new_group else None)


def run(argv: list[str], timeout: float = 300, **extra_env: str) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                          env=env(**extra_env))


def storage_of(out: Path, storage: str | None):
    if storage == "journal":
        from optuna.storages.journal import JournalFileBackend

        return optuna.storages.JournalStorage(JournalFileBackend(str(out / "journal.log")))
    return sqlalchemy_url(storage or f"sqlite:///{out / 'study.db'}")


def trials_of(out: Path, name: str, storage: str | None = None) -> list:
    study = optuna.load_study(study_name=f"{name}-cls", storage=storage_of(out, storage))
    return study.get_trials()


def wait_for_running(out: Path, name: str, storage: str | None = None, timeout: float = 600,
                     after: float = 0.0, at_least: int = 1):
    """The first RUNNING trial that has its parameters and worker ("host:pid"), i.e. is
    training, `after` seconds into it (a loaded machine takes minutes to start two workers)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            running = [t for t in trials_of(out, name, storage)
                       if t.state.name == "RUNNING" and "worker" in t.user_attrs and t.params]
        except Exception:  # noqa: BLE001  (the study may not exist yet)
            running = []
        if len(running) >= at_least:
            time.sleep(after)
            return running[0]
        time.sleep(0.2)
    raise AssertionError("no trial started")


def check_budget(trials: list, n: int) -> None:
    """Exactly n finished trials, each number once, none left RUNNING or WAITING."""
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state.name in FINISHED for t in trials) == n
    assert not [t for t in trials if t.state.name in ("RUNNING", "WAITING")]


def read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# ------------------------------------------------------------------ many workers, one study


def two_commands(tiny, tmp_path, lr_space, storage: str | None) -> None:
    """Two `poolbert tune --n-workers 2` commands on one output directory (one machine):
    4 worker processes, 6 trials."""
    out = tmp_path / "study"
    extra = ["--n-workers", "2", "--num-train-epochs", "4", "--study-name", "rte"]
    if storage:
        extra += ["--storage", storage]
    argv = tune_argv(tiny, out, lr_space, 6, *extra)
    procs = [start(argv, tmp_path / f"cmd{i}.log") for i in range(2)]
    codes = [p.wait(timeout=500) for p in procs]
    logs = [(tmp_path / f"cmd{i}.log").read_text(errors="replace") for i in range(2)]
    assert codes == [0, 0], logs
    assert not any("Traceback" in log for log in logs), logs
    trials = trials_of(out, "rte", storage)
    check_budget(trials, 6)
    assert len(trials) == 6  # nothing failed, nothing ran twice
    assert len({t.user_attrs["worker"] for t in trials}) >= 2  # workers really shared it
    rows = read_csv(out / "trials.csv")
    assert sorted(int(r["number"]) for r in rows) == list(range(6))


@pytest.mark.slow
@pytest.mark.parametrize("storage", [None, "journal"], ids=["sqlite", "journal"])
def test_two_commands_of_two_workers_finish_exactly_the_budget(tiny, tmp_path, lr_space,
                                                               storage):
    two_commands(tiny, tmp_path, lr_space, storage)


@pytest.mark.slow
def test_two_commands_of_two_workers_on_postgresql(tiny, tmp_path, lr_space, postgres_url):
    two_commands(tiny, tmp_path, lr_space, postgres_url)
    assert not (tmp_path / "study" / "study.db").exists()


# ------------------------------------------------------------------------ a worker is killed


@pytest.mark.slow
def test_worker_killed_with_sigkill_is_failed_and_its_trial_rerun(tiny, tmp_path, lr_space):
    out = tmp_path / "study"
    # 80 epochs of the tiny model: a trial lasts ~10 s, far longer than finding and killing it
    argv = tune_argv(tiny, out, lr_space, 3, "--n-workers", "2", "--num-train-epochs", "80",
                     "--study-name", "rte")
    proc = start(argv, tmp_path / "tune.log")
    # both workers busy: the survivor is mid-trial, so it is there to find the dead one's trial
    victim = wait_for_running(out, "rte", after=0.5, at_least=2)
    pid = int(victim.user_attrs["worker"].rpartition(":")[2])
    assert pid != proc.pid  # a spawned worker, not the command
    os.kill(pid, signal.SIGKILL)
    code = proc.wait(timeout=500)
    log = (tmp_path / "tune.log").read_text(errors="replace")
    trials = trials_of(out, "rte")
    killed = trials[victim.number]
    assert killed.state.name == "FAIL", log
    assert killed.user_attrs["fail_reason"] == "worker process died during the trial"
    retry = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retry) == 1 and retry[0].params == victim.params  # same parameters, once
    assert retry[0].state.name == "COMPLETE"
    assert retry[0].user_attrs["worker"] != victim.user_attrs["worker"]  # a live worker ran it
    check_budget(trials, 3)
    # the command reports that one of its workers died (exit 2, one line, no traceback) ...
    assert code == 2 and "a tuning worker failed" in log and "Traceback" not in log, log
    # ... and rerunning it finds the budget met: no new trial, the summary is written
    again = run(argv)
    assert again.returncode == 0, again.stderr
    assert len(trials_of(out, "rte")) == len(trials)
    assert (out / "summary.json").is_file()


# ------------------------------------------------------------------------- Ctrl-C and SIGTERM


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "workers", "group"),
                         [(signal.SIGINT, 1, False), (signal.SIGTERM, 1, False),
                          (signal.SIGTERM, 2, False), (signal.SIGINT, 2, True)],
                         ids=["sigint", "sigterm", "sigterm-2-workers", "ctrl-c-2-workers"])
def test_interrupted_command_marks_its_trial_and_resumes(tiny, tmp_path, lr_space, signum,
                                                         workers, group):
    """`group`: Ctrl-C in a terminal, which signals the command and its workers at once (each
    worker then also gets the command's SIGTERM)."""
    out = tmp_path / "study"
    argv = tune_argv(tiny, out, lr_space, 2, "--n-workers", str(workers),
                     "--num-train-epochs", "80", "--study-name", "rte")  # ~10 s a trial
    proc = start(argv, tmp_path / "tune.log", new_group=group)
    victim = wait_for_running(out, "rte", after=0.5)
    if group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    code = proc.wait(timeout=120)
    log = (tmp_path / "tune.log").read_text(errors="replace")
    assert code == 130, log
    assert "interrupted" in log and "Traceback" not in log, log
    trials = trials_of(out, "rte")
    marked = trials[victim.number]
    assert marked.state.name == "FAIL" and marked.user_attrs["fail_reason"] == "interrupted"
    assert not [t for t in trials if t.state.name == "RUNNING"]
    waiting = [t for t in trials if t.state.name == "WAITING"]
    failed = [t for t in trials if t.state.name == "FAIL"]  # with 2 workers, both trials
    assert all(t.user_attrs["fail_reason"] == "interrupted" and t.params for t in failed)
    queued = sorted(repr(t.system_attrs.get("fixed_params")) for t in waiting)
    assert queued == sorted(repr(t.params) for t in failed)  # each queued for the resume
    assert victim.params and marked.params == victim.params
    rows = read_csv(out / "trials.csv")  # written on the way out, and valid
    assert {(int(r["number"]), r["state"]) for r in rows} >= {(victim.number, "FAIL")}
    assert not (out / "summary.json").exists()

    again = run(argv)
    assert again.returncode == 0, again.stderr
    trials = trials_of(out, "rte")
    check_budget(trials, 2)
    assert any(t.params == victim.params and t.state.name == "COMPLETE" for t in trials)
    assert (out / "summary.json").is_file()


# ------------------------------------------------------------------- a kill during a model save

SAVER = """
import sys, time
from pathlib import Path
from poolbert.files import atomic_dir

target, mode, model_dir = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
with atomic_dir(target, overwrite=True) as tmp:
    if mode == "complete":
        sys.path.insert(0, sys.argv[4])
        from test_reliability import saved_model
        saved_model(tmp, model_dir)  # a whole model, still under its temporary name
        (target.parent / "ready").touch()
        time.sleep(60)
    else:
        (tmp / "config.json").write_text('{"model_type": "poolbert"}')
        with open(tmp / "model.safetensors", "wb") as handle:
            for i in range(600):
                handle.write(b"\\0" * 65536)
                handle.flush()
                if i == 5:
                    (target.parent / "ready").touch()
                time.sleep(0.1)
"""


def saved_model(path: Path, model_dir: Path) -> None:
    """A complete saved model (weights and tokenizer) as a run's save writes it."""
    from transformers import AutoTokenizer

    from poolbert.model import build_model

    build_model(load_encoder(str(model_dir)), "cls", ["entailment", "not_entailment"]).save_pretrained(
        path)
    AutoTokenizer.from_pretrained(str(model_dir)).save_pretrained(path)


@pytest.mark.parametrize("previous", [False, True], ids=["first-save", "over-a-good-one"])
@pytest.mark.parametrize("mode", ["mid-write", "complete"])
def test_kill_during_a_model_save_never_leaves_a_half_model(tiny, tmp_path, previous,
                                                             mode):
    from poolbert.evaluation import locate
    from poolbert.exporting import resolve_source
    from poolbert.model import load_model

    run_dir = tmp_path / "study" / "heads" / "cls" / "best"
    run_dir.parent.mkdir(parents=True)
    target = run_dir / "model"
    if previous:
        run_dir.mkdir()
        (run_dir / "config.json").write_text("{}")
        saved_model(target, tiny[0])
        before = (target / "model.safetensors").read_bytes()
    else:
        run_dir.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", SAVER, str(target), mode, str(tiny[0]),
                             str(Path(__file__).parent)], env=env())
    deadline = time.time() + 120
    while not (run_dir / "ready").exists():
        assert proc.poll() is None and time.time() < deadline, "the saver did not start"
        time.sleep(0.05)
    proc.kill()
    proc.wait(timeout=30)

    leftovers = [p for p in run_dir.iterdir() if p.name.startswith(".model.tmp-")]
    assert len(leftovers) == 1  # the unfinished folder keeps its temporary name
    study = tmp_path / "study"
    if previous:  # the earlier complete model is untouched and still loads
        assert (target / "model.safetensors").read_bytes() == before
        load_model(str(target))
        assert resolve_source(study, "cls").model_dir == target
        assert locate(str(run_dir))[0] == target
    else:
        assert not target.exists()
        with pytest.raises(PoolbertError, match="no model/ folder"):
            resolve_source(study, "cls")
        with pytest.raises(PoolbertError, match="no saved model"):
            locate(str(run_dir))
    # named directly, the leftover is refused too, even when its files look complete
    with pytest.raises(PoolbertError, match="unfinished save"):
        resolve_source(leftovers[0])
    with pytest.raises(PoolbertError, match="unfinished save"):
        locate(str(leftovers[0]))


# ------------------------------------------------------------------------------------ secrets


@pytest.mark.slow
def test_no_token_or_database_password_in_any_output(tiny, tmp_path, lr_space, postgres_url):
    password = postgres_url.split("://", 1)[1].split("@", 1)[0].partition(":")[2]
    assert password
    out, export_dir = tmp_path / "study", tmp_path / "export"
    secrets = {"HF_TOKEN": TOKEN, "HUGGING_FACE_HUB_TOKEN": TOKEN}
    argv = tune_argv(tiny, out, lr_space, 2, "--storage", postgres_url, "--study-name", "rte",
                     "--num-train-epochs", "2")
    commands = [
        argv,
        [sys.executable, "-m", "poolbert", "report", str(out), "--storage", postgres_url],
        [sys.executable, "-m", "poolbert", "export", str(out), "--to", str(export_dir)],
        [sys.executable, "-m", "poolbert", "push", str(out), "--repo-id", "someone/poolbert-rte",
         "--dry-run"],
    ]
    printed = []
    for command in commands:
        done = run(command, **secrets)
        assert done.returncode == 0, (command[3], done.stderr)
        printed.append(done.stdout + done.stderr)
    assert (out / "summary.json").is_file() and (export_dir / "README.md").is_file()
    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) > 10
    for path in files:
        data = path.read_bytes()
        assert password.encode() not in data, path
        assert TOKEN.encode() not in data, path
    for text in printed:
        assert password not in text and TOKEN not in text
    assert "***" in (out / "config.json").read_text()  # the storage is recorded, redacted


# ---------------------------------------------------------------------------------- bad input


def test_unreachable_storage_is_one_line_without_password_and_writes_nothing(tiny, tmp_path,
                                                                             lr_space):
    out = tmp_path / "study"
    done = run(tune_argv(tiny, out, lr_space, 2, "--storage",
                         "postgresql://u:topsecretpw@127.0.0.1:1/x"), timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolbert: error: cannot open storage"), lines
    assert "topsecretpw" not in done.stderr + done.stdout
    assert not out.exists()


def test_a_model_that_cannot_load_writes_nothing_and_the_corrected_command_runs(tiny, tmp_path,
                                                                              lr_space):
    """A misspelt --model (or a Hub that cannot be reached) is found before the output folder
    and the studies exist: the corrected command is not refused as another study."""
    out = tmp_path / "study"
    argv = tune_argv(tiny, out, lr_space, 1, "--num-train-epochs", "1")
    typo = [str(tmp_path / "no-such-model") if a == str(tiny[0]) else a for a in argv]
    done = run(typo, timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no-such-model" in lines[0] and "Traceback" not in done.stderr
    assert not out.exists()
    fixed = run(argv)
    assert fixed.returncode == 0, fixed.stderr
    assert (out / "summary.json").is_file()


def test_inverted_range_in_the_space_file_writes_nothing(tiny, tmp_path):
    space = tmp_path / "bad.yaml"
    space.write_text("heads:\n  cls:\n    params:\n      learning_rate: "
                     "{type: float, low: 1.0e-3, high: 1.0e-5, log: true}\n")
    out = tmp_path / "study"
    done = run(tune_argv(tiny, out, space, 2), timeout=120)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "Traceback" not in done.stderr
    assert "learning_rate" in done.stderr
    assert not out.exists()


@pytest.mark.slow
def test_study_with_another_space_is_refused_and_config_kept(tiny, tmp_path, lr_space):
    out = tmp_path / "study"
    first = run(tune_argv(tiny, out, lr_space, 1, "--num-train-epochs", "1"))
    assert first.returncode == 0, first.stderr
    config = (out / "config.json").read_bytes()
    listing = sorted(p.relative_to(out) for p in out.rglob("*"))
    done = run(tune_argv(tiny, out, "quick", 1))
    assert done.returncode == 2 and "different search_space" in done.stderr
    assert "Traceback" not in done.stderr
    assert (out / "config.json").read_bytes() == config  # not overwritten by the refused study
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == listing
