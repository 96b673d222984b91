"""Metrics on a split: loss, accuracy, macro-F1, confusion matrix, runtime and throughput."""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass

import numpy as np
import torch

from . import interrupts
from .data import Encoded, collate, eval_batches


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(precision: str, device: torch.device) -> str:
    """auto: bf16 autocast where the GPU has it, else fp16; CPU stays fp32 (autocast is slower)."""
    if precision != "auto":
        return precision
    if device.type != "cuda":
        return "fp32"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def eval_batch_size(requested: int | None, device: torch.device) -> int:
    """The batch size to score with: the one asked for, else 128 on CUDA and 32 on CPU, where
    larger batches are slower (2-core CPU, MiniLM, RTE dev: 76 examples/s at 32, 50 at 128)."""
    if requested is not None:
        return requested
    return 128 if device.type == "cuda" else 32


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """Mixed precision on top of float32 master weights; a no-op for fp32."""
    if precision == "fp32":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


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


@torch.no_grad()
def predict_probs(
    model: torch.nn.Module,
    enc: Encoded,
    batch_size: int | None,
    device: torch.device,
    precision: str,
    pad_id: int,
) -> tuple[np.ndarray, float, int]:
    """Class probabilities in original order, the summed loss over labelled rows, and steps.
    `batch_size` None: the device's default (`eval_batch_size`)."""
    model.eval()
    batch_size = eval_batch_size(batch_size, device)
    probs = np.zeros((len(enc.labels), model.config.num_labels), dtype=np.float32)
    total_loss, steps = 0.0, 0
    for indices in eval_batches(enc, batch_size):  # sorted by length: little padding
        interrupts.check()
        batch = {k: v.to(device) for k, v in collate(enc, indices, pad_id).items()}
        labels = batch.pop("labels")
        with autocast(device, precision):
            logits = model(**batch).logits.float()  # (B, C)
        labelled = labels >= 0
        if labelled.any():
            loss = torch.nn.functional.cross_entropy(
                logits[labelled], labels[labelled], reduction="sum"
            )
            total_loss += loss.item()
        probs[indices] = torch.softmax(logits, dim=-1).cpu().numpy()
        steps += 1
    return probs, total_loss, steps


def evaluate(
    model: torch.nn.Module,
    enc: Encoded,
    batch_size: int | None,
    device: torch.device,
    precision: str,
    pad_id: int,
) -> Scores:
    """Score a labelled split; metric names follow transformers' Trainer (`eval_*`)."""
    start = time.perf_counter()
    probs, total_loss, steps = predict_probs(model, enc, batch_size, device, precision, pad_id)
    if device.type == "cuda":
        torch.cuda.synchronize()
    runtime = time.perf_counter() - start
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
