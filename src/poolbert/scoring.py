"""ScoreOptions a split: the model's logits in one pass, then the metrics of the problem type
(poolbert.metrics), with runtime and throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from . import interrupts
from .data import Encoded, collate, eval_batches, to_device
from .device import attention_kernels, autocast, eval_batch_size, pad_multiple
from .metrics import (
    best_threshold,
    classification_metrics,
    multilabel_metrics,
    probabilities,
    regression_metrics,
)
from .model import task_loss


@dataclass
class Scores:
    metrics: dict
    probs: np.ndarray  # (N, C) probabilities of logits / temperature; regression (N, 1) values
    preds: np.ndarray  # (N,) class | (N, C) 0/1 labels | (N,) values, in the split's order
    logits: np.ndarray  # (N, C) as the model gave them


@dataclass(frozen=True)
class ScoreOptions:
    """How a split is scored: where, in which precision, padded with which token, and how
    logits become decisions."""

    device: torch.device
    precision: str = "fp32"
    pad_id: int = 0
    batch_size: int | None = None  # None: the device's default (device.eval_batch_size)
    attention: str = "auto"
    problem_type: str = "single_label"
    temperature: float = 1.0  # calibration (metrics.fit_temperature)
    threshold: float | None = 0.5  # multi-label; None: the best on these very examples
    threshold_metric: str = "micro_f1"  # what that best threshold maximises (the run's metric)


@torch.no_grad()
def predict_logits(model: PreTrainedModel, enc: Encoded,
                   how: ScoreOptions) -> tuple[np.ndarray, float, int]:
    """Logits in the split's order, the summed loss over labelled rows, and steps. Results
    stay on the device until the last batch: one read at the end, not one per batch."""
    model.eval()
    device = how.device
    order, logits_out, losses = [], [], []
    # one autocast region for the whole split: it keeps its bf16/fp16 copies of the weights
    # from the first batch on, where one region per batch cast every weight again per batch
    with attention_kernels(how.attention, device), autocast(device, how.precision):
        for indices in eval_batches(enc, eval_batch_size(how.batch_size, device)):
            interrupts.check()  # batches sorted by length: little padding
            host = collate(enc, indices, how.pad_id, pad_multiple(device),
                           cap=int(enc.lengths.max()))
            batch = to_device(host, device)
            labels = batch.pop("labels")
            logits = model(**batch).logits.float()  # (B, C)
            losses.append(task_loss(logits, labels, how.problem_type, reduction="sum"))
            logits_out.append(logits)
            order.append(indices)
    out = np.zeros((len(enc.labels), model.config.num_labels), dtype=np.float32)
    if logits_out:
        out[np.concatenate(order)] = torch.cat(logits_out).cpu().numpy()
    total_loss = float(torch.stack(losses).sum()) if losses else 0.0
    return out, total_loss, len(logits_out)


def score_split(model: PreTrainedModel, enc: Encoded, how: ScoreOptions) -> Scores:
    """Score a labelled split; metric names follow transformers' Trainer (`eval_*`)."""
    start = time.perf_counter()
    logits, total_loss, steps = predict_logits(model, enc, how)
    return score_logits(enc.labels, logits, total_loss, steps, time.perf_counter() - start, how)


def score_logits(labels: np.ndarray, logits: np.ndarray, total_loss: float, steps: int,
              runtime: float, how: ScoreOptions) -> Scores:
    """The metrics of logits (N, C) against a labelled split's labels."""
    probs = probabilities(logits, how.problem_type, how.temperature)
    metrics: dict
    if how.problem_type == "regression":
        preds = logits[:, 0]
        metrics = regression_metrics(labels.astype(np.float64), preds.astype(np.float64))
        per_loss = len(labels)
    elif how.problem_type == "multi_label":
        threshold = (how.threshold if how.threshold is not None else
                     best_threshold(labels, probs, how.threshold_metric))
        preds = (probs >= threshold).astype(np.float32)
        metrics = {**multilabel_metrics(labels, preds), "eval_threshold": threshold}
        per_loss = labels.size
    else:
        preds = probs.argmax(axis=1)
        metrics = classification_metrics(labels, preds, probs.shape[1])
        per_loss = len(labels)
    n = len(labels)
    metrics = {
        "eval_loss": total_loss / max(per_loss, 1),
        **metrics,
        "eval_runtime": runtime,
        "eval_samples_per_second": n / runtime if runtime > 0 else 0.0,
        "eval_steps_per_second": steps / runtime if runtime > 0 else 0.0,
        "n_eval": n,
    }
    return Scores(metrics=metrics, probs=probs, preds=preds, logits=logits)
