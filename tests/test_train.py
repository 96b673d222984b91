"""The training loop on a tiny random BERT: it learns, it is deterministic, it keeps the best epoch."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.config import RunConfig
from poolbert.losses import NonFiniteLoss
from poolbert.model import PoolbertForSequenceClassification
from poolbert.resources import Resources
from poolbert.scoring import ScoreOptions, score_split
from poolbert.training import fit


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    return tiny_bert_dir(root / "model"), tiny_glue_dir(root / "data", 96, 48)


def config_for(setup, **train) -> RunConfig:
    model_dir, data_dir = setup
    config = RunConfig()
    config.data.data_dir = str(data_dir)
    config.model.model_name_or_path = str(model_dir)
    config.model.pooling = "max"
    config.model.dropout = 0.0
    config.train.learning_rate = 3e-3
    config.train.num_train_epochs = 4
    config.train.batch_size = 8
    config.train.max_length = 32
    config.train.warmup_ratio = 0.0
    for key, value in train.items():
        setattr(config.train, key, value)
    return config.validate()


def test_smoke_train_learns_a_learnable_task(setup):
    result = fit(config_for(setup), quiet=True)
    steps = [r for r in result.history if r["type"] == "step"]
    evals = [r for r in result.history if r["type"] == "eval"]
    assert len(evals) == 4 and len(steps) == 4 * math.ceil(96 / 8)
    first, last = sum(r["loss"] for r in steps[:6]) / 6, sum(r["loss"] for r in steps[-6:]) / 6
    assert last < first
    assert result.metrics["eval_accuracy"] >= 0.8  # majority rate of the data is 0.5
    for key in ("eval_loss", "eval_accuracy", "eval_f1", "eval_confusion", "eval_runtime",
                "eval_samples_per_second", "eval_steps_per_second", "epoch"):
        assert key in result.metrics


def test_same_seed_gives_identical_runs(setup):
    config = config_for(setup, num_train_epochs=2)
    resources = Resources.load(config)
    a = fit(config, resources, quiet=True)
    b = fit(config, resources, quiet=True)
    timing = ("eval_runtime", "eval_samples_per_second", "eval_steps_per_second",
              "train_runtime", "train_samples_per_second")

    def untimed(history):
        return [{k: v for k, v in r.items() if k not in timing} for r in history]

    assert untimed(a.history) == untimed(b.history)
    assert a.metrics["eval_accuracy"] == b.metrics["eval_accuracy"]
    assert a.metrics["eval_loss"] == b.metrics["eval_loss"]


def test_returned_model_holds_the_best_epoch(setup):
    config = config_for(setup, num_train_epochs=3, learning_rate=1e-2)
    resources = Resources.load(config)
    result = fit(config, resources, quiet=True)
    evals = [r for r in result.history if r["type"] == "eval"]
    best = max(evals, key=lambda r: r["eval_accuracy"])
    assert result.metrics["best_epoch"] == best["epoch"]
    enc = resources.cache.get(resources.data.validation, config.train.max_length)
    rescored = score_split(result.model, enc, ScoreOptions(torch.device("cpu"), "fp32", 0, 64))
    assert rescored.metrics["eval_accuracy"] == best["eval_accuracy"]


def test_epoch_hook_sees_each_epoch_and_can_stop_the_run(setup):
    seen = []

    class Stop(Exception):
        pass

    def hook(epoch, metrics):
        seen.append((epoch, metrics["eval_accuracy"]))
        if epoch == 2:
            raise Stop

    with pytest.raises(Stop):
        fit(config_for(setup), on_epoch=hook, quiet=True)
    assert [e for e, _ in seen] == [1, 2]


def test_gradient_accumulation_counts_optimizer_steps(setup):
    result = fit(config_for(setup, num_train_epochs=1, gradient_accumulation_steps=3), quiet=True)
    steps = [r for r in result.history if r["type"] == "step"]
    assert len(steps) == math.ceil(math.ceil(96 / 8) / 3)


def test_non_finite_loss_stops_the_run(setup, monkeypatch):
    original = PoolbertForSequenceClassification.forward

    def nan_forward(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.training:  # the training loss comes from these logits
            out.logits = out.logits * float("nan")
        return out

    monkeypatch.setattr(PoolbertForSequenceClassification, "forward", nan_forward)
    with pytest.raises(NonFiniteLoss, match="nan"):
        fit(config_for(setup, num_train_epochs=1), quiet=True)


def test_eval_batch_size_defaults_by_device_and_a_given_one_is_kept():
    from poolbert.device import eval_batch_size
    from poolbert.errors import PoolbertError

    assert eval_batch_size(None, torch.device("cpu")) == 32  # larger batches are slower on CPU
    assert eval_batch_size(None, torch.device("cuda")) == 128
    assert eval_batch_size(7, torch.device("cpu")) == 7
    config = RunConfig.from_dict(RunConfig().to_dict())  # a saved config with the default
    assert config.train.eval_batch_size is None
    config.train.eval_batch_size = 0
    with pytest.raises(PoolbertError, match="eval_batch_size must be positive"):
        config.validate()


HOST_READS = ("item", "tolist", "__bool__", "cpu", "numpy", "__float__")


def count_host_reads(monkeypatch) -> list[str]:
    """Record each read of a tensor's value by poolbert or transformers code (on a GPU, each one
    makes the host wait for the device). Torch's own CPU internals are not counted: its CPU
    optimiser reads the step count, which the fused CUDA one does not."""
    import sys

    reads: list[str] = []
    for name in HOST_READS:
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name, **kwargs):
            caller = sys._getframe(1).f_code.co_filename
            if "/poolbert/" in caller or "/transformers/" in caller:
                reads.append(f"{_name} {caller.rsplit('/', 1)[-1]}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return reads


def test_training_reads_the_device_a_few_times_per_epoch_not_per_step(setup, monkeypatch):
    config = config_for(setup, num_train_epochs=2, batch_size=2)
    resources = Resources.load(config)
    reads = count_host_reads(monkeypatch)
    result = fit(config, resources, quiet=True)
    steps = [r for r in result.history if r["type"] == "step"]
    assert len(steps) == 2 * 48  # every step still has its loss in the history
    assert all(math.isfinite(r["loss"]) for r in steps)
    # per epoch: a loss read every SYNC_EVERY steps and at the epoch's end, 3 after evaluation
    assert len(reads) <= 2 * (48 // 32 + 1 + 3), reads


def test_a_nan_loss_stops_the_run_at_the_next_read_naming_its_first_step(setup, monkeypatch):
    original = PoolbertForSequenceClassification.forward
    calls = [0]

    def nan_from_step_5(self, *args, **kwargs):
        out = original(self, *args, **kwargs)
        if self.training:  # training steps, not evaluation
            calls[0] += 1
            if calls[0] >= 5:
                out.logits = out.logits * float("nan")
        return out

    monkeypatch.setattr(PoolbertForSequenceClassification, "forward", nan_from_step_5)
    with pytest.raises(NonFiniteLoss, match=r"became nan at step 5 \(epoch 1\)"):
        fit(config_for(setup, num_train_epochs=3, batch_size=2), quiet=True)
    from poolbert.losses import SYNC_EVERY

    assert calls[0] == SYNC_EVERY  # found at the first read, long before the run's 144 steps


def test_each_epoch_records_its_training_time(setup):
    result = fit(config_for(setup, num_train_epochs=2), quiet=True)
    evals = [r for r in result.history if r["type"] == "eval"]
    assert all(r["train_runtime"] > 0 for r in evals)
    assert all(r["train_samples_per_second"] == pytest.approx(96 / r["train_runtime"])
               for r in evals)
    assert sum(r["train_runtime"] for r in evals) == pytest.approx(result.metrics["train_runtime"])
