"""Every architecture in the matrix through what a user does with it: train with every head,
export and reload with plain transformers, ONNX, predict with both backends, a packed pair
equal to its runs alone, and `poolbert tune --pack 2`; an encoder that cannot be packed is
refused before any trial."""

from __future__ import annotations

import json
import math

import numpy as np
import optuna
import pandas as pd
import pytest
import torch
from architectures import ARCHITECTURES, build, cached_model, sentences
from helpers import tiny_glue_dir

from poolbert import fusion
from poolbert.cli import main
from poolbert.config import RunConfig
from poolbert.exporting import export_model
from poolbert.pack import train_together
from poolbert.pooling import POOLERS
from poolbert.prediction import PredictOptions, predict_file
from poolbert.resources import Resources
from poolbert.training import fit

optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_glue_dir(tmp_path_factory.mktemp("matrix-data"), 16, 8)


def run_config(model, data, pooling: str = "cls", **train) -> RunConfig:
    config = RunConfig()
    config.model.model_name_or_path = str(model)
    config.data.data_dir = str(data)
    config.model.pooling = pooling
    config.model.dropout = 0.0
    config.train.batch_size = 8
    config.train.num_train_epochs = 1
    config.train.max_length = 32
    config.train.learning_rate = 3e-3
    config.train.device = "cpu"
    for key, value in train.items():
        setattr(config.train, key, value)
    return config.validate()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_every_head_trains_exports_reloads_and_predicts(arch, data, tmp_path_factory, tmp_path):
    model = cached_model(arch, tmp_path_factory)
    resources = Resources.load(run_config(model, data))
    results = {head: fit(run_config(model, data, head), resources, quiet=True)
               for head in POOLERS}
    for head, result in results.items():
        losses = [r["loss"] for r in result.history if r["type"] == "step"]
        assert len(losses) == 2 and all(math.isfinite(x) for x in losses), head
        assert result.metrics["n_eval"] == 8
    run = tmp_path / "run"
    results["attention"].save(run, run_config(model, data, "attention").to_dict(), resources)
    export = export_model(run, tmp_path / "export", onnx=True)  # reload + ONNX checked inside
    info = json.loads((export / "poolbert.json").read_text())
    assert info["onnx"]["check"]["max_abs_logit_diff"] <= 1e-4
    texts = sentences(12, seed=5)
    pairs = tmp_path / "pairs.csv"
    pd.DataFrame({"sentence1": texts[:6], "sentence2": texts[6:]}).to_csv(pairs, index=False)
    found = {}
    for backend in ("torch", "onnxruntime"):
        out = tmp_path / f"{backend}.csv"
        assert predict_file(export, pairs, out, PredictOptions(backend=backend, quiet=True)) == 6
        found[backend] = pd.read_csv(out)
    assert (found["torch"].prediction == found["onnxruntime"].prediction).all()
    probs = [c for c in found["torch"].columns if c.startswith("prob_")]
    assert np.abs(found["torch"][probs].to_numpy()
                  - found["onnxruntime"][probs].to_numpy()).max() <= 1e-4
    cls_run = tmp_path / "cls-run"
    results["cls"].save(cls_run, run_config(model, data).to_dict(), resources)
    assert json.loads((cls_run / "config.json").read_text())["cls_pooler"].startswith(
        "dense + tanh on the first token")
    export_model(cls_run, tmp_path / "cls-export")  # reloaded with plain transformers inside


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_a_packed_pair_trains_each_member_as_it_would_train_alone(arch, data, tmp_path_factory):
    """Different heads, learning rates, lengths (ModernBERT: longer than its local window),
    epochs and warm-up in one pack; dropout off, so each run is a function of its settings."""
    model = cached_model(arch, tmp_path_factory)
    configs = [run_config(model, data, "cls", num_train_epochs=2),
               run_config(model, data, "attention", learning_rate=1e-3, max_length=24,
                          warmup_ratio=0.5, weight_decay=0.1, max_grad_norm=0.05)]
    resources = Resources.load(configs[0])
    assert resources.pack_refusal() is None
    for config, together in zip(configs, train_together(configs, resources), strict=True):
        alone = fit(config, resources, quiet=True)
        assert not isinstance(together, str), together
        steps = [r["loss"] for r in alone.history if r["type"] == "step"]
        got = [r["loss"] for r in together.history if r["type"] == "step"]
        assert len(got) == len(steps) == 2 * config.train.num_train_epochs
        assert got == pytest.approx(steps, rel=1e-4)
        mine, theirs = together.model.state_dict(), alone.model.state_dict()
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-5, atol=1e-5,
                                       msg=f"{arch} {key}")


