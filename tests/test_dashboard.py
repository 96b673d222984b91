"""optuna-dashboard opens a study written by `poolbert tune` as it is: started as the README says,
its HTTP API lists the heads' studies and their trials as the storage holds them."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import optuna
import pytest
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.cli import main

pytest.importorskip("optuna_dashboard")
HEADS = ("cls", "mean")


def dashboard_command() -> list[str]:
    """The `optuna-dashboard` command installed beside this Python."""
    found = shutil.which("optuna-dashboard", path=str(Path(sys.executable).parent)) or \
        shutil.which("optuna-dashboard")
    if found is None:
        pytest.skip("the optuna-dashboard command is not on PATH")
    return [found]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def serve(storage: str, log: Path):
    """The dashboard on a free port, as the README starts it; (process, base URL) once it
    answers."""
    port = free_port()
    process = subprocess.Popen([*dashboard_command(), storage, "--host", "127.0.0.1",
                                "--port", str(port), "--server", "wsgiref"],
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            get(f"{base}/api/meta")
            return process, base
        except (urllib.error.URLError, ConnectionError):
            if process.poll() is not None or time.time() > deadline:
                process.kill()
                pytest.fail(f"optuna-dashboard did not start: {log.read_text()}")
            time.sleep(0.2)


@pytest.mark.parametrize("storage", ["study.db", "journal"])
def test_dashboard_reads_back_the_studies_and_trials_of_a_tune(tmp_path, storage):
    model, data = tiny_bert_dir(tmp_path / "model"), tiny_glue_dir(tmp_path / "data", 32, 16)
    out = tmp_path / "study"
    flags = [] if storage == "study.db" else ["--storage", "journal"]
    assert main(["tune", "--model", str(model), "--data-dir", str(data), "--output-dir", str(out),
                 "--poolings", ",".join(HEADS), "--space", "quick", "--n-trials", "2",
                 "--final-seeds", "0", "--batch-size", "8", "--device", "cpu", "--quiet",
                 *flags]) == 0
    # the README's commands: `optuna-dashboard sqlite:///runs/study/study.db`, or the journal
    url = f"sqlite:///{out / 'study.db'}" if storage == "study.db" else str(out / "journal.log")
    stored = optuna.storages.RDBStorage(url) if storage == "study.db" else \
        optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(url))

    process, base = serve(url, tmp_path / "dashboard.log")
    try:
        studies = {s["study_name"]: s for s in get(f"{base}/api/studies")["study_summaries"]}
        assert set(studies) == {f"study-{h}" for h in HEADS}
        for head in HEADS:
            summary = studies[f"study-{head}"]
            attrs = {a["key"]: a["value"] for a in summary["user_attrs"]}
            assert attrs["head"] == head and attrs["output_dir"] == str(out.resolve())
            assert attrs["best_run_dir"] == str((out / "heads" / head / "best").resolve())
            assert summary["directions"] == ["maximize"]
            detail = get(f"{base}/api/studies/{summary['study_id']}")
            expected = optuna.load_study(study_name=f"study-{head}", storage=stored).trials
            assert [(t["number"], t["state"], t.get("values")) for t in detail["trials"]] == [
                (t.number, t.state.name.capitalize(), t.values) for t in expected]
            assert {t["number"] for t in detail["best_trials"]} <= {t.number for t in expected}
            for shown, trial in zip(detail["trials"], expected, strict=True):
                attrs = {a["key"]: a["value"] for a in shown["user_attrs"]}
                assert attrs["head"] == head
                assert attrs["epochs_run"] == str(trial.user_attrs["epochs_run"])
                assert attrs["planned_epochs"] == str(trial.user_attrs["planned_epochs"])
                assert {p["name"]: p["param_external_value"] for p in shown["params"]} == {
                    k: str(v) for k, v in trial.params.items()}
                assert [v["value"] for v in shown["intermediate_values"]] == [
                    trial.intermediate_values[s] for s in sorted(trial.intermediate_values)]
            assert "head" in {a["key"] for a in detail["union_user_attrs"]}
    finally:
        process.terminate()
        process.wait(timeout=30)
