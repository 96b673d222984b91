"""The Python API: the functions a notebook calls give what the command gives."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import tiny_bert_dir, tiny_glue_dir

import poolbert
from poolbert.cli import build_parser, main
from poolbert.cli.tune_cmd import tune_config_from_args
from poolbert.tuning.settings import tune_config

# timings differ between any two runs; everything else must not
TIMING = {"train_runtime", "train_samples_per_second", "eval_runtime", "eval_samples_per_second",
          "eval_steps_per_second"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("api")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 32, 16)


def settings(setup) -> dict:
    model, data = setup
    return {"model": str(model), "data_dir": str(data), "pooling": "mean_max",
            "num_train_epochs": 2, "batch_size": 8, "max_length": 32, "device": "cpu",
            "learning_rate": 1e-3, "seed": 3}


def as_flags(values: dict) -> list[str]:
    return [part for key, value in values.items()
            for part in (f"--{key.replace('_', '-')}", str(value))]


def without_timing(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if k not in TIMING}


def test_api_and_cli_write_the_same_run(setup, tmp_path):
    values = settings(setup)
    assert main(["train", *as_flags(values), "--output-dir", str(tmp_path / "cli"), "--quiet"]) == 0
    run = poolbert.train(output_dir=tmp_path / "api", quiet=True, **values)
    cli_metrics = json.loads((tmp_path / "cli" / "metrics.json").read_text())
    assert without_timing(run.metrics) == without_timing(cli_metrics)
    cli_config = json.loads((tmp_path / "cli" / "config.json").read_text())
    api_config = json.loads((run.output_dir / "config.json").read_text())
    assert {k: v for k, v in cli_config.items() if k != "command"} == api_config
    assert [r for r in run.history if r["type"] == "eval"][-1]["epoch"] == 2
    assert run.config.train.learning_rate == 1e-3  # config.json read back


def test_a_saved_settings_file_repeats_the_run(setup, tmp_path):
    first = poolbert.train(output_dir=tmp_path / "a", quiet=True, **settings(setup))
    again = poolbert.train(first.output_dir / "config.json", output_dir=tmp_path / "b", quiet=True)
    assert without_timing(again.metrics) == without_timing(first.metrics)
    config_object = poolbert.train(first.config, output_dir=tmp_path / "c", quiet=True)
    assert without_timing(config_object.metrics) == without_timing(first.metrics)


def test_the_classifier_predicts_as_predict_does(setup, tmp_path):
    run = poolbert.train(output_dir=tmp_path / "run", quiet=True, **settings(setup))
    clf = poolbert.load(run.output_dir)
    pairs = [("a man walks far", "yes he moves"), ("the cat sat", "no dog ran")]
    probs = clf.predict_proba(pairs)
    assert probs.shape == (2, 2) and np.allclose(probs.sum(1), 1.0)
    assert clf.predict(pairs) == [clf.labels[i] for i in probs.argmax(1)]
    assert clf.labels == ["entailment", "not_entailment"]
    # the same rows through `poolbert predict` give the same probabilities
    table = tmp_path / "pairs.csv"
    table.write_text("sentence1,sentence2\n" + "\n".join(f"{a},{b}" for a, b in pairs) + "\n")
    assert main(["predict", str(run.output_dir), "--input", str(table), "--output",
                 str(tmp_path / "out.csv"), "--quiet"]) == 0
    import pandas as pd

    written = pd.read_csv(tmp_path / "out.csv")
    assert np.allclose(written[["prob_entailment", "prob_not_entailment"]].to_numpy(), probs,
                       atol=1e-6)
    with pytest.raises(poolbert.PoolbertError, match="not a mix"):
        clf.predict(["one sentence", ("a", "pair")])


@pytest.mark.parametrize(("bad", "message"), [
    ({"learning_rate": -1.0}, "learning_rate must be positive, got -1.0"),
    ({"pooling": "nope"}, "unknown pooling 'nope'"),
    ({"task": "nope"}, "unknown task 'nope'"),
    ({"max_length": 4}, "max_length must be at least 8, got 4"),
])
def test_bad_settings_raise_the_message_the_command_prints(setup, tmp_path, capsys, bad, message):
    values = {**settings(setup), **bad}
    with pytest.raises(poolbert.PoolbertError) as caught:
        poolbert.train(output_dir=tmp_path / "api", **values)
    assert message in str(caught.value)
    assert main(["train", *as_flags(values), "--output-dir", str(tmp_path / "cli")]) == 2
    assert capsys.readouterr().err.strip() == f"poolbert: error: {caught.value}"
    assert not (tmp_path / "api").exists() and not (tmp_path / "cli").exists()


def test_a_value_of_the_wrong_type_names_the_setting(tmp_path):
    with pytest.raises(poolbert.PoolbertError, match="num_train_epochs = 'many' is not a valid int"):
        poolbert.train(output_dir=tmp_path / "api", num_train_epochs="many")


def test_custom_files_without_a_task_mean_custom_data_from_python_too(tmp_path):
    train = tmp_path / "train.csv"
    train.write_text("text,label\na,x\nb,y\n")
    config = poolbert.RunConfig()
    assert config.data.task == "rte"
    from poolbert.config import run_config

    assert run_config(None, {"train_file": str(train)}).data.task is None
    assert run_config(None, {"train_file": str(train), "task": "rte"}).data.task == "rte"


def test_the_quick_preset_from_python_is_the_commands(tmp_path):
    """The preset, the custom settings and the study settings resolve as the flags do, so the
    summary's budget line is the same."""
    out = str(tmp_path / "q")
    cli = tune_config_from_args(build_parser().parse_args(
        ["tune", "--preset", "quick", "--output-dir", out, "--poolings", "cls,mean_max",
         "--weight-decay", "0.02"]))
    api = tune_config(None, {"poolings": ["cls", "mean_max"], "weight_decay": 0.02},
                      output_dir=out, preset="quick", command=cli.command)
    assert api.to_dict() == cli.to_dict() and api.run.to_dict() == cli.run.to_dict()
    assert api.run.data.max_train_samples == 200  # the CPU preset took effect
    assert api.final_seeds == 3 and api.space == "quick" and api.heads == ["cls", "mean_max"]
    from poolbert.tuning.protocol import budget_text
    from poolbert.tuning.results import Budget, StudyResult
    from poolbert.tuning.study import budget

    lines = {budget_text(StudyResult(budget=Budget.from_json(budget(tc, _space(tc), 1, 1)),
                                     preset=tc.preset)) for tc in (api, cli)}
    assert len(lines) == 1 and "max_train_samples 200" in lines.pop()


def _space(tc):
    from poolbert.tuning.space import load_space

    return load_space(tc.space)


def test_tune_refuses_pooling_and_searched_settings_in_python(tmp_path):
    with pytest.raises(poolbert.PoolbertError, match="tune compares heads"):
        poolbert.tune(output_dir=tmp_path / "s", pooling="cls")
    with pytest.raises(poolbert.PoolbertError, match="--max-length is searched"):
        poolbert.tune(output_dir=tmp_path / "s", space="quick", max_length=64)
    assert not (tmp_path / "s").exists()


def test_import_poolbert_stays_light():
    code = ("import sys, poolbert; poolbert.DEFAULT_MODEL; poolbert.PoolbertError; "
            "print(sorted(m for m in ('torch', 'transformers', 'optuna', 'pandas') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_public_name_has_a_docstring_with_args_and_example():
    for name in ("train", "tune", "evaluate", "report", "export", "push", "predict", "load"):
        doc = getattr(poolbert, name).__doc__
        assert "Args:" in doc and "Returns:" in doc and "Example:" in doc, name
