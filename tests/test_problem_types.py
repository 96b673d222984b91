"""Every text-classification problem type as a user runs it: GLUE's own files (CoLA without a
header, STS-B scores, MNLI's two dev sets), multi-label and regression data, the --metric that
judges a run, class weights, early stopping and temperature calibration, through train, tune,
export with a plain transformers reload, predict and the report; bad input refused in one line."""

from __future__ import annotations

import json
import random

import numpy as np
import pandas as pd
import pytest
import torch
from helpers import WORDS, tiny_bert_dir, tiny_glue_dir

from poolbert.cli import main
from poolbert.config import DataConfig, RunConfig
from poolbert.data import load_data
from poolbert.layout import read_predictions
from poolbert.metrics import (
    best_threshold,
    expected_calibration_error,
    fit_temperature,
    probabilities,
)

ANIMALS, COLOURS, PLACES = ("cat", "dog", "bird"), ("red", "blue", "green"), ("park", "city")
NEUTRAL = [w for w in WORDS if w not in (*ANIMALS, *COLOURS, *PLACES, "yes", "no")]


# ----------------------------------------------------------------------------- data on disk


def tsv(path, rows: list[list[object]]) -> None:
    path.write_text("".join("\t".join(map(str, r)) + "\n" for r in rows), encoding="utf-8")


def regression_rows(n: int, seed: int) -> list[dict]:
    """The target is the number of 'yes' in the sentence (0-3): learnable by a tiny model."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        k = i % 4
        words = rng.choices(NEUTRAL, k=rng.randint(3, 8)) + ["yes"] * k
        rng.shuffle(words)
        rows.append({"id": i, "text": " ".join(words), "score": float(k)})
    return rows


def multilabel_rows(n: int, seed: int) -> list[dict]:
    """Labels animal / colour / place, each present iff a word of its kind is."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        kinds = [kind for kind, bit in zip(("animal", "colour", "place"), (i & 1, i & 2, i & 4),
                                           strict=True) if bit]
        words = rng.choices(NEUTRAL, k=rng.randint(3, 7))
        words += [rng.choice({"animal": ANIMALS, "colour": COLOURS, "place": PLACES}[k])
                  for k in kinds]
        rng.shuffle(words)
        rows.append({"id": i, "text": " ".join(words), "labels": "|".join(kinds)})
    return rows


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("model"))


def splits_dir(root, make_rows) -> object:
    """train.csv (64 rows) and validation.csv (32 rows) made by `make_rows(n, seed)`."""
    pd.DataFrame(make_rows(64, 0)).to_csv(root / "train.csv", index=False)
    pd.DataFrame(make_rows(32, 1)).to_csv(root / "validation.csv", index=False)
    return root


@pytest.fixture(scope="module")
def regression_dir(tmp_path_factory):
    return splits_dir(tmp_path_factory.mktemp("regression"), regression_rows)


@pytest.fixture(scope="module")
def multilabel_dir(tmp_path_factory):
    return splits_dir(tmp_path_factory.mktemp("multilabel"), multilabel_rows)


def train_args(model_dir, out, *extra: str) -> list[str]:
    return ["train", "--model", str(model_dir), "--pooling", "mean", "--num-train-epochs", "4",
            "--max-length", "32", "--batch-size", "8", "--learning-rate", "3e-3",
            "--device", "cpu", "--output-dir", str(out), "--quiet", *extra]


def custom(data_dir, *extra: str) -> list[str]:
    return ["--data-dir", str(data_dir), "--text-columns", "text", *extra]


# ----------------------------------------------------------------------------- GLUE's own files


def test_cola_tsv_without_a_header_is_read_with_glues_columns(tmp_path):
    rows = [["gj04", i % 2, "" if i % 2 else "*", f"the cat sat {'yes' if i % 2 else 'no'}"]
            for i in range(6)]
    tsv(tmp_path / "train.tsv", rows)
    tsv(tmp_path / "dev.tsv", rows[:4])
    data = load_data(DataConfig(task="cola", data_dir=str(tmp_path)))
    assert data.text_columns == ["sentence"] and data.problem_type == "single_label"
    assert data.train.texts_a[0] == "the cat sat no"  # the first line is data, not a header
    assert data.train.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.label_names == ["unacceptable", "acceptable"]