@pytest.fixture
def no_report(monkeypatch):
    """The study's HTML report draws the same figures whatever the encoder: not redrawn here."""
    from poolbert import api

    monkeypatch.setattr(api, "_draw_study_report", lambda folder, storage: None)


def tune(model, data, out, *extra: str) -> int:
    """One trial of `cls` and one of `attention`: with --pack 2, one pack of both heads."""
    return main(["tune", "--model", str(model), "--data-dir", str(data), "--output-dir",
                 str(out), "--poolings", "cls,attention", "--space", "quick", "--n-trials", "1",
                 "--final-seeds", "0", "--select-on", "dev", "--batch-size", "8", "--device",
                 "cpu", "--quiet", *extra])


@pytest.mark.slow
@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_tune_with_pack_2_completes(arch, data, tmp_path_factory, tmp_path, no_report):
    model = cached_model(arch, tmp_path_factory)
    assert tune(model, data, tmp_path / "study", "--pack", "2") == 0
    summary = json.loads((tmp_path / "study" / "summary.json").read_text())
    assert summary["budget"]["pack"] == 2
    for head in ("cls", "attention"):
        assert summary["heads"][head]["n_complete"] == 1, head


@pytest.fixture(scope="module")
def convolved(tmp_path_factory):
    """DeBERTa-v2 with its convolution layer (the v2-xlarge checkpoints): a Conv1d, which
    fusion does not know."""
    return build("deberta-v2", tmp_path_factory.mktemp("conv") / "model", dropout=False,
                 conv_kernel_size=3)


def test_an_encoder_that_cannot_be_packed_is_refused_before_any_trial(convolved, data, tmp_path,
                                                                      capsys, no_report):
    resources = Resources.load(run_config(convolved, data))
    assert resources.pack_refusal() == "Conv1d (encoder.conv.conv) holds weights of its own"
    out = tmp_path / "study"
    assert tune(convolved, data, out, "--pack", "2") == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith("cannot be packed: Conv1d (encoder.conv.conv) holds weights of its "
                            "own (use --pack 1)")
    if (out / "study.db").exists():  # no trial was asked for
        studies = optuna.get_all_study_summaries(f"sqlite:///{out / 'study.db'}")
        assert all(study.n_trials == 0 for study in studies)


def test_without_pack_the_cuda_default_falls_back_to_one_for_it(convolved, data, monkeypatch):
    from poolbert.tuning import TuneConfig, pack_worker

    resources = Resources.load(run_config(convolved, data))
    monkeypatch.setattr(pack_worker, "resolve_device", lambda name: torch.device("cuda"))
    tc = TuneConfig(run=run_config(convolved, data), output_dir="unused", heads=["cls"], pack=None)
    assert pack_worker.pack_size(tc, resources) == 1


def test_a_fused_forward_that_breaks_is_found_before_any_trial(data, tmp_path_factory,
                                                               monkeypatch):
    """Without its relative-position fusion DeBERTa fails inside a fused forward (what `tune
    --pack 2` did to DeBERTa-v3 trials): the probe finds it and refuses the pack instead."""
    resources = Resources.load(run_config(cached_model("deberta-v2", tmp_path_factory), data))
    monkeypatch.setattr(fusion, "_fuse_relative_positions", lambda attention: None)
    reason = resources.pack_refusal()
    assert reason is not None and reason.startswith("a fused forward fails (RuntimeError: ")
