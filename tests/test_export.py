"""Export, push and predict on a tiny random BERT: every head loads with plain transformers."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from huggingface_hub import ModelCard
from safetensors.torch import load_file, save_file
from transformers import AutoTokenizer, BertConfig, BertModel, BertTokenizer

from poolbert.cli import main
from poolbert.config import RunConfig
from poolbert.encoder import load_encoder
from poolbert.errors import PoolbertError
from poolbert.exporting import export_model, pick_head, resolve_source, verify_export
from poolbert.exporting.convert import _bert_key
from poolbert.model import build_model, load_model
from poolbert.pooling import POOLERS
from poolbert.prediction import PredictOptions, predict_file

LABELS = ["entailment", "not_entailment"]
WORDS = ("the a cat dog sat ran on mat far away is not man plays guitar music someone makes "
         "very long text and of to in it , . !").split()
PAIRS = (["the cat sat on the mat.", "a dog ran far away", "a man plays"],
         ["a cat is on a mat", "the dog is not far", "someone makes music , very long text !"])
FAKE_TOKEN = "hf_FAKEsecret123"


# ----------------------------------------------------------------------------- fixtures


def make_tiny_bert(folder: Path) -> Path:
    """A random 2-layer BERT (hidden 32) and a word-level tokenizer, saved like a Hub model."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=5 + len(WORDS), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=37, max_position_embeddings=128)
    BertModel(config).save_pretrained(folder)
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS])}
    BertTokenizer(vocab=vocab).save_pretrained(folder)
    return folder