def test_stsb_scores_are_regression_targets_and_a_test_set_has_none(tmp_path):
    head = ["index", "genre", "filename", "year", "old_index", "source1", "source2",
            "sentence1", "sentence2"]
    body = [[i, "main-news", "x", "2012", i, "a", "b", '"the cat" sat', f"a dog {i}"]
            for i in range(4)]
    tsv(tmp_path / "train.tsv", [head + ["score"], *[r + [i * 1.25] for i, r in enumerate(body)]])
    tsv(tmp_path / "dev.tsv", [head + ["score"], *[r + [5.0] for r in body[:2]]])
    tsv(tmp_path / "test.tsv", [head, *body[:3]])
    data = load_data(DataConfig(task="stsb", data_dir=str(tmp_path)))
    assert data.problem_type == "regression" and len(data.label_names) == 1  # one output
    assert data.train.labels.dtype == np.float32
    assert data.train.labels.tolist() == [0.0, 1.25, 2.5, 3.75]
    assert data.train.texts_a[0] == '"the cat" sat'  # GLUE's TSVs are not quoted
    assert np.isnan(data.test.labels).all()


def test_mnli_reads_both_dev_sets_and_scores_the_mismatched_one(model_dir, tmp_path):
    names = ["entailment", "neutral", "contradiction"]
    rng = random.Random(0)

    def rows(n: int) -> list[list[object]]:
        return [["index", "sentence1", "sentence2", "gold_label"],
                *[[i, " ".join(rng.choices(NEUTRAL, k=5)), ("yes " if i % 3 == 0 else "no ")
                   + " ".join(rng.choices(NEUTRAL, k=3)), names[i % 3]] for i in range(n)]]

    data_dir = tmp_path / "mnli"
    data_dir.mkdir()
    tsv(data_dir / "train.tsv", rows(24))
    tsv(data_dir / "dev_matched.tsv", rows(9))
    tsv(data_dir / "dev_mismatched.tsv", rows(6))
    data = load_data(DataConfig(task="mnli", data_dir=str(data_dir)))
    assert len(data.validation) == 9 and len(data.extra["mismatched"]) == 6
    out = tmp_path / "run"
    assert main(train_args(model_dir, out, "--task", "mnli", "--data-dir", str(data_dir),
                           "--num-train-epochs", "1", "--no-save-model")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_eval"] == 9
    assert 0.0 <= metrics["eval_mismatched_accuracy"] <= 1.0
    assert "eval_mismatched_loss" in metrics


# ----------------------------------------------------------------------------- multi-label data


def test_multilabel_as_lists_and_as_columns_read_the_same(tmp_path):
    rows = multilabel_rows(16, 0)
    listed = tmp_path / "listed"
    listed.mkdir()
    pd.DataFrame(rows).to_csv(listed / "train.csv", index=False)
    pd.DataFrame(rows).to_csv(listed / "validation.csv", index=False)
    as_json = tmp_path / "json"
    as_json.mkdir()
    frame = pd.DataFrame([{**r, "labels": json.dumps(r["labels"].split("|") if r["labels"]
                                                      else [])} for r in rows])
    frame.to_json(as_json / "train.jsonl", orient="records", lines=True)
    frame.to_json(as_json / "validation.jsonl", orient="records", lines=True)
    columns = tmp_path / "columns"
    columns.mkdir()
    wide = pd.DataFrame([{"text": r["text"], **{k: int(k in r["labels"].split("|"))
                                                 for k in ("animal", "colour", "place")}}
                         for r in rows])
    wide.to_csv(columns / "train.csv", index=False)
    wide.to_csv(columns / "validation.csv", index=False)

    a = load_data(DataConfig(task=None, data_dir=str(listed), text_columns=["text"], label_column="labels"))
    b = load_data(DataConfig(task=None, data_dir=str(as_json), text_columns=["text"], label_column="labels"))
    c = load_data(DataConfig(task=None, data_dir=str(columns), text_columns=["text"],
                             label_columns=["animal", "colour", "place"]))
    for data in (a, b, c):
        assert data.problem_type == "multi_label"
        assert data.label_names == ["animal", "colour", "place"]
        np.testing.assert_array_equal(data.train.labels, a.train.labels)
    assert a.train.labels.shape == (16, 3) and a.train.labels[0].tolist() == [0, 0, 0]
    assert a.train.labels[7].tolist() == [1, 1, 1]


# ----------------------------------------------------------------------------- bad input


def _bad_file(tmp_path, name: str, frame: pd.DataFrame):
    folder = tmp_path / name
    folder.mkdir()
    frame.to_csv(folder / "train.csv", index=False)
    return folder


@pytest.mark.parametrize("case", ["target", "unknown_label", "label_column", "metric",
                                  "f1_of_three", "weights", "task_type"])
@pytest.mark.parametrize("command", ["train", "tune"])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(model_dir, regression_dir,
                                                         multilabel_dir, tmp_path, capsys, case,
                                                         command):
    data = tmp_path / "data"
    data.mkdir()
    extra: list[str] = []
    if case == "target":
        rows = regression_rows(8, 0)
        rows[5]["score"] = "high"
        pd.DataFrame(rows).to_csv(data / "train.csv", index=False)
        pd.DataFrame(regression_rows(4, 1)).to_csv(data / "validation.csv", index=False)
        extra = custom(data, "--label-column", "score", "--problem-type", "regression")
        message = f"{data / 'train.csv'}: regression target 'high' in column 'score' at row 6"
    elif case == "unknown_label":
        pd.DataFrame(multilabel_rows(8, 0)).to_csv(data / "train.csv", index=False)
        rows = multilabel_rows(4, 1)
        rows[2]["labels"] = "animal|weather"
        pd.DataFrame(rows).to_csv(data / "validation.csv", index=False)
        extra = custom(data, "--label-column", "labels", "--problem-type", "multi_label")
        message = f"{data / 'validation.csv'}: unknown label 'weather' in column 'labels' (row 3)"
    elif case == "label_column":
        rows = [{"text": r["text"], "animal": 1, "colour": 0} for r in multilabel_rows(8, 0)]
        rows[3]["colour"] = 2
        pd.DataFrame(rows).to_csv(data / "train.csv", index=False)
        pd.DataFrame(rows[:2]).to_csv(data / "validation.csv", index=False)
        extra = custom(data, "--label-columns", "animal,colour")
        message = f"{data / 'train.csv'}: column 'colour' at row 4 holds '2'"
    elif case == "metric":
        extra = custom(regression_dir, "--label-column", "score", "--problem-type", "regression",
                       "--metric", "accuracy")
        message = "--metric accuracy does not fit regression; choose one of: pearson, spearman"
    elif case == "f1_of_three":
        rows = [{"text": r["text"], "label": ["a", "b", "c"][i % 3]}
                for i, r in enumerate(regression_rows(9, 0))]
        pd.DataFrame(rows).to_csv(data / "train.csv", index=False)
        pd.DataFrame(rows).to_csv(data / "validation.csv", index=False)
        extra = custom(data, "--metric", "f1")
        message = "--metric f1 does not fit single-label classification; choose one of: " \
                  "accuracy, macro_f1"
    elif case == "weights":
        extra = custom(multilabel_dir, "--label-column", "labels", "--class-weights", "1,2")
        message = "class_weights: 2 weights for 3 labels"
    else:
        extra = ["--task", "stsb", "--data-dir", str(regression_dir), "--problem-type",
                 "single_label"]
        message = "problem_type single_label does not fit task stsb (regression)"
    out = tmp_path / "out"
    if command == "train":
        argv = train_args(model_dir, out, *extra)
    else:
        argv = ["tune", "--model", str(model_dir), "--output-dir", str(out), "--poolings", "mean",
                "--n-trials", "1", "--final-seeds", "0", "--device", "cpu", "--quiet", *extra]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not out.exists()


def test_task_none_means_custom_data_on_the_command_line_and_in_the_saved_config(
        model_dir, regression_dir, tmp_path):
    """`--task none` (as the README's option table says) and a run's config.json read back:
    custom data both times, not the default GLUE preset."""
    out = tmp_path / "run"
    assert main(train_args(model_dir, out, "--task", "none", "--num-train-epochs", "1",
                           "--no-save-model", *custom(regression_dir, "--label-column", "score",
                                                      "--problem-type", "regression"))) == 0
    saved = json.loads((out / "config.json").read_text())
    assert saved["data"]["task"] is None
    assert RunConfig.from_dict(saved).data.task is None
    assert RunConfig.from_dict({"data": {"task": "none"}}).data.task is None


# ----------------------------------------------------------------------------- regression


@pytest.fixture(scope="module")
def regression_run(model_dir, regression_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "regression"
    assert main(train_args(model_dir, out, *custom(regression_dir, "--label-column", "score",
                                                    "--problem-type", "regression"))) == 0
    return out


def test_regression_trains_by_pearson_and_writes_numbers(regression_run, regression_dir):
    metrics = json.loads((regression_run / "metrics.json").read_text())
    assert metrics["problem_type"] == "regression" and metrics["metric"] == "pearson"
    assert metrics["eval_pearson"] > 0.5, metrics  # the count of 'yes' is learnt
    assert {"eval_spearman", "eval_mse"} <= set(metrics) and "eval_accuracy" not in metrics
    history = [json.loads(line) for line in
               (regression_run / "history.jsonl").read_text().splitlines()]
    evals = [r for r in history if r["type"] == "eval"]
    best = max(evals, key=lambda r: r["eval_pearson"])  # first maximum: max() keeps the first
    assert metrics["best_epoch"] == best["epoch"]
    found = read_predictions(regression_run / "predictions.csv")
    assert found.problem_type == "regression"
    truth = pd.read_csv(regression_dir / "validation.csv")["score"].to_numpy()
    np.testing.assert_allclose(found.labels, truth)
    assert metrics["eval_mse"] == pytest.approx(float(np.mean((found.preds - truth) ** 2)),
                                                rel=1e-4)


def test_regression_export_reloads_with_plain_transformers(regression_run, regression_dir,
                                                           tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    exported = tmp_path / "export"
    assert main(["export", str(regression_run), "--to", str(exported)]) == 0
    model = AutoModelForSequenceClassification.from_pretrained(exported, trust_remote_code=True)
    tokenizer = AutoTokenizer.from_pretrained(exported)
    assert model.config.problem_type == "regression" and model.config.num_labels == 1
    texts = pd.read_csv(regression_dir / "validation.csv")["text"].tolist()[:8]
    enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    target = torch.arange(8, dtype=torch.float32)
    with torch.no_grad():
        out = model(**enc, labels=target)
    saved = read_predictions(regression_run / "predictions.csv").preds[:8]
    np.testing.assert_allclose(out.logits.squeeze(-1).numpy(), saved, atol=1e-4)
    assert out.loss.item() == pytest.approx(
        torch.nn.functional.mse_loss(out.logits.squeeze(-1), target).item())


def test_regression_predict_and_report(regression_run, regression_dir, tmp_path):
    inputs = tmp_path / "in.csv"
    pd.read_csv(regression_dir / "validation.csv")[["id", "text"]].to_csv(inputs, index=False)
    outputs = tmp_path / "out.csv"
    assert main(["predict", str(regression_run), "--input", str(inputs), "--output",
                 str(outputs), "--quiet"]) == 0
    predicted = pd.read_csv(outputs)
    assert list(predicted.columns) == ["id", "prediction"]
    saved = read_predictions(regression_run / "predictions.csv").preds
    np.testing.assert_allclose(predicted["prediction"], saved, atol=1e-4)

    assert main(["report", str(regression_run)]) == 0
    page = (regression_run / "report" / "index.html").read_text()
    assert "validation Pearson correlation" in page and "eval_pearson" in page
    assert (regression_run / "report" / "loss_curve.png").is_file()
    assert not (regression_run / "report" / "confusion_matrix.png").exists()
    assert not (regression_run / "report" / "reliability.png").exists()


# ----------------------------------------------------------------------------- multi-label


@pytest.fixture(scope="module")
def multilabel_run(model_dir, multilabel_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "multilabel"
    assert main(train_args(model_dir, out, *custom(multilabel_dir, "--label-column", "labels"),
                           "--num-train-epochs", "6")) == 0
    return out


def test_multilabel_trains_by_micro_f1_with_a_tuned_threshold(multilabel_run):
    metrics = json.loads((multilabel_run / "metrics.json").read_text())
    assert metrics["problem_type"] == "multi_label" and metrics["metric"] == "micro_f1"
    assert metrics["label_names"] == ["animal", "colour", "place"]
    assert metrics["eval_micro_f1"] > 0.7, metrics
    assert 0.05 <= metrics["eval_threshold"] <= 0.95
    config = json.loads((multilabel_run / "model" / "config.json").read_text())
    assert config["decision_threshold"] == metrics["eval_threshold"]
    assert config["calibration_temperature"] == metrics["temperature"]
    found = read_predictions(multilabel_run / "predictions.csv")
    assert found.problem_type == "multi_label" and found.probs.shape == (32, 3)
    np.testing.assert_array_equal(found.preds, found.probs >= metrics["eval_threshold"])
    assert metrics["eval_micro_f1"] == pytest.approx(
        2 * (found.labels * found.preds).sum() / (found.labels.sum() + found.preds.sum()))


def test_the_threshold_maximises_the_metric_asked_for():
    """A model that cannot tell two exclusive labels apart: micro-F1 is best marking both (low
    threshold), exact-match accuracy marking the likelier one only; loss, which no threshold
    changes, takes micro-F1's."""
    labels = np.array([[1, 0], [0, 1]] * 4, dtype=float)
    probs = np.array([[0.5, 0.45]] * 8)
    assert best_threshold(labels, probs, "micro_f1") == 0.45
    assert best_threshold(labels, probs, "macro_f1") == 0.45
    assert best_threshold(labels, probs, "accuracy") == 0.5
    assert best_threshold(labels, probs, "loss") == 0.45


@pytest.mark.parametrize("metric", ["micro_f1", "accuracy"])
def test_a_multilabel_run_fits_its_threshold_for_its_metric(model_dir, multilabel_dir, tmp_path,
                                                            multilabel_run, metric):
    out = multilabel_run
    if metric != "micro_f1":
        out = tmp_path / "run"
        assert main(train_args(model_dir, out, *custom(multilabel_dir, "--label-column", "labels"),
                               "--num-train-epochs", "2", "--metric", metric)) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["metric"] == metric
    found = read_predictions(out / "predictions.csv")  # the calibrated validation probabilities
    assert metrics["eval_threshold"] == best_threshold(found.labels, found.probs, metric)


def test_multilabel_export_predict_and_report(multilabel_run, multilabel_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    exported = tmp_path / "export"
    assert main(["export", str(multilabel_run), "--to", str(exported)]) == 0
    model = AutoModelForSequenceClassification.from_pretrained(exported, trust_remote_code=True)
    assert model.config.problem_type == "multi_label_classification"
    tokenizer = AutoTokenizer.from_pretrained(exported)
    texts = pd.read_csv(multilabel_dir / "validation.csv")["text"].tolist()
    enc = tokenizer(texts, padding=True, truncation=True, max_length=32, return_tensors="pt")
    found = read_predictions(multilabel_run / "predictions.csv")
    with torch.no_grad():
        out = model(**enc, labels=torch.as_tensor(found.labels))
    t = model.config.calibration_temperature
    np.testing.assert_allclose(torch.sigmoid(out.logits / t).numpy(), found.probs, atol=1e-4)
    assert out.loss.item() == pytest.approx(torch.nn.functional.binary_cross_entropy_with_logits(
        out.logits, torch.as_tensor(found.labels)).item(), rel=1e-5)

    inputs = tmp_path / "in.csv"
    pd.read_csv(multilabel_dir / "validation.csv")[["id", "text"]].to_csv(inputs, index=False)
    outputs = tmp_path / "out.csv"
    assert main(["predict", str(exported), "--input", str(inputs), "--output", str(outputs),
                 "--quiet"]) == 0
    predicted = pd.read_csv(outputs, keep_default_na=False)
    names = ["animal", "colour", "place"]
    assert list(predicted.columns) == ["id", "prediction", *(f"prob_{n}" for n in names)]
    expected = ["|".join(n for n, on in zip(names, row, strict=True) if on) for row in found.preds]
    assert predicted["prediction"].tolist() == expected

    # the ONNX graph gives the same labels and calibrated probabilities
    graph = tmp_path / "graph"
    assert main(["export", str(multilabel_run), "--to", str(graph), "--onnx"]) == 0
    by_onnx = tmp_path / "onnx.csv"
    assert main(["predict", str(graph), "--backend", "onnxruntime", "--input", str(inputs),
                 "--output", str(by_onnx), "--quiet"]) == 0
    onnx_rows = pd.read_csv(by_onnx, keep_default_na=False)
    assert onnx_rows["prediction"].tolist() == expected
    np.testing.assert_allclose(onnx_rows.iloc[:, 2:].to_numpy(), predicted.iloc[:, 2:].to_numpy(),
                               atol=1e-5)

    assert main(["report", str(multilabel_run)]) == 0
    assert (multilabel_run / "report" / "reliability.png").is_file()
    assert not (multilabel_run / "report" / "confusion_matrix.png").exists()


# ----------------------------------------------------------------------------- single-label options


@pytest.fixture(scope="module")
def glue_dir(tmp_path_factory):
    return tiny_glue_dir(tmp_path_factory.mktemp("glue"), 48, 24)


@pytest.mark.parametrize("metric, key, pick", [("loss", "eval_loss", min),
                                               ("mcc", "eval_mcc", max)])
def test_metric_chooses_the_best_epoch(model_dir, glue_dir, tmp_path, metric, key, pick):
    out = tmp_path / "run"
    assert main(train_args(model_dir, out, "--data-dir", str(glue_dir), "--metric", metric,
                           "--num-train-epochs", "5", "--no-save-model")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    evals = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    evals = [r for r in evals if r["type"] == "eval"]
    assert metrics["metric"] == metric
    assert metrics["best_epoch"] == pick(evals, key=lambda r: r[key])["epoch"]
    assert metrics["last_eval_value"] == evals[-1][key]


def test_early_stopping_stops_after_patience_epochs_without_gain(model_dir, glue_dir, tmp_path):
    out = tmp_path / "run"
    # a learning rate too small to move a float32 weight: nothing improves after epoch 1
    assert main(train_args(model_dir, out, "--data-dir", str(glue_dir), "--learning-rate", "1e-12",
                           "--num-train-epochs", "8", "--early-stopping-patience", "2",
                           "--metric", "loss", "--no-save-model")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 3 and metrics["best_epoch"] == 1


def test_balanced_class_weights_weigh_the_loss(model_dir, tmp_path):
    from poolbert.config import RunConfig
    from poolbert.model import task_loss
    from poolbert.resources import Resources
    from poolbert.weights import loss_weights

    data_dir = tiny_glue_dir(tmp_path / "data", 48, 24)
    frame = pd.read_parquet(data_dir / "train.parquet")
    frame = pd.concat([frame, frame[frame["label"] == 1]])  # 24 of label 0, 48 of label 1
    frame.to_parquet(data_dir / "train.parquet", index=False)
    config = RunConfig()
    config.model.model_name_or_path = str(model_dir)
    config.data.data_dir = str(data_dir)
    config.train.class_weights = "balanced"
    resources = Resources.load(config)
    weights = loss_weights(config, resources.data, torch.device("cpu"))
    assert weights.tolist() == pytest.approx([72 / (2 * 24), 72 / (2 * 48)])
    logits, labels = torch.randn(6, 2), torch.tensor([0, 1, 1, 0, 1, 1])
    expected = torch.nn.functional.cross_entropy(logits, labels, weight=weights)
    assert task_loss(logits, labels, "single_label", weights).item() == pytest.approx(
        expected.item())

    out = tmp_path / "run"
    assert main(train_args(model_dir, out, "--data-dir", str(data_dir), "--class-weights",
                           "1,3", "--num-train-epochs", "1", "--no-save-model")) == 0
    record = json.loads((out / "config.json").read_text())
    assert record["train"]["class_weights"] == "1,3"


@pytest.fixture(scope="module")
def noisy_glue_dir(tmp_path_factory):
    """The tiny GLUE data with every fourth label flipped: no model is right on all of it, so
    the temperature that fits it best is finite (on separable data it runs to its bound)."""
    root = tiny_glue_dir(tmp_path_factory.mktemp("noisy"), 64, 48)
    for split in ("train", "validation"):
        frame = pd.read_parquet(root / f"{split}.parquet")
        frame.loc[frame.index % 4 == 3, "label"] = 1 - frame["label"]
        frame.to_parquet(root / f"{split}.parquet", index=False)
    return root


def test_calibration_lowers_the_nll_and_predict_uses_the_temperature(model_dir, noisy_glue_dir,
                                                                      tmp_path):
    glue_dir = noisy_glue_dir
    out = tmp_path / "run"
    assert main(train_args(model_dir, out, "--data-dir", str(glue_dir), "--learning-rate",
                           "1e-2", "--num-train-epochs", "6")) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    t = metrics["temperature"]
    found = read_predictions(out / "predictions.csv")
    # the logits back from the saved probabilities: T log softmax(z / T) = z - a row constant
    logits = np.log(np.clip(found.probs, 1e-12, 1)) * t
    labels = found.labels

    def nll(temperature: float) -> float:
        p = probabilities(logits, "single_label", temperature)
        return float(-np.log(np.clip(p[np.arange(len(labels)), labels], 1e-12, 1)).mean())

    assert t != 1.0
    assert t == pytest.approx(fit_temperature(logits, labels, "single_label"), rel=1e-2)
    assert nll(t) < nll(1.0)
    assert metrics["eval_ece_calibrated"] == pytest.approx(
        expected_calibration_error(found.probs, labels, "single_label"), abs=1e-5)

    inputs = tmp_path / "in.parquet"
    pd.read_parquet(glue_dir / "validation.parquet").to_parquet(inputs)
    outputs = tmp_path / "out.csv"
    assert main(["predict", str(out), "--input", str(inputs), "--output", str(outputs),
                 "--quiet"]) == 0
    probs = pd.read_csv(outputs)[[f"prob_{n}" for n in found.label_names]].to_numpy()
    np.testing.assert_allclose(probs, found.probs, atol=1e-5)

    plain = tmp_path / "plain"
    assert main(train_args(model_dir, plain, "--data-dir", str(glue_dir), "--learning-rate",
                           "1e-2", "--num-train-epochs", "6", "--no-calibrate",
                           "--no-save-model")) == 0
    uncalibrated = json.loads((plain / "metrics.json").read_text())
    assert uncalibrated["temperature"] == 1.0
    assert uncalibrated["eval_ece"] == pytest.approx(metrics["eval_ece"])  # same model
    assert uncalibrated["eval_accuracy"] == metrics["eval_accuracy"]  # T never changes argmax


def test_calibration_fits_the_temperature_that_made_the_probabilities():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 2000)
    z = rng.normal(size=(2000, 3))
    z[np.arange(2000), labels] += 1.5
    sampled = np.array([rng.choice(3, p=p) for p in probabilities(z, "single_label", 1.0)])
    over = z * 3.0  # the same beliefs, three times too sharp
    assert fit_temperature(over, sampled, "single_label") == pytest.approx(3.0, rel=0.1)


# ----------------------------------------------------------------------------- tune


def test_tune_a_regression_study_by_pearson(model_dir, regression_dir, tmp_path, capsys):
    out = tmp_path / "study"
    assert main(["tune", "--model", str(model_dir), "--output-dir", str(out), "--poolings",
                 "mean,max", "--n-trials", "2", "--final-seeds", "2", "--space", "quick",
                 "--batch-size", "8", "--device", "cpu", "--quiet",
                 *custom(regression_dir, "--label-column", "score", "--problem-type",
                         "regression")]) == 0
    printed = capsys.readouterr().out
    summary = json.loads((out / "summary.json").read_text())
    assert summary["problem_type"] == "regression" and summary["metric"] == "eval_pearson"
    for head in ("mean", "max"):
        h = summary["heads"][head]
        assert len(h["seed_values"]) == 2 and -1 <= h["mean"] <= 1
    tests = {c["test"] for c in summary["comparisons"]}
    assert tests and not tests & {"mcnemar", "McNemar"}
    assert "Pearson" in printed
    assert main(["report", str(out)]) == 0
    page = (out / "report" / "index.html").read_text()
    assert "Pearson correlation" in page and "confusion_matrices.png" not in page


def test_tune_by_loss_minimises(model_dir, glue_dir, tmp_path):
    import optuna

    out = tmp_path / "study"
    assert main(["tune", "--model", str(model_dir), "--data-dir", str(glue_dir), "--output-dir",
                 str(out), "--poolings", "mean", "--n-trials", "2", "--final-seeds", "0",
                 "--space", "quick", "--batch-size", "8", "--device", "cpu", "--metric",
                 "loss", "--quiet"]) == 0
    storage = f"sqlite:///{out / 'study.db'}"
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    complete = [t.value for t in study.trials if t.value is not None]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["heads"]["mean"]["best_value"] == min(complete)



# ----------------------------------------------------------------------------- the model card


@pytest.mark.parametrize("kind", ["regression", "multilabel"])
def test_the_cards_code_runs_as_written_for_each_problem_type(request, tmp_path, kind):
    import re
    import subprocess
    import sys

    run = request.getfixturevalue(f"{kind}_run")
    folder = tmp_path / "export"
    assert main(["export", str(run), "--to", str(folder)]) == 0
    card = (folder / "README.md").read_text()
    blocks = [b.split("```")[0] for b in card.split("```python")[1:]]
    code = "\n".join(re.sub(r'^repo = ".*"$', f"repo = {str(folder)!r}", b, flags=re.M)
                     for b in blocks)
    code = code.replace('model="<user>/poolbert-mean"', f"model={str(folder)!r}")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    first, pipeline_line = proc.stdout.splitlines()[:2]
    if kind == "regression":
        float(first)  # the predicted similarity, a number
        assert "Someone makes music" not in card  # one text column: a single sentence
    else:
        chosen, _, probs = first.partition("] ")
        assert set(eval(chosen + "]")) <= {"animal", "colour", "place"}
        assert len(eval(probs)) == 3
    assert pipeline_line.startswith("[{'label': '")


# ----------------------------------------------------------------------------- a study's protocol


@pytest.mark.parametrize("pack", ["1", "2"])
def test_a_multilabel_study_stops_early_and_fits_nothing_on_dev(model_dir, multilabel_dir,
                                                                tmp_path, pack):
    """Holdout protocol: trials stop early on the holdout slice (trials.csv says when), class
    weights are searched like any setting, and the seed runs, scored on dev, take the best
    trial's temperature and threshold (fitted on the holdout slice) and train as many epochs as
    it kept."""
    import yaml

    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"heads": {"mean": {"n_trials": 2, "params": {
        # a learning rate too small to move a weight: no epoch improves on the first
        "learning_rate": {"type": "categorical", "choices": [1e-12]},
        "class_weights": {"type": "categorical", "choices": ["none", "balanced"]}}}}}))
    out = tmp_path / "study"
    assert main(["tune", "--model", str(model_dir), "--output-dir", str(out), "--poolings",
                 "mean", "--space", str(space), "--num-train-epochs", "6",
                 "--early-stopping-patience", "2", "--final-seeds", "2", "--batch-size", "8",
                 "--max-length", "32", "--device", "cpu", "--quiet", "--pack", pack,
                 *custom(multilabel_dir, "--label-column", "labels")]) == 0
    trials = pd.read_csv(out / "trials.csv")
    assert trials["epochs_run"].tolist() == [3, 3]  # epoch 1, then 2 without a gain
    assert set(trials["params_class_weights"]) <= {"none", "balanced"}
    best = json.loads((out / "heads" / "mean" / "best" / "metrics.json").read_text())
    assert best["best_epoch"] == 1
    for seed in (1, 2):
        run = out / "heads" / "mean" / "seeds" / f"seed-{seed}"
        metrics = json.loads((run / "metrics.json").read_text())
        config = json.loads((run / "config.json").read_text())
        assert config["train"]["num_train_epochs"] == 1 and metrics["epochs_run"] == 1
        assert metrics["temperature"] == best["temperature"]
        assert metrics["eval_threshold"] == best["eval_threshold"]
        found = read_predictions(run / "predictions.csv")
        np.testing.assert_array_equal(found.preds, found.probs >= best["eval_threshold"])
    summary = (out / "summary.md").read_text()
    assert "precision" in summary and "recall" in summary  # per label
