"""The peer: the recipe people write for the report's study, with nothing but transformers.

`BertForSequenceClassification` + `transformers.Trainer`, the data tokenised with
`padding="max_length"`, default optimiser, fp32 unless --bf16; for studies
`Trainer.hyperparameter_search(backend="optuna")`. The rows are a plain torch Dataset, so the
peer runs where the `datasets` library is not installed (a bare GPU machine).

    python bench/peer.py train --model DIR --data-dir RTE_DIR --epochs 3 --seed 1
    python bench/peer.py study --model DIR --data-dir RTE_DIR --grid 2e-5,3e-5 --grid-epochs 2,3

Prints one JSON line: the measured numbers, timed inside this process (the caller times the
whole process as well).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

HERE = Path(__file__).resolve().parent


class Rows(torch.utils.data.Dataset):
    """Tokenised examples as Trainer takes them: one dict of tensors per row."""

    def __init__(self, encoded: dict, labels: np.ndarray) -> None:
        self.encoded = {k: torch.tensor(v) for k, v in encoded.items()}
        self.labels = torch.tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> dict:
        return {**{k: v[i] for k, v in self.encoded.items()}, "labels": self.labels[i]}


def read_split(data_dir: str, split: str, limit: int | None = None) -> pd.DataFrame:
    frame = pd.read_parquet(Path(data_dir) / f"{split}.parquet")
    if limit:  # the same fixed subset poolbert's loader takes (seed 0, file order kept)
        chosen = np.sort(np.random.default_rng(0).permutation(len(frame))[:limit])
        frame = frame.iloc[chosen]
    return frame


def dataset(tokenizer, frame: pd.DataFrame, max_length: int) -> Rows:
    encoded = tokenizer(list(frame["sentence1"]), list(frame["sentence2"]), truncation=True,
                        padding="max_length", max_length=max_length)
    return Rows(dict(encoded), frame["label"].to_numpy())


def make_trainer(args: argparse.Namespace, tmp: str, epochs: float, eval_strategy: str):
    from transformers import (
        AutoTokenizer,
        BertForSequenceClassification,
        Trainer,
        TrainingArguments,
    )

    tokenizer = AutoTokenizer.from_pretrained(args.model)
    train = dataset(tokenizer, read_split(args.data_dir, "train", args.train_samples),
                    args.max_length)
    dev = dataset(tokenizer, read_split(args.data_dir, "validation"), args.max_length)

    def model_init(trial=None):
        return BertForSequenceClassification.from_pretrained(args.model, num_labels=2,
                                                             dtype=torch.float32)

    def accuracy(pred) -> dict:
        return {"accuracy": float((np.argmax(pred.predictions, -1) == pred.label_ids).mean())}

    targs = TrainingArguments(
        output_dir=tmp, per_device_train_batch_size=args.batch_size,
        per_device_eval_batch_size=args.batch_size, num_train_epochs=epochs,
        learning_rate=args.learning_rate, seed=args.seed, save_strategy="no",
        logging_strategy="no", report_to="none", disable_tqdm=True, eval_strategy=eval_strategy,
        bf16=args.bf16, use_cpu=not torch.cuda.is_available(),
    )
    return Trainer(model_init=model_init, args=targs, train_dataset=train, eval_dataset=dev,
                   compute_metrics=accuracy)


def run_train(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args, tmp, args.epochs, "no")
        out = trainer.train()
        ev = trainer.evaluate()
    return {"train_examples_per_s": out.metrics["train_samples_per_second"],
            "train_runtime_s": out.metrics["train_runtime"],
            "eval_examples_per_s": ev["eval_samples_per_second"],
            "dev_accuracy": ev["eval_accuracy"]}


def optuna_storage(folder: str | Path, database: str, journal: str):
    """A study storage in `folder`: the SQLite file `database` where SQLAlchemy is installed,
    else Optuna's journal file `journal` (a bare GPU machine may have optuna from its
    pure-Python wheel and no SQLAlchemy)."""
    import optuna

    if importlib.util.find_spec("sqlalchemy"):
        return f"sqlite:///{folder}/{database}"
    from optuna.storages.journal import JournalFileBackend

    return optuna.storages.JournalStorage(JournalFileBackend(f"{folder}/{journal}"))


def run_study(args: argparse.Namespace) -> dict:
    """Every (learning rate, epochs) pair of the grid once: the same trials poolbert runs."""
    import optuna

    lrs = [float(x) for x in args.grid.split(",")]
    epochs = [int(x) for x in args.grid_epochs.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        trainer = make_trainer(args, tmp, max(epochs), "epoch")
        storage = optuna_storage(tmp, "peer.db", "peer.log")
        start = time.perf_counter()
        best = trainer.hyperparameter_search(
            direction="maximize", backend="optuna", n_trials=len(lrs) * len(epochs),
            hp_space=lambda t: {
                "learning_rate": t.suggest_float("learning_rate", min(lrs), max(lrs), log=True),
                "num_train_epochs": t.suggest_categorical("num_train_epochs", epochs)},
            compute_objective=lambda m: m["eval_accuracy"],
            sampler=optuna.samplers.GridSampler({"learning_rate": lrs, "num_train_epochs": epochs},
                                                seed=0),
            pruner=optuna.pruners.NopPruner(), storage=storage, study_name="peer",
        )
        wall = time.perf_counter() - start
        trials = optuna.load_study(study_name="peer", storage=storage).trials
    return {"study_wall_s": wall, "best_value": best.objective,
            "epochs_run": sum(len(t.intermediate_values) for t in trials),
            "n_trials": len(trials)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("kind", choices=["train", "study"])
    p.add_argument("--model", required=True, help="model folder (BERT weights and tokenizer)")
    p.add_argument("--data-dir", required=True, help="RTE parquet folder")
    p.add_argument("--train-samples", type=int, default=None, help="default: all of train")
    p.add_argument("--epochs", type=float, default=3)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--bf16", action="store_true")
    p.add_argument("--grid", default="2e-5,3e-5,5e-5,7e-5,1e-4,1.5e-4",
                   help="study: learning rates")
    p.add_argument("--grid-epochs", default="2,3", help="study: epochs")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = run_train(args) if args.kind == "train" else run_study(args)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