def make_run(tiny: Path, run: Path, pooling: str, text_columns=("sentence1", "sentence2"),
             seed: int = 0) -> Path:
    """A run directory as `poolbert train` writes it, with non-trivial head weights."""
    torch.manual_seed(seed)
    model = build_model(load_encoder(str(tiny)), pooling, LABELS)
    with torch.no_grad():  # zero-initialised head weights would hide a missed copy
        for name, param in model.named_parameters():
            if not name.startswith("encoder."):
                param.add_(torch.randn_like(param) * 0.3)
    model.save_pretrained(run / "model")
    AutoTokenizer.from_pretrained(tiny).save_pretrained(run / "model")
    config = RunConfig()
    config.model.pooling, config.model.model_name_or_path = pooling, str(tiny)
    record = {**config.to_dict(), "text_columns_resolved": list(text_columns),
              "versions": {"poolbert": "0.1.0"}}
    (run / "config.json").write_text(json.dumps(record), encoding="utf-8")
    metrics = {"eval_accuracy": 0.625, "eval_f1": 0.6, "eval_loss": 0.69, "best_epoch": 2,
               "epochs_run": 3, "n_eval": 16, "label_names": LABELS}
    (run / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    (run / "loss_curve.png").write_bytes(b"\x89PNG\r\n\x1a\n not a real figure")
    return run


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return make_tiny_bert(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def exports(tiny, tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """head -> (run directory, export folder), one per head in POOLERS."""
    root = tmp_path_factory.mktemp("exports")
    out = {}
    for i, head in enumerate(sorted(POOLERS)):
        run = make_run(tiny, root / f"run-{head}", head, seed=i)
        out[head] = (run, export_model(run, root / f"export-{head}"))
    return out


FRESH_LOADER = textwrap.dedent("""
    import contextlib, io, json, sys, torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    jobs, pairs, out = json.loads(sys.argv[1]), json.loads(sys.argv[2]), sys.argv[3]
    results = {}
    for head, folder, remote in jobs:
        kwargs = {"trust_remote_code": True} if remote else {}
        model = AutoModelForSequenceClassification.from_pretrained(folder, **kwargs).eval()
        tok = AutoTokenizer.from_pretrained(folder, **kwargs)
        with torch.no_grad():
            logits = model(**tok(*pairs, padding=True, return_tensors="pt")).logits
        results[head] = {"logits": logits, "state": model.state_dict(),
                         "class": type(model).__name__, "module": type(model).__module__}
    results["poolbert imported"] = any(m.split(".")[0] == "poolbert" for m in sys.modules)
    for head, folder, _ in jobs:  # the model card's code blocks, run as a reader would
        card = open(folder + "/README.md", encoding="utf-8").read()
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            for block in card.split("```python")[1:]:
                exec(block.split("```")[0].replace("<user>/poolbert-rte-" + head, folder), {})
        results[head]["card_output"] = printed.getvalue()
    torch.save(results, out)
""")


@pytest.fixture(scope="module")
def fresh(exports, tmp_path_factory) -> dict:
    """Every export loaded by plain transformers in one fresh Python process (no poolbert)."""
    root = tmp_path_factory.mktemp("fresh")
    jobs = [(head, str(folder), head != "cls") for head, (_, folder) in exports.items()]
    env = {**os.environ, "HF_HOME": str(root / "hf"), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", FRESH_LOADER, json.dumps(jobs), json.dumps(PAIRS),
                           str(root / "out.pt")], env=env, cwd=root, timeout=300, text=True,
                          capture_output=True, stdin=subprocess.DEVNULL)  # a prompt can't wait
    assert done.returncode == 0, done.stderr[-3000:]
    results = torch.load(root / "out.pt", weights_only=False)
    results["output"] = done.stdout + done.stderr
    return results


def poolbert_logits(model_dir: Path) -> torch.Tensor:
    model, tok = load_model(str(model_dir))
    with torch.no_grad():
        return model(**tok(*PAIRS, padding=True, return_tensors="pt")).logits


# ----------------------------------------------------------------------------- export


@pytest.mark.parametrize("head", sorted(POOLERS))
def test_every_head_loads_with_plain_transformers_and_gives_the_same_logits(exports, fresh, head):
    run, _ = exports[head]
    assert not fresh["poolbert imported"]
    assert "Do you wish to run the custom code" not in fresh["output"]
    got = fresh[head]
    expected = poolbert_logits(run / "model")
    torch.testing.assert_close(got["logits"], expected, atol=1e-5, rtol=0)
    if head == "cls":
        assert got["class"] == "BertForSequenceClassification"
    else:
        assert got["class"] == "PoolbertForSequenceClassification"
        assert got["module"].startswith("transformers_modules.")  # the folder's own code


@pytest.mark.parametrize("head", sorted(POOLERS))
def test_every_parameter_of_the_reload_equals_the_saved_one(exports, fresh, head):
    run, _ = exports[head]
    saved = load_file(run / "model" / "model.safetensors")
    if head == "cls":
        saved = {_bert_key(k): v for k, v in saved.items()}
    reloaded = fresh[head]["state"]
    assert saved.keys() <= reloaded.keys()
    for key, value in saved.items():
        assert torch.equal(value, reloaded[key]), key


@pytest.mark.parametrize("head", sorted(POOLERS))
def test_the_cards_code_runs_as_written(fresh, head):
    lines = fresh[head]["card_output"].splitlines()
    assert len(lines) == 2  # by hand, then by pipeline
    assert lines[0].split()[0] in LABELS
    assert lines[1].startswith("[{'label': '")


def test_cls_exports_as_plain_bert_without_remote_code(exports):
    _, folder = exports["cls"]
    config = json.loads((folder / "config.json").read_text())
    assert config["architectures"] == ["BertForSequenceClassification"]
    assert config["model_type"] == "bert" and "auto_map" not in config
    assert config["id2label"] == {"0": "entailment", "1": "not_entailment"}
    assert config["classifier_dropout"] == 0.1
    assert not list(folder.glob("*.py"))
    assert "trust_remote_code" not in (folder / "README.md").read_text()


def test_other_heads_ship_their_code_and_auto_map(exports):
    _, folder = exports["mean_max"]
    config = json.loads((folder / "config.json").read_text())
    assert config["auto_map"] == {
        "AutoConfig": "modeling_poolbert.PoolbertConfig",
        "AutoModelForSequenceClassification": "modeling_poolbert.PoolbertForSequenceClassification",
    }
    assert config["pooling"] == "mean_max" and config["id2label"]["1"] == "not_entailment"
    assert {p.name for p in folder.glob("*.py")} == {"modeling_poolbert.py", "pooling.py"}
    assert "_name_or_path" not in config["encoder_config"]  # no local paths on the Hub
    assert "trust_remote_code=True" in (folder / "README.md").read_text()


def test_export_check_fails_loudly_on_a_changed_weight(exports):
    run, folder = exports["mean_max"]
    model, tok = load_model(str(run / "model"))
    with torch.no_grad():
        model.classifier.bias.add_(1.0)
    with pytest.raises(PoolbertError, match="classifier.bias"):
        verify_export(folder, model, tok, remote_code=True)


def test_export_check_fails_loudly_on_a_reinitialised_weight(exports, tmp_path):
    run, folder = exports["attention"]
    broken = shutil.copytree(folder, tmp_path / "broken")
    weights = load_file(broken / "model.safetensors")
    del weights["pooler.score.weight"]  # transformers would initialise it at random
    save_file(weights, broken / "model.safetensors", metadata={"format": "pt"})
    model, tok = load_model(str(run / "model"))
    with pytest.raises(PoolbertError, match="pooler.score.weight"):
        verify_export(broken, model, tok, remote_code=True)


def test_card_has_valid_hub_metadata(exports):
    run, folder = exports["mean_max"]
    text = (folder / "README.md").read_text(encoding="utf-8")
    meta = yaml.safe_load(text.split("---")[1])
    card = ModelCard.load(folder / "README.md")  # parses and validates through ModelCardData
    assert card.data.license == "apache-2.0" and meta["license"] == "apache-2.0"
    assert meta["datasets"] == ["nyu-mll/glue"]
    assert meta["metrics"] == ["accuracy", "f1"]
    assert meta["pipeline_tag"] == "text-classification"
    assert {"poolbert", "text-classification", "mean_max"} <= set(meta["tags"])
    results = meta["model-index"][0]["results"][0]
    assert results["dataset"]["type"] == "nyu-mll/glue" and results["dataset"]["config"] == "rte"
    assert {m["type"]: m["value"] for m in results["metrics"]} == {"accuracy": 0.625, "f1": 0.6}
    assert "base_model" not in meta  # a local folder is no Hub id
    assert (folder / "loss_curve.png").read_bytes() == (run / "loss_curve.png").read_bytes()
    assert "](loss_curve.png)" in text
    assert "learning_rate | 5e-05" in text and "seed 0" not in text


def make_study(exports, root: Path, means: dict | None) -> Path:
    study = root / "study"
    for head, value in (("cls", 0.70), ("mean_max", 0.66)):
        shutil.copytree(exports[head][0], study / "heads" / head / "best")
        best = {"head": head, "trial_number": 3, "value": value,
                "params": {"learning_rate": 5e-5}, "selection": "holdout"}
        (study / "heads" / head / "best.json").write_text(json.dumps(best))
        (study / "heads" / head / "dev_predictions.csv").write_text(  # tune scores dev once
            "id,label,prediction,prob_entailment,prob_not_entailment\n"
            "0,0,0,0.9,0.1\n1,0,1,0.4,0.6\n2,1,1,0.3,0.7\n3,1,1,0.2,0.8\n")
    heads = {h: {"n_trials": 8, "n_complete": 7, "n_pruned": 1, "n_failed": 0,
                 "best_value": v, "dev_accuracy_best": 0.61, "seeds": [1, 2, 3],
                 "mean": (means or {}).get(h), "std": 0.012, "ci95": [0.6, 0.7]}
             for h, v in (("cls", 0.70), ("mean_max", 0.66))}
    summary = {"task": "rte", "selection": "holdout", "metric": "eval_accuracy", "heads": heads,
               "select_on_description": "10% stratified holdout of train", "comparisons": []}
    (study / "summary.json").write_text(json.dumps(summary))
    return study


def test_best_head_is_the_best_seed_mean_else_the_best_tuning_value(exports, tmp_path):
    study = make_study(exports, tmp_path / "a", {"cls": 0.64, "mean_max": 0.68})
    assert pick_head(study, "best") == "mean_max"  # best seed mean, though cls tuned higher
    assert resolve_source(study, "cls").model_dir == study / "heads" / "cls" / "best" / "model"
    no_means = make_study(exports, tmp_path / "b", None)
    assert pick_head(no_means, "best") == "cls"
    with pytest.raises(PoolbertError, match="no head 'max'"):
        pick_head(no_means, "max")


def test_export_of_a_study_states_the_protocol(exports, tmp_path, capsys):
    study = make_study(exports, tmp_path, {"cls": 0.64, "mean_max": 0.68})
    out = tmp_path / "exported"
    assert main(["export", str(study), "--to", str(out), "--license", "mit"]) == 0
    text = (out / "README.md").read_text()
    meta = yaml.safe_load(text.split("---")[1])
    assert meta["license"] == "mit" and "mean_max" in meta["tags"]
    assert "| mean_max | 66.00 | 61.00 | 3 | 68.00 | 1.20 | [60.00, 70.00] |" in text  # in %
    assert "holdout" in text and "learning_rate (tuned)" in text
    scores = {m["type"]: m["value"] for m in meta["model-index"][0]["results"][0]["metrics"]}
    assert scores == pytest.approx({"accuracy": 0.75, "f1": (2 / 3 + 0.8) / 2})  # dev, not holdout
    assert "| accuracy (tuning holdout) | 0.6250 |" in text


def test_existing_target_is_refused_without_overwrite(exports, tmp_path, capsys):
    run, _ = exports["mean"]
    target = tmp_path / "out"
    target.mkdir()
    (target / "keep.txt").write_text("earlier work")
    assert main(["export", str(run), "--to", str(target)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert main(["export", str(run), "--to", str(target), "--overwrite"]) == 0
    assert (target / "model.safetensors").is_file() and not (target / "keep.txt").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left behind


def test_cards_render_the_whole_template(exports, tmp_path):
    """Every card (each head, a study, a bare model folder) is the template fully rendered: no
    Jinja left over, sections one blank line apart, one blank line at the end."""
    study = make_study(exports, tmp_path, {"cls": 0.64, "mean_max": 0.68})
    bare = shutil.copytree(exports["mean"][0] / "model", tmp_path / "bare")
    folders = [folder for _, folder in exports.values()]
    folders += [export_model(study, tmp_path / "study-export"), export_model(bare, tmp_path / "b")]
    for folder in folders:
        text = (folder / "README.md").read_text(encoding="utf-8")
        assert not any(mark in text for mark in ("{{", "}}", "{%", "%}", "{#", "#}")), folder
        assert "\n\n\n" not in text and text.endswith("`.\n\n"), folder
        assert text.startswith("---\n") and "\n---\n# " in text
    assert "No metrics were recorded with this model." in (tmp_path / "b" / "README.md").read_text()


def test_a_damaged_dev_predictions_file_costs_the_card_its_f1_only(exports, tmp_path):
    study = make_study(exports, tmp_path, {"cls": 0.64, "mean_max": 0.68})
    (study / "heads" / "mean_max" / "dev_predictions.csv").write_text("id,label\n0,zero\n")
    text = (export_model(study, tmp_path / "out") / "README.md").read_text()
    scores = {m["type"]: m["value"] for m in
              yaml.safe_load(text.split("---")[1])["model-index"][0]["results"][0]["metrics"]}
    assert scores == {"accuracy": 0.61}  # summary.json's dev accuracy, no F1
    assert "| accuracy (validation, scored once after selection) | 0.6100 |" in text


def test_evaluate_finds_models_as_export_does(exports, tmp_path):
    from poolbert.evaluation import locate

    run, folder = exports["mean_max"]
    assert locate(str(run)) == (run / "model", run / "config.json")
    assert locate(str(run / "model")) == (run / "model", run / "config.json")
    assert locate(str(folder)) == (folder, None)
    study = make_study(exports, tmp_path, {"cls": 0.64, "mean_max": 0.68})
    assert locate(str(study))[0] == study / "heads" / "mean_max" / "best" / "model"


# ----------------------------------------------------------------------------- push


def run_cli(args: list[str], env_extra: dict, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, **env_extra}
    return subprocess.run([sys.executable, "-m", "poolbert", *args], capture_output=True,
                          text=True, env=env, cwd=cwd, timeout=300, stdin=subprocess.DEVNULL)


def test_push_dry_run_lists_the_files_without_a_token(exports, capsys, monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "")
    run, _ = exports["mean_max"]
    assert main(["push", str(run), "--repo-id", "user/bert-rte-meanmax", "--dry-run"]) == 0
    out = capsys.readouterr().out
    for name in ("README.md", "config.json", "model.safetensors", "modeling_poolbert.py",
                 "pooling.py", "tokenizer.json", "loss_curve.png"):
        assert f"  {name}\n" in out
    assert " kB  " in out and "user/bert-rte-meanmax" in out
    _, folder = exports["cls"]  # an exported folder goes up as it is
    assert main(["push", str(folder), "--repo-id", "user/bert-rte-cls", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert f"from {folder} to user/bert-rte-cls" in out and "  model.safetensors\n" in out


def test_push_without_a_token_fails_in_one_line(exports, tmp_path):
    run, _ = exports["mean"]
    home = tmp_path / "hf"
    home.mkdir()
    result = run_cli(["push", str(run), "--repo-id", "user/x"],
                     {"HF_TOKEN": "", "HF_HOME": str(home)}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "poolbert: error: no Hugging Face token: set HF_TOKEN or run `hf auth login`"]


def test_push_network_failure_names_the_repo_and_never_shows_the_token(exports, tmp_path):
    run, _ = exports["mean"]
    home = tmp_path / "hf"
    home.mkdir()
    env = {"HF_TOKEN": FAKE_TOKEN, "HF_HOME": str(home), "TMPDIR": str(tmp_path),
           "HF_ENDPOINT": "http://127.0.0.1:9"}  # nothing listens there: a network failure
    result = run_cli(["push", str(run), "--repo-id", "user/x", "--private"], env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("poolbert: error: push to user/x failed:")
    assert FAKE_TOKEN not in result.stdout + result.stderr
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert FAKE_TOKEN.encode() not in path.read_bytes(), path


# ----------------------------------------------------------------------------- predict


def expected_probs(model_dir: Path, texts_a, texts_b=None) -> torch.Tensor:
    model, tok = load_model(str(model_dir))
    with torch.no_grad():
        return model(**tok(texts_a, texts_b, padding=True, return_tensors="pt")).logits.softmax(-1)


def test_predict_csv_pairs(exports, tmp_path, capsys):
    run, _ = exports["mean_max"]
    src = tmp_path / "pairs.csv"
    pd.DataFrame({"id": ["a", "b", "c"], "sentence1": PAIRS[0], "sentence2": PAIRS[1]}).to_csv(
        src, index=False)
    out = tmp_path / "preds.csv"
    assert main(["predict", str(run), "--input", str(src), "--output", str(out), "--quiet"]) == 0
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["id", "prediction", "prob_entailment", "prob_not_entailment"]
    assert list(frame["id"]) == ["a", "b", "c"]
    probs = expected_probs(run / "model", *PAIRS).numpy()
    assert abs(frame[["prob_entailment", "prob_not_entailment"]].to_numpy() - probs).max() < 1e-5
    assert list(frame["prediction"]) == [LABELS[i] for i in probs.argmax(1)]
    assert "wrote 3 predictions" in capsys.readouterr().out


def test_predict_streams_in_chunks_with_the_same_result(exports, tmp_path):
    run, _ = exports["attention"]
    src = tmp_path / "pairs.tsv"
    rows = pd.DataFrame({"sentence1": PAIRS[0] * 5, "sentence2": PAIRS[1] * 5})
    rows.to_csv(src, sep="\t", index=False)
    predict_file(run, src, tmp_path / "whole.csv", PredictOptions(quiet=True))
    predict_file(run, src, tmp_path / "chunked.csv", PredictOptions(quiet=True), chunk_size=4)
    assert (tmp_path / "whole.csv").read_text() == (tmp_path / "chunked.csv").read_text()
    assert len(pd.read_csv(tmp_path / "whole.csv")) == 15


def test_predict_jsonl_single_texts(tiny, tmp_path):
    run = make_run(tiny, tmp_path / "run", "mean", text_columns=["text"])
    src = tmp_path / "texts.jsonl"
    texts = PAIRS[0]
    src.write_text("".join(json.dumps({"text": t, "n": i}) + "\n" for i, t in enumerate(texts)))
    out = tmp_path / "preds.jsonl"
    assert main(["predict", str(run), "--input", str(src), "--output", str(out), "--quiet"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [set(r) for r in rows] == [{"prediction", "prob_entailment", "prob_not_entailment"}] * 3
    probs = expected_probs(run / "model", list(texts)).numpy()
    assert abs(pd.DataFrame(rows).iloc[:, 1:].to_numpy() - probs).max() < 1e-5


@pytest.mark.parametrize("head", ["cls", "mean_max"])
def test_predict_with_an_exported_folder_matches_the_run(exports, tmp_path, capsys, head):
    run, folder = exports[head]
    src = tmp_path / "pairs.csv"
    pd.DataFrame({"sentence1": PAIRS[0], "sentence2": PAIRS[1]}).to_csv(src, index=False)
    predict_file(run, src, tmp_path / "run.csv", PredictOptions(quiet=True))
    out = tmp_path / "export.csv"
    assert main(["predict", str(folder), "--input", str(src), "--output", str(out), "--quiet"]) == 0
    assert "custom code" not in "".join(capsys.readouterr())  # no trust_remote_code prompt
    a, b = pd.read_csv(tmp_path / "run.csv"), pd.read_csv(tmp_path / "export.csv")
    assert list(a["prediction"]) == list(b["prediction"])
    assert abs(a.iloc[:, 1:].to_numpy() - b.iloc[:, 1:].to_numpy()).max() < 1e-5


@pytest.mark.parametrize("head", ["cls", "mean_max"])
def test_evaluate_scores_an_exported_folder_as_the_run(exports, tmp_path, capsys, head):
    """cls exports as plain BertForSequenceClassification: `poolbert evaluate` still loads it."""
    from helpers import tiny_glue_dir

    run, folder = exports[head]
    data = tiny_glue_dir(tmp_path / "data", 8, 16)
    scores = []
    for target in (run, folder):
        capsys.readouterr()
        assert main(["evaluate", str(target), "--data-dir", str(data), "--max-length", "32",
                     "--quiet"]) == 0
        scores.append(json.loads(capsys.readouterr().out))
    assert scores[0]["eval_loss"] == pytest.approx(scores[1]["eval_loss"], abs=1e-5)
    assert scores[0]["eval_accuracy"] == scores[1]["eval_accuracy"]


def test_predict_reads_every_table_format_that_training_reads(exports, tmp_path):
    run, _ = exports["mean"]
    rows = pd.DataFrame({"id": [7, 8, 9], "sentence1": PAIRS[0], "sentence2": PAIRS[1]})
    rows.to_csv(tmp_path / "in.csv", index=False)
    rows.to_parquet(tmp_path / "in.parquet", index=False)
    rows.to_json(tmp_path / "in.json", orient="records")
    for name in ("in.csv", "in.parquet", "in.json"):
        predict_file(run, tmp_path / name, tmp_path / f"{name}.out.csv", PredictOptions(quiet=True),
                     chunk_size=2)
    expected = (tmp_path / "in.csv.out.csv").read_text()
    assert (tmp_path / "in.parquet.out.csv").read_text() == expected
    assert (tmp_path / "in.json.out.csv").read_text() == expected


BAD_INPUTS = {
    "missing file": (None, "file not found"),
    "missing column": (b"id,sentence1,hypothesis\n1,a cat,a dog\n", "missing column 'sentence2'"),
    "empty text": (b"sentence1,sentence2\na cat,a dog\nthe dog, \n",
                   "empty text in column 'sentence2' at row 2"),
    "not utf-8": (b"sentence1,sentence2\ncaf\xe9,a dog\n", "not UTF-8"),
}


@pytest.mark.parametrize("case", sorted(BAD_INPUTS))
def test_predict_bad_input_is_one_line_and_writes_nothing(exports, tmp_path, capsys, case):
    run, _ = exports["mean"]
    content, message = BAD_INPUTS[case]
    src = tmp_path / "in.csv"
    if content is not None:
        src.write_bytes(content)
    out = tmp_path / "out" / "preds.csv"
    out.parent.mkdir()
    assert main(["predict", str(run), "--input", str(src), "--output", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and str(src) in err[0]
    assert not list(out.parent.iterdir())  # neither the output nor a temporary file


def test_glue_submission_for_the_whole_rte_test_set(exports, rte_dir, tmp_path):
    run, _ = exports["mean"]
    out = tmp_path / "RTE.tsv"
    assert main(["predict", str(run), "--task", "rte", "--split", "test", "--data-dir",
                 str(rte_dir), "--glue-submission", str(out), "--batch-size", "256",
                 "--quiet"]) == 0
    lines = out.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == ""  # newline-terminated
    lines = lines[:-1]
    assert len(lines) == 3001 and lines[0] == "index\tprediction"
    rows = [line.split("\t") for line in lines[1:]]
    assert [int(i) for i, _ in rows] == list(range(3000))
    assert {label for _, label in rows} <= {"entailment", "not_entailment"}
