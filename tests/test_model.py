"""The model: every head saves and loads exactly, and starts from float32 pretrained weights."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_bert_dir
from transformers import AutoModel, AutoTokenizer

from poolbert.model import PoolbertForSequenceClassification, build_model, load_model
from poolbert.pooling import POOLERS

LABELS = ["entailment", "not_entailment"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    return tiny_bert_dir(tmp_path_factory.mktemp("tiny"))


def batch(tiny_dir):
    tok = AutoTokenizer.from_pretrained(tiny_dir)
    return tok(["the cat sat", "a dog"], ["a cat", "the dog ran far away"], padding=True,
               return_tensors="pt")


@pytest.mark.parametrize("pooling", sorted(POOLERS))
def test_save_load_round_trip_gives_identical_logits(tiny_dir, tmp_path, pooling):
    torch.manual_seed(0)
    model = build_model(str(tiny_dir), pooling, LABELS, dropout=0.1).eval()
    inputs = batch(tiny_dir)
    with torch.no_grad():
        before = model(**inputs).logits
    model.save_pretrained(tmp_path / "m")
    AutoTokenizer.from_pretrained(tiny_dir).save_pretrained(tmp_path / "m")
    loaded, _ = load_model(str(tmp_path / "m"))
    with torch.no_grad():
        after = loaded(**inputs).logits
    assert torch.equal(before, after)
    saved, reloaded = model.state_dict(), loaded.state_dict()
    assert saved.keys() == reloaded.keys()
    for key in saved:
        assert torch.equal(saved[key], reloaded[key]), key
    assert loaded.config.pooling == pooling
    assert loaded.config.id2label == {0: "entailment", 1: "not_entailment"}


def test_cls_head_starts_from_the_checkpoint_pooler(tiny_dir):
    encoder = AutoModel.from_pretrained(tiny_dir)
    model = build_model(str(tiny_dir), "cls", LABELS)
    assert torch.equal(model.pooler.dense.weight, encoder.pooler.dense.weight)
    assert model.encoder.pooler is None  # the head's own pooler replaces the encoder's


def test_half_precision_checkpoint_is_trained_in_float32(tiny_dir, tmp_path):
    AutoModel.from_pretrained(tiny_dir).half().save_pretrained(tmp_path / "fp16")
    model = build_model(str(tmp_path / "fp16"), "mean", LABELS)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_labels_give_a_cross_entropy_loss(tiny_dir):
    model = build_model(str(tiny_dir), "attention", LABELS).eval()
    out = model(**batch(tiny_dir), labels=torch.tensor([0, 1]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1]))
    torch.testing.assert_close(out.loss, expected)


def test_model_class_is_registered_for_save_pretrained(tiny_dir, tmp_path):
    model = build_model(str(tiny_dir), "mean_max", LABELS)
    model.save_pretrained(tmp_path / "m")
    again = PoolbertForSequenceClassification.from_pretrained(tmp_path / "m")
    assert again.classifier.in_features == 2 * again.config.hidden_size
