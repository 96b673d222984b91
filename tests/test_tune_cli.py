"""`poolbert tune` end to end on the tiny model, and how presets and flags combine."""

from __future__ import annotations

import csv
import json

import pytest
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.cli import build_parser, main
from poolbert.cli.tune_cmd import tune_config_from_args
from poolbert.config import DEFAULT_MODEL
from poolbert.errors import PoolbertError

HEADS = ("cls", "mean_max", "attention")
HEAD_KEYS = {"n_trials", "n_complete", "n_pruned", "n_failed", "best_trial", "best_value",
             "best_params", "dev_value_best", "seeds", "seed_values", "mean", "std",
             "ci95", "epochs_saved_by_pruning"}
TOP_KEYS = {"task", "model", "selection", "select_on_description", "metric", "n_eval", "heads",
            "comparisons", "wall_time_s"}
MCNEMAR_KEYS = {"a", "b", "test", "statistic", "p_value", "a_correct_b_wrong",
                "b_correct_a_wrong", "significant", "alpha"}


def parse(*argv: str):
    return tune_config_from_args(build_parser().parse_args(["tune", *argv]))


def test_end_to_end_writes_the_whole_layout(tmp_path, capsys):
    model, data = tiny_bert_dir(tmp_path / "model"), tiny_glue_dir(tmp_path / "data", 32, 16)
    out = tmp_path / "study"
    code = main(["tune", "--model", str(model), "--data-dir", str(data), "--output-dir", str(out),
                 "--poolings", ",".join(HEADS), "--space", "quick", "--n-trials", "2",
                 "--final-seeds", "2", "--batch-size", "8", "--device", "cpu", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Table 1: best hyperparameters per head" in printed and "Protocol" in printed

    for name in ("config.json", "study.db", "trials.csv", "summary.json", "summary.md"):
        assert (out / name).is_file(), name
    config = json.loads((out / "config.json").read_text())
    assert config["tune"]["n_trials"] == 2 and config["poolings"] == list(HEADS)
    assert config["model"]["model_name_or_path"] == str(model)

    with (out / "trials.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[:4] == ["head", "number", "state", "value"]
    assert list(rows[0])[-3:] == ["epochs_run", "duration_s", "fail_reason"]
    assert {"params_learning_rate", "params_max_length", "params_dropout"} <= set(rows[0])
    assert sorted((r["head"], r["number"]) for r in rows) == sorted(
        (h, str(n)) for h in HEADS for n in range(2))

    summary = json.loads((out / "summary.json").read_text())
    assert TOP_KEYS <= set(summary)
    assert summary["selection"] == "holdout" and summary["n_eval"] == 16
    for head in HEADS:
        h = summary["heads"][head]
        assert HEAD_KEYS <= set(h), head
        assert h["n_trials"] == h["n_complete"] + h["n_pruned"] + h["n_failed"] == 2
        assert h["seeds"] == [1, 2] and len(h["seed_values"]) == 2
        assert h["mean"] == pytest.approx(sum(h["seed_values"]) / 2)
        assert h["ci95"][0] <= h["mean"] <= h["ci95"][1]
        head_dir = out / "heads" / head
        best = json.loads((head_dir / "best.json").read_text())
        assert best["trial_number"] == h["best_trial"] and best["selection"] == "holdout"
        assert best["params"] == h["best_params"]
        for name in ("config.json", "metrics.json", "history.jsonl", "predictions.csv",
                     "model/model.safetensors"):
            assert (head_dir / "best" / name).is_file(), (head, name)
        for seed in (1, 2):
            folder = head_dir / "seeds" / f"seed-{seed}"
            for name in ("config.json", "metrics.json", "history.jsonl", "predictions.csv"):
                assert (folder / name).is_file(), (head, seed, name)
            assert not (folder / "model").exists()
            assert json.loads((folder / "config.json").read_text())["train"]["seed"] == seed
    pairs = {(c["a"], c["b"]) for c in summary["comparisons"] if c["test"] == "mcnemar"}
    assert pairs == {("cls", "mean_max"), ("cls", "attention"), ("mean_max", "attention")}
    for c in summary["comparisons"]:
        if c["test"] == "mcnemar":
            assert MCNEMAR_KEYS <= set(c) and 0.0 <= c["p_value"] <= 1.0
    assert {c["test"] for c in summary["comparisons"]} >= {"mcnemar", "paired_bootstrap"}


def test_quick_preset_trains_on_all_of_train_on_a_gpu_and_a_subset_on_a_cpu(tmp_path,
                                                                              monkeypatch):
    import torch

    from poolbert.tuning.protocol import budget_text
    from poolbert.tuning.results import StudyResult

    out = str(tmp_path / "s")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = parse("--preset", "quick", "--output-dir", out)
    assert gpu.run.data.max_train_samples is None  # all of train
    assert (gpu.space, gpu.n_trials, gpu.final_seeds) == ("quick", None, 3)  # same budget
    assert parse("--preset", "quick", "--output-dir", out, "--device", "cpu"
                 ).run.data.max_train_samples == 200
    assert parse("--preset", "quick", "--output-dir", out, "--max-train-samples", "500"
                 ).run.data.max_train_samples == 500  # a flag still wins
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert parse("--preset", "quick", "--output-dir", out).run.data.max_train_samples == 200
    summary = {"preset": "quick", "wall_time_s": 60.0,
               "budget": {"n_trials": {"cls": 4}, "timeout": None, "max_train_samples": None,
                          "device": "cuda", "final_seeds": 3, "n_workers": 1}}
    text = budget_text(StudyResult.from_json(summary))
    assert "max_train_samples all on cuda (the quick preset: all of train on a GPU" in text


def test_presets_set_defaults_and_flags_win(tmp_path):
    out = str(tmp_path / "s")
    quick = parse("--preset", "quick", "--output-dir", out)
    assert quick.run.model.model_name_or_path == DEFAULT_MODEL
    assert quick.run.data.max_train_samples == 200 and quick.space == "quick"
    assert quick.heads == list(HEADS) and quick.pruner == "median" and quick.final_seeds == 3
    paper = parse("--preset", "paper", "--output-dir", out)
    assert paper.run.model.model_name_or_path == "bert-base-uncased"
    assert (paper.space, paper.select_on, paper.pruner) == ("paper", "dev", "none")
    mine = parse("--preset", "paper", "--output-dir", out, "--select-on", "holdout",
                 "--model", "prajjwal1/bert-tiny", "--n-trials", "3", "--poolings", "mean",
                 "--pruner", "hyperband", "--batch-size", "32", "--storage", "journal")
    assert mine.select_on == "holdout"
    assert mine.run.model.model_name_or_path == "prajjwal1/bert-tiny"
    assert (mine.n_trials, mine.heads, mine.pruner) == (3, ["mean"], "hyperband")
    assert mine.run.train.batch_size == 32 and mine.storage == "journal"
    plain = parse("--output-dir", out)
    assert (plain.space, plain.select_on, plain.final_seeds) == ("paper", "holdout", 5)
    assert plain.name == "s"


def test_flags_that_cannot_apply_are_refused(tmp_path):
    out = str(tmp_path / "s")
    with pytest.raises(PoolbertError, match="--poolings"):
        parse("--output-dir", out, "--pooling", "cls")
    with pytest.raises(PoolbertError, match="--learning-rate is searched by the space"):
        parse("--output-dir", out, "--learning-rate", "3e-5")
    with pytest.raises(PoolbertError, match="unknown head 'sum'"):
        parse("--output-dir", out, "--poolings", "cls,sum")
    with pytest.raises(PoolbertError, match="--n-workers"):
        parse("--output-dir", out, "--n-workers", "0")
    with pytest.raises(PoolbertError, match="--trials-per-gpu"):
        parse("--output-dir", out, "--trials-per-gpu", "0")
