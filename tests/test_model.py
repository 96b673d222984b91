"""The model: every head saves and loads exactly, and starts from float32 pretrained weights."""

from __future__ import annotations

import pytest
import torch
from helpers import tiny_bert_dir
from transformers import AutoModel, AutoTokenizer

from poolbert.encoder import load_encoder
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
    model = build_model(load_encoder(str(tiny_dir)), pooling, LABELS, dropout=0.1).eval()
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
    model = build_model(load_encoder(str(tiny_dir)), "cls", LABELS)
    assert torch.equal(model.pooler.dense.weight, encoder.pooler.dense.weight)
    assert model.encoder.pooler is None  # the head's own pooler replaces the encoder's


def test_half_precision_checkpoint_is_trained_in_float32(tiny_dir, tmp_path):
    AutoModel.from_pretrained(tiny_dir).half().save_pretrained(tmp_path / "fp16")
    model = build_model(load_encoder(str(tmp_path / "fp16")), "mean", LABELS)
    assert {p.dtype for p in model.parameters()} == {torch.float32}


def test_labels_give_a_cross_entropy_loss(tiny_dir):
    model = build_model(load_encoder(str(tiny_dir)), "attention", LABELS).eval()
    out = model(**batch(tiny_dir), labels=torch.tensor([0, 1]))
    expected = torch.nn.functional.cross_entropy(out.logits, torch.tensor([0, 1]))
    torch.testing.assert_close(out.loss, expected)


def test_model_class_is_registered_for_save_pretrained(tiny_dir, tmp_path):
    model = build_model(load_encoder(str(tiny_dir)), "mean_max", LABELS)
    model.save_pretrained(tmp_path / "m")
    again = PoolbertForSequenceClassification.from_pretrained(tmp_path / "m")
    assert again.classifier.in_features == 2 * again.config.hidden_size


def test_a_fresh_model_holds_the_checkpoint_weights_without_a_random_encoder(tiny_dir,
                                                                             monkeypatch):
    from poolbert.config import RunConfig
    from poolbert.resources import Resources

    config = RunConfig()
    config.model.model_name_or_path = str(tiny_dir)
    config.model.pooling = "mean_max"
    resources = Resources(data=type("D", (), {"label_names": LABELS,
                                              "problem_type": "single_label"})(), tokenizer=None,
                          cache=None, base_encoder=AutoModel.from_pretrained(tiny_dir),
                          model_name=str(tiny_dir))
    drawn = [0]  # elements of random numbers drawn while the model is built
    for name in ("normal_", "uniform_"):
        original = getattr(torch.Tensor, name)

        def counting(self, *args, _original=original, **kwargs):
            drawn[0] += self.numel()
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, counting)
    model = resources.fresh_model(config)
    head = sum(p.numel() for p in model.classifier.parameters())
    # the classifier only (drawn by nn.Linear, then by _init_weights): no throwaway encoder
    assert 0 < drawn[0] <= 2 * head
    checkpoint = AutoModel.from_pretrained(tiny_dir).state_dict()
    encoder = model.encoder.state_dict()
    assert set(encoder) == {k for k in checkpoint if not k.startswith("pooler.")}
    for key, value in encoder.items():
        assert torch.equal(value, checkpoint[key]), key


def test_the_ready_4d_mask_gives_the_same_outputs_as_the_2d_mask(tiny_dir):
    from poolbert.model import encoder_mask

    model = build_model(load_encoder(str(tiny_dir)), "mean", LABELS).eval()
    inputs = batch(tiny_dir)
    assert inputs["attention_mask"].min() == 0  # the batch holds padding
    ready = encoder_mask(model.encoder, inputs["attention_mask"])
    assert ready.shape == (2, 1, 1, inputs["input_ids"].shape[1]) and ready.dtype == torch.bool
    with torch.no_grad():
        plain = model.encoder(**inputs).last_hidden_state
        given = model.encoder(**{**inputs, "attention_mask": ready}).last_hidden_state
    real = inputs["attention_mask"].bool()
    torch.testing.assert_close(given[real], plain[real], rtol=1e-5, atol=1e-6)
