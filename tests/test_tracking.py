"""`--report-to`: each tool's own reader finds the values of history.jsonl, in train and tune.

TensorBoard's event files are read with TensorBoard's EventAccumulator, the MLflow store with
MlflowClient, and W&B's offline run file with W&B's own record schema (wandb.proto): no tool is
mocked."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import optuna
import pytest
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.cli import main

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("tracking")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 48, 24)


@pytest.fixture(autouse=True)
def local_tools(tmp_path, monkeypatch):
    """Every tool writes under the test's folder, offline: no server, no key, no home folder."""
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "WANDB_API_KEY", "WANDB_MODE",
                 "WANDB_PROJECT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 reads its file store so
    for name in ("WANDB_CONFIG_DIR", "WANDB_CACHE_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(name, str(tmp_path / "wandb-home"))


def train_args(setup, out: Path, *extra: str) -> list[str]:
    model_dir, data_dir = setup
    return ["train", "--data-dir", str(data_dir), "--model", str(model_dir), "--pooling", "mean",
            "--num-train-epochs", "2", "--max-length", "32", "--batch-size", "8",
            "--learning-rate", "3e-3", "--output-dir", str(out), "--quiet", *extra]


def expected_scalars(history: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """history.jsonl in the tools' names (README, "Tracking and the Optuna dashboard")."""
    out: dict[str, list[tuple[int, float]]] = {}
    for row in history:
        if row["type"] == "step":
            values = {"train/loss": row["loss"], "train/learning_rate": row["lr"]}
        else:
            values = {k.replace("_", "/", 1) if k.startswith(("eval_", "train_")) else k: v
                      for k, v in row.items() if k not in ("type", "step", "epoch")
                      and isinstance(v, int | float) and not isinstance(v, bool)}
        for name, value in values.items():
            out.setdefault(name, []).append((row["step"], value))
    return out


def read_history(folder: Path) -> list[dict]:
    return [json.loads(line) for line in (folder / "history.jsonl").read_text().splitlines()]


def tensorboard_scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing import event_accumulator as ea
    from tensorboard.util import tensor_util

    acc = ea.EventAccumulator(str(folder), size_guidance={ea.TENSORS: 0, ea.SCALARS: 0})
    acc.Reload()
    assert acc.Tags()["scalars"] == []  # every value is a float64 tensor, not a float32 scalar
    return {tag: [(e.step, tensor_util.make_ndarray(e.tensor_proto).item())
                  for e in acc.Tensors(tag)]
            for tag in acc.Tags()["tensors"] if not tag.endswith("/text_summary")}


def mlflow_client(store: Path):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=store.resolve().as_uri())


def mlflow_scalars(client, run_id: str, names) -> dict[str, list[tuple[int, float]]]:
    return {name: sorted((m.step, m.value) for m in client.get_metric_history(run_id, name))
            for name in names}


def settings_of(record: dict) -> dict[str, str]:
    """config.json's settings as MLflow keeps parameters (text; JSON for non-text values)."""
    flat = {k: v for section in ("data", "model", "train") for k, v in record[section].items()}
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in flat.items()}


def test_train_logs_history_to_tensorboard_and_mlflow_with_config_and_files(setup, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(setup, out, "--report-to", "tensorboard,mlflow")) == 0
    assert not list(tmp_path.glob(".run.tmp-*"))  # the logs moved with the run's folder
    history = read_history(out)
    expected = expected_scalars(history)
    assert len(expected["train/loss"]) == 12 and len(expected["eval/accuracy"]) == 2

    assert tensorboard_scalars(out / "tensorboard") == expected  # every value, exactly

    client = mlflow_client(out / "mlruns")
    experiment = client.get_experiment_by_name("poolbert")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "run" and run.info.status == "FINISHED"
    assert run.data.tags["head"] == "mean" and run.data.tags["status"] == "finished"
    assert mlflow_scalars(client, run.info.run_id, expected) == expected
    assert set(run.data.metrics) == set(expected)
    record = json.loads((out / "config.json").read_text())
    assert run.data.params == settings_of(record)
    assert run.data.params["report_to"] == '["tensorboard", "mlflow"]'
    files = sorted(p.name for p in out.iterdir() if p.is_file())
    assert files == ["config.json", "history.jsonl", "loss_curve.png", "metrics.json",
                     "predictions.csv"]
    assert sorted(a.path for a in client.list_artifacts(run.info.run_id)) == files
    assert run.info.artifact_uri.startswith((out / "mlartifacts").resolve().as_uri())
    copy = client.download_artifacts(run.info.run_id, "history.jsonl", str(tmp_path))
    assert Path(copy).read_text() == (out / "history.jsonl").read_text()


