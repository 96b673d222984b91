"""Test helpers: a tiny random BERT (no download), small RTE-shaped data with a learnable rule,
and stand-ins for `train` used by the tune tests."""

from __future__ import annotations

import random
from pathlib import Path

import pandas as pd
import torch
from transformers import BertConfig, BertModel, BertTokenizer

WORDS = ("the a cat dog sat ran far away man woman walks moves someone park house car red blue "
         "green big small not yes happy sad eats sleeps reads book tree river city bird").split()


def tiny_bert_dir(path: Path) -> Path:
    """Save a 2-layer, 32-wide random BertModel and a WordPiece tokenizer into `path`."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    tokenizer = BertTokenizer(vocab={word: i for i, word in enumerate(vocab)}, do_lower_case=True)
    config = BertConfig(vocab_size=len(vocab), hidden_size=32, num_hidden_layers=2,
                        num_attention_heads=2, intermediate_size=64, max_position_embeddings=128)
    with torch.random.fork_rng(devices=[]):  # the same weights whichever tests ran before
        torch.manual_seed(0)
        BertModel(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_glue_dir(path: Path, n_train: int = 64, n_val: int = 32, seed: int = 0) -> Path:
    """RTE-shaped parquet splits; label 0 (entailment) iff the hypothesis contains 'yes'."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    for split, n in (("train", n_train), ("validation", n_val)):
        rows = []
        for i in range(n):
            label = i % 2
            neutral = [w for w in WORDS[:-5] if w != "yes"]
            premise = " ".join(rng.choices(neutral, k=rng.randint(3, 12)))
            hypothesis = rng.choices(neutral, k=rng.randint(2, 6))
            hypothesis.insert(rng.randint(0, len(hypothesis)), "yes" if label == 0 else "no")
            rows.append({"sentence1": premise, "sentence2": " ".join(hypothesis),
                         "label": label, "idx": i})
        pd.DataFrame(rows).to_parquet(path / f"{split}.parquet", index=False)
    return path


# ----------------------------------------------------------------------------- tune test doubles


def tiny_run_config(model_dir: Path, data_dir: Path, **train: object):
    """A RunConfig on the tiny model and data: small batches, fixed epochs, CPU."""
    from poolbert.config import RunConfig

    config = RunConfig()
    config.model.model_name_or_path = str(model_dir)
    config.data.data_dir = str(data_dir)
    config.train.batch_size = 8
    config.train.num_train_epochs = 2
    config.train.max_length = 32
    config.train.device = "cpu"
    for key, value in train.items():
        setattr(config.train, key, value)
    return config


def fake_result(config, resources, accuracy: float, epochs_run: int):
    """A TrainResult as `train` returns it, without training: predictions hit `accuracy`."""
    import numpy as np

    from poolbert.scoring import Scores
    from poolbert.training import TrainResult

    val = resources.data.validation
    n, classes = len(val), len(resources.data.label_names)
    n_right = int(round(accuracy * n))
    preds = val.labels.copy()
    preds[n_right:] = (preds[n_right:] + 1) % classes
    probs = np.full((n, classes), 0.1 / max(classes - 1, 1), dtype=np.float32)
    probs[np.arange(n), preds] = 0.9
    metrics = {"eval_loss": 0.5, "eval_accuracy": float((preds == val.labels).mean()),
               "eval_f1": 0.5, "eval_confusion": [[0] * classes] * classes, "n_eval": n}
    history = [{"type": "eval", "epoch": e, "step": e, "eval_loss": 0.5,
                "eval_accuracy": metrics["eval_accuracy"], "eval_f1": 0.5}
               for e in range(1, epochs_run + 1)]
    full = {**metrics, "epoch": float(epochs_run), "best_epoch": epochs_run,
            "epochs_run": epochs_run, "train_runtime": 0.0,
            "label_names": list(resources.data.label_names)}
    scores = Scores(metrics, probs, preds, np.log(probs))
    return TrainResult(full, history, resources.fresh_model(config), scores, epochs_run)


def lr_accuracy(config) -> float:
    """A smooth, deterministic 'accuracy' of the settings: best near learning_rate 5e-5."""
    import math

    return max(0.0, 0.9 - 0.2 * abs(math.log10(config.train.learning_rate / 5e-5)))


def fake_fit(config, resources, on_epoch=None, quiet=False, epoch_selection="best"):
    """Stands in for poolbert.training.train: reports lr_accuracy each epoch, trains nothing.

    When $POOLBERT_TEST_BARRIER names a folder, the first call of each process waits (up to
    60 s) until $POOLBERT_TEST_WORKERS processes have called it, so workers really overlap;
    $POOLBERT_TEST_SLEEP adds seconds per call.
    """
    import os
    import time

    barrier = os.environ.get("POOLBERT_TEST_BARRIER")
    if barrier:
        mine = Path(barrier) / str(os.getpid())
        if not mine.exists():
            mine.touch()
            want = int(os.environ.get("POOLBERT_TEST_WORKERS", "2"))
            deadline = time.time() + 60
            while len(list(Path(barrier).iterdir())) < want and time.time() < deadline:
                time.sleep(0.05)
    time.sleep(float(os.environ.get("POOLBERT_TEST_SLEEP", "0")))
    accuracy = lr_accuracy(config)
    for epoch in range(1, config.train.num_train_epochs + 1):
        if on_epoch is not None:
            on_epoch(epoch, {"eval_accuracy": accuracy})
    return fake_result(config, resources, accuracy, config.train.num_train_epochs)
