"""Metrics on a split: loss, accuracy, macro-F1, confusion matrix, runtime and throughput."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedModel

from . import interrupts
from .data import Encoded, collate, eval_batches, to_device
from .device import attention_kernels, autocast, eval_batch_size, pad_multiple


def classification_metrics(labels: np.ndarray, preds: np.ndarray, num_labels: int) -> dict:
    """Accuracy, macro-F1 and the confusion matrix (rows = true label, columns = predicted)."""
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (labels, preds), 1)
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros_like(tp), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros_like(tp), where=confusion.sum(1) > 0)
    denom = precision + recall
    f1 = np.divide(2 * precision * recall, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "eval_accuracy": float((labels == preds).mean()) if len(labels) else 0.0,
        "eval_f1": float(f1.mean()),
        "eval_confusion": confusion.tolist(),
    }


@dataclass
class Scores:
    metrics: dict
    probs: np.ndarray  # (N, C), in the split's original order
    preds: np.ndarray  # (N,)


@dataclass(frozen=True)
class Scoring:
    """How a split is scored: where, in which precision, padded with which token."""

    device: torch.device
    precision: str = "fp32"
    pad_id: int = 0
    batch_size: int | None = None  # None: the device's default (device.eval_batch_size)
    attention: str = "auto"


@torch.no_grad()
def predict_probs(model: PreTrainedModel, enc: Encoded,
                  how: Scoring) -> tuple[np.ndarray, float, int]:
    """Class probabilities in original order, the summed loss over labelled rows, and steps.
    Results stay on the device until the last batch: one read at the end, not one per batch."""
    model.eval()
    device = how.device
    order, probs, losses = [], [], []
    with attention_kernels(how.attention, device):
        for indices in eval_batches(enc, eval_batch_size(how.batch_size, device)):
            interrupts.check()  # batches sorted by length: little padding
            host = collate(enc, indices, how.pad_id, pad_multiple(device),
                           cap=int(enc.lengths.max()))
            batch = to_device(host, device)
            labels = batch.pop("labels")
            with autocast(device, how.precision):
                logits = model(**batch).logits.float()  # (B, C)
            if (enc.labels[indices] >= 0).any():  # unlabelled rows (-1: GLUE test): no loss
                losses.append(torch.nn.functional.cross_entropy(
                    logits, labels, ignore_index=-1, reduction="sum"))
            probs.append(torch.softmax(logits, dim=-1))
            order.append(indices)
    out = np.zeros((len(enc.labels), model.config.num_labels), dtype=np.float32)
    if probs:
        out[np.concatenate(order)] = torch.cat(probs).cpu().numpy()
    total_loss = float(torch.stack(losses).sum()) if losses else 0.0
    return out, total_loss, len(probs)


def evaluate(model: PreTrainedModel, enc: Encoded, how: Scoring) -> Scores:
    """Score a labelled split; metric names follow transformers' Trainer (`eval_*`)."""
    start = time.perf_counter()
    probs, total_loss, steps = predict_probs(model, enc, how)
    return scores_of(enc, probs, total_loss, steps, time.perf_counter() - start)


def scores_of(enc: Encoded, probs: np.ndarray, total_loss: float, steps: int,
              runtime: float) -> Scores:
    """The metrics of class probabilities (N, C) on a labelled split."""
    preds = probs.argmax(axis=1)
    n = len(enc.labels)
    metrics = {
        "eval_loss": total_loss / max(n, 1),
        **classification_metrics(enc.labels, preds, probs.shape[1]),
        "eval_runtime": runtime,
        "eval_samples_per_second": n / runtime if runtime > 0 else 0.0,
        "eval_steps_per_second": steps / runtime if runtime > 0 else 0.0,
        "n_eval": n,
    }
    return Scores(metrics=metrics, probs=probs, preds=preds)