def wandb_records(path: Path):
    """The records of a W&B run file (LevelDB-log blocks of wandb.proto Records)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, chunk = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0 and length == 0:  # zero padding to the end of the block
            pos += left
            continue
        chunk += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a full record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(chunk)
            yield record
            chunk = b""


def test_wandb_offline_run_holds_the_history_config_and_files(setup, tmp_path):
    pytest.importorskip("wandb")
    out = tmp_path / "run"
    assert main(train_args(setup, out, "--report-to", "wandb")) == 0
    (run_dir,) = (out / "wandb").glob("offline-run-*")  # offline: no key in the environment
    (run_file,) = run_dir.glob("run-*.wandb")
    logged: dict[str, list[tuple[int, float]]] = {}
    config, name, summary_status = {}, None, None
    for record in wandb_records(run_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            name = record.run.display_name
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
        elif kind == "history":
            row = {i.key or "/".join(i.nested_key): json.loads(i.value_json)
                   for i in record.history.item}
            for key, value in row.items():
                if not key.startswith("_") and key != "train/global_step":
                    logged.setdefault(key, []).append((row["train/global_step"], value))
        elif kind == "summary":
            for item in record.summary.update:
                if item.key == "status":
                    summary_status = json.loads(item.value_json)
    assert logged == expected_scalars(read_history(out))
    assert name == "run" and summary_status == "finished"
    record = json.loads((out / "config.json").read_text())
    assert config["learning_rate"] == record["train"]["learning_rate"] == 3e-3
    assert config["pooling"] == "mean"
    for file in ("config.json", "history.jsonl", "metrics.json", "predictions.csv"):
        assert (run_dir / "files" / file).read_bytes() == (out / file).read_bytes(), file


@pytest.mark.parametrize("tools, message", [
    ("tensorboard,comet", "--report-to: unknown tool 'comet'; choose from tensorboard, mlflow, "
                          "wandb (or none, all)"),
    ("wandb", "--report-to wandb: wandb is not installed (pip install \"poolbert[wandb]\")"),
])
def test_unknown_or_missing_tool_is_one_line_exit_2_and_nothing_written(
        setup, tmp_path, capsys, monkeypatch, tools, message):
    monkeypatch.setattr("poolbert.tracking._installed", lambda tool: tool != "wandb")
    assert main(train_args(setup, tmp_path / "run", "--report-to", tools)) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"poolbert: error: {message}"]
    model_dir, data_dir = setup
    study = tmp_path / "study"
    assert main(["tune", "--model", str(model_dir), "--data-dir", str(data_dir), "--output-dir",
                 str(study), "--poolings", "cls", "--space", "quick", "--n-trials", "1",
                 "--device", "cpu", "--quiet", "--report-to", tools]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [f"poolbert: error: {message}"]
    assert list(tmp_path.iterdir()) == []


def test_report_to_none_tracks_nothing(setup, tmp_path):
    out = tmp_path / "run"
    assert main(train_args(setup, out, "--report-to", "none")) == 0
    assert sorted(p.name for p in out.iterdir() if p.is_dir()) == ["model"]


@pytest.mark.parametrize("pack", ["1", "2"])
def test_tune_tracks_each_trial_and_seed_run_with_head_and_trial_tags(setup, tmp_path, pack):
    model_dir, data_dir = setup
    out = tmp_path / "study"
    command = ["tune", "--model", str(model_dir), "--data-dir", str(data_dir), "--output-dir",
               str(out), "--poolings", "cls,mean", "--space", "quick", "--n-trials", "2",
               "--final-seeds", "2", "--batch-size", "8", "--device", "cpu", "--pack", pack,
               "--pruner", "none", "--quiet"]
    assert main([*command, "--report-to", "tensorboard,mlflow"]) == 0
    assert main([*command, "--report-to", "none"]) == 0  # the tools are no part of the study
    client = mlflow_client(out / "mlruns")
    experiment = client.get_experiment_by_name("study")  # the study's name
    runs = {r.info.run_name: r for r in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {f"{h}/{r}" for h in ("cls", "mean")
                         for r in ("trial-0", "trial-1", "seed-1", "seed-2")}
    storage = f"sqlite:///{out / 'study.db'}"
    for head in ("cls", "mean"):
        study = optuna.load_study(study_name=f"study-{head}", storage=storage)
        for trial in study.trials:
            run = runs[f"{head}/trial-{trial.number}"]
            assert run.data.tags["head"] == head and run.data.tags["trial"] == str(trial.number)
            assert run.info.status == "FINISHED" and trial.state.name == "COMPLETE"
            accuracy = client.get_metric_history(run.info.run_id, "eval/accuracy")
            assert len(accuracy) == trial.user_attrs["epochs_run"]
            assert max(m.value for m in accuracy) == trial.value  # the best epoch's
            assert run.data.params["learning_rate"] == json.dumps(trial.params["learning_rate"])
            artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
            assert artifacts == {"config.json", "history.jsonl", "metrics.json",
                                 "predictions.csv"}
            assert trial.user_attrs["head"] == head  # optuna-dashboard shows it
        best = json.loads((out / "heads" / head / "best.json").read_text())["trial_number"]
        best_run = runs[f"{head}/trial-{best}"]
        history = read_history(out / "heads" / head / "best")
        expected = expected_scalars(history)
        assert mlflow_scalars(client, best_run.info.run_id, expected) == expected
        assert tensorboard_scalars(out / "tensorboard" / head / f"trial-{best}") == expected
        for k in (1, 2):  # with --pack 2, the two seeds trained as one pack
            seed = runs[f"{head}/seed-{k}"]
            assert [seed.data.tags[t] for t in ("head", "trial", "seed")] == [head, str(best),
                                                                              str(k)]
            folder = out / "heads" / head / "seeds" / f"seed-{k}"
            seed_expected = expected_scalars(read_history(folder))
            assert tensorboard_scalars(out / "tensorboard" / head / f"seed-{k}") == seed_expected
            assert mlflow_scalars(client, seed.info.run_id, seed_expected) == seed_expected
            assert {a.path for a in client.list_artifacts(seed.info.run_id)} == {
                p.name for p in folder.iterdir() if p.is_file()}


def test_a_run_ends_as_pruned_failed_or_interrupted(tmp_path):
    from poolbert.tracking import Plan

    plan = Plan(("mlflow", "tensorboard"), tmp_path, "statuses")
    for name, exc in (("pruned", optuna.TrialPruned()), ("failed", RuntimeError("x")),
                      ("interrupted", KeyboardInterrupt())):
        with pytest.raises(type(exc)):
            with plan.start(name, {"train": {"seed": 1}}, {"head": "cls"},
                            pruned=(optuna.TrialPruned,)) as tracking:
                tracking.record({"type": "step", "step": 1, "epoch": 0.5, "loss": 0.5,
                                 "lr": 1e-5})
                raise exc
    client = mlflow_client(tmp_path / "mlruns")
    experiment = client.get_experiment_by_name("statuses")
    found = {r.info.run_name: (r.info.status, r.data.tags["status"], r.data.metrics["train/loss"])
             for r in client.search_runs([experiment.experiment_id])}
    assert found == {"pruned": ("KILLED", "pruned", 0.5), "failed": ("FAILED", "failed", 0.5),
                     "interrupted": ("KILLED", "interrupted", 0.5)}
