"""Packed trials on the CPU: a pack's members are the same runs as alone, each failing alone."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_glue_dir
from transformers import BertConfig, BertModel, BertTokenizer

from poolbert.config import RunConfig
from poolbert.pack import Pack, train_together
from poolbert.resources import Resources
from poolbert.training import fit

WORDS = "the a cat dog sat ran far away man woman yes no park red blue big small".split()


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A tiny BERT with every dropout off, so a run is a function of its settings alone."""
    root = tmp_path_factory.mktemp("pack")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    BertTokenizer(vocab={w: i for i, w in enumerate(vocab)}).save_pretrained(root / "model")
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=64,
                        hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    BertModel(config).save_pretrained(root / "model")
    return root / "model", tiny_glue_dir(root / "data", 40, 24)


def config_for(setup, **train) -> RunConfig:
    config = RunConfig()
    config.model.model_name_or_path = str(setup[0])
    config.data.data_dir = str(setup[1])
    config.model.dropout = 0.0
    config.train.batch_size = 8
    config.train.device = "cpu"
    for key, value in train.items():
        if key == "pooling":
            config.model.pooling = value
        else:
            setattr(config.train, key, value)
    return config.validate()


TRIALS = [  # what a search space may vary per member
    {"learning_rate": 3e-3, "max_length": 32, "num_train_epochs": 3, "warmup_ratio": 0.0},
    {"learning_rate": 1e-3, "max_length": 16, "num_train_epochs": 2, "warmup_ratio": 0.3,
     "weight_decay": 0.1, "max_grad_norm": 0.05},
    {"learning_rate": 5e-4, "max_length": 24, "num_train_epochs": 4, "weight_decay": 0.0},
]


@pytest.mark.parametrize("pooling", ["cls", "mean_max", "attention"])
def test_a_pack_of_three_trains_each_member_as_it_would_train_alone(setup, pooling):
    configs = [config_for(setup, pooling=pooling, **t) for t in TRIALS]
    resources = Resources.load(configs[0])
    packed = train_together(configs, resources)
    for config, together in zip(configs, packed, strict=True):
        alone = fit(config, resources, quiet=True)
        assert not isinstance(together, str), together
        steps = [r["loss"] for r in alone.history if r["type"] == "step"]
        got = [r["loss"] for r in together.history if r["type"] == "step"]
        assert len(got) == len(steps) == config.train.num_train_epochs * math.ceil(40 / 8)
        for a, b in zip(steps, got, strict=True):
            assert b == pytest.approx(a, rel=1e-4)
        assert [r["lr"] for r in together.history if r["type"] == "step"] == pytest.approx(
            [r["lr"] for r in alone.history if r["type"] == "step"])
        assert together.metrics["best_epoch"] == alone.metrics["best_epoch"]
        for result in (alone, together):  # each row of train once per epoch, in the throughput
            m = result.metrics
            assert m["train_samples_per_second"] * m["train_runtime"] == pytest.approx(
                config.train.num_train_epochs * 40)
        assert (together.scores.preds == alone.scores.preds).all()
        mine, theirs = together.model.state_dict(), alone.model.state_dict()
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-5, atol=1e-5,
                                       msg=f"{pooling} {key}")


def test_a_member_whose_loss_becomes_nan_leaves_and_the_others_finish(setup, monkeypatch):
    configs = [config_for(setup, **t) for t in TRIALS]
    resources = Resources.load(configs[0])
    alone = fit(configs[2], resources, quiet=True)
    original = Pack._member_losses

    def nan_for_member_one(self, logits, labels, reduce="mean"):
        losses = original(self, logits, labels, reduce)
        if reduce == "mean" and self.members[1:2] and self.members[1].key == 1 \
                and self.members[1].step >= 2:
            losses = losses * torch.tensor([1.0, float("nan"), 1.0][:len(losses)])
        return losses

    monkeypatch.setattr(Pack, "_member_losses", nan_for_member_one)
    results = train_together(configs, resources)
    assert results[1] == "training loss became nan at step 3 (epoch 1)"
    assert not isinstance(results[0], str) and not isinstance(results[2], str)
    theirs = alone.model.state_dict()
    for key, value in results[2].model.state_dict().items():
        torch.testing.assert_close(value, theirs[key], rtol=1e-5, atol=1e-5)
