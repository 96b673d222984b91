"""Search spaces: the shipped files, user-added settings, and every bad file as a one-line error."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml

from poolbert.config import RunConfig
from poolbert.errors import PoolbertError
from poolbert.tuning import load_space, trial_config

LR = {"type": "float", "low": 1e-5, "high": 1e-4, "log": True}


def write_space(tmp_path: Path, params: dict, name: str = "space.yaml", **head) -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump({"heads": {"cls": {"n_trials": 3, "params": params, **head}}}))
    return path


def test_paper_space_is_the_reports():
    space = load_space("paper")
    cls, mean_max, attention = (space.for_head(h) for h in ("cls", "mean_max", "attention"))
    assert (cls.n_trials, mean_max.n_trials, attention.n_trials) == (48, 30, 30)
    lr = cls.params["learning_rate"]
    assert (lr.type, lr.low, lr.high, lr.log) == ("float", 1e-5, 1e-4, True)
    assert cls.params["num_train_epochs"].choices == (3, 5, 10, 15)
    assert cls.params["max_length"].choices == (64, 128, 256)
    assert (cls.params["dropout"].low, cls.params["dropout"].high) == (0.0, 0.2)
    assert not cls.params["dropout"].log
    for alt in (mean_max, attention):
        assert set(alt.params) == {"learning_rate", "num_train_epochs", "max_length"}
        assert alt.params["num_train_epochs"].choices == (5, 10, 15)
        assert alt.params["max_length"].choices == (32, 64, 128, 256)


def test_default_section_covers_unlisted_heads():
    space = load_space("paper")
    mean = space.for_head("mean")
    assert mean.head == "mean" and mean.n_trials == 30 and "learning_rate" in mean.params
    space.check_heads(["cls", "mean", "weighted_layers"])


def test_quick_space_loads_with_small_budget():
    space = load_space("quick")
    assert all(space.for_head(h).n_trials <= 8 for h in ("cls", "mean_max", "attention"))
    assert space.for_head("cls").params["max_length"].choices == (64, 128)


def test_user_added_settings_reach_the_run_config(tmp_path):
    path = write_space(tmp_path, {
        "learning_rate": LR,
        "batch_size": [16, 32],  # a list is a categorical
        "weight_decay": {"type": "float", "low": 0.0, "high": 0.1},
        "warmup_ratio": {"type": "float", "low": 0.0, "high": 0.2, "step": 0.05},
        "gradient_accumulation_steps": {"type": "int", "low": 1, "high": 4},
        "pooling": {"type": "categorical", "choices": ["mean", "max"]},
        "low": "ignored-key-check",
    } | {}, name="ok.yaml")
    # "low" is not a RunConfig field: the file is refused; drop it and load again
    with pytest.raises(PoolbertError, match=r"ok\.yaml: heads\.cls\.params\.low: unknown setting"):
        load_space(str(path))
    raw = yaml.safe_load(path.read_text())
    del raw["heads"]["cls"]["params"]["low"]
    path.write_text(yaml.safe_dump(raw))
    head = load_space(str(path)).for_head("cls")
    trial = optuna.trial.FixedTrial({"learning_rate": 3e-5, "batch_size": 32, "weight_decay": 0.05,
                                     "warmup_ratio": 0.1, "gradient_accumulation_steps": 2,
                                     "pooling": "max"})
    config = trial_config(RunConfig(), "cls", head.suggest(trial))
    assert config.train.batch_size == 32 and config.train.weight_decay == 0.05
    assert config.train.gradient_accumulation_steps == 2 and config.train.warmup_ratio == 0.1
    assert config.model.pooling == "max"  # a searched pooling overrides the head's


def test_yaml_exponent_without_dot_is_accepted(tmp_path):
    path = tmp_path / "s.yaml"  # PyYAML reads 1e-5 (no dot) as a string
    path.write_text("heads:\n  cls:\n    params:\n      learning_rate: "
                    "{type: float, low: 1e-5, high: 1e-4, log: true}\n")
    assert load_space(str(path)).for_head("cls").params["learning_rate"].low == 1e-5


@pytest.mark.parametrize("params, where, message", [
    ({"learning_rate": {"type": "float", "low": 1e-4, "high": 1e-5}},
     "heads.cls.params.learning_rate", "low .* must be below high"),
    ({"dropout": {"type": "float", "low": 0.2, "high": 0.2}},
     "heads.cls.params.dropout", "must be below high"),
    ({"learning_rate": {"type": "float", "low": 0.0, "high": 1e-4, "log": True}},
     "heads.cls.params.learning_rate.low", "log scale needs low > 0"),
    ({"learnin_rate": LR}, "heads.cls.params.learnin_rate", "unknown setting 'learnin_rate'"),
    ({"learning_rate": {"type": "uniform", "low": 1e-5, "high": 1e-4}},
     "heads.cls.params.learning_rate.type", "unknown parameter type 'uniform'"),
    ({"max_length": {"type": "categorical", "choices": []}},
     "heads.cls.params.max_length.choices", "empty"),
    ({"max_length": []}, "heads.cls.params.max_length.choices", "empty"),
    ({"learning_rate": {"type": "float", "lo": 1e-5, "high": 1e-4}},
     "heads.cls.params.learning_rate.lo", "unknown key"),
    ({"num_train_epochs": {"type": "float", "low": 1, "high": 3}},
     "heads.cls.params.num_train_epochs.type", "integer setting"),
    ({"max_length": {"type": "categorical", "choices": [64, "long"]}},
     "heads.cls.params.max_length.choices", "not a valid int"),
    ({"pooling": ["cls", "sum"]}, "heads.cls.params.pooling.choices", "unknown pooling 'sum'"),
    ({"max_train_samples": [100, 200]}, "heads.cls.params.max_train_samples",
     "fixed for a whole study"),
    ({"model_name_or_path": ["a", "b"]}, "heads.cls.params.model_name_or_path",
     "fixed for a whole study"),
    ({"learning_rate": {"type": "float", "low": "tiny", "high": 1e-4}},
     "heads.cls.params.learning_rate.low", "not a valid number"),
])
def test_bad_parameter_names_file_and_key(tmp_path, params, where, message):
    path = write_space(tmp_path, params, name="bad.yaml")
    with pytest.raises(PoolbertError) as info:
        load_space(str(path))
    text = str(info.value)
    assert "\n" not in text
    assert text.startswith(f"{path}: {where}")
    assert pytest.importorskip("re").search(message, text), text


def test_bad_head_settings(tmp_path):
    with pytest.raises(PoolbertError, match=r"heads\.cls\.n_trials: expected a positive integer"):
        load_space(str(write_space(tmp_path, {"learning_rate": LR}, n_trials=0)))
    with pytest.raises(PoolbertError, match=r"heads\.cls\.budget: unknown key"):
        load_space(str(write_space(tmp_path, {"learning_rate": LR}, budget=3)))
    path = tmp_path / "top.yaml"
    path.write_text(yaml.safe_dump({"head": {}}))
    with pytest.raises(PoolbertError, match=r"top\.yaml: head: unknown key"):
        load_space(str(path))


def test_missing_file_and_unknown_head(tmp_path):
    with pytest.raises(PoolbertError, match="config file not found"):
        load_space(str(tmp_path / "nope.yaml"))
    space = load_space(str(write_space(tmp_path, {"learning_rate": LR})))
    with pytest.raises(PoolbertError, match="no search space for head 'mean'"):
        space.for_head("mean")
