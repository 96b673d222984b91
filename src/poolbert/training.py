"""One fine-tuning run, top to bottom: data, model, optimiser, the epoch loop, the kept epoch.

`fit()` knows nothing of Optuna: a study passes `on_epoch(epoch, metrics)`, which may raise to
stop the run (pruning). `Resources` (poolbert.resources) holds what many runs share: the
tokenizer, the token cache and the base encoder weights, read from disk once per worker.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from . import interrupts
from .calibration import calibrate, planned_calibration
from .config import RunConfig, TrainConfig
from .data import Encoded, LoadedData, collate, to_device, train_batches
from .device import (
    attention_kernels,
    autocast,
    check_precision,
    fused_optimizer,
    pad_multiple,
    precision_reason,
    resolve_device,
    resolve_precision,
)
from .epochs import EpochSelector
from .layout import Predictions, write_run
from .losses import SYNC_EVERY, StepLog, read_losses
from .metrics import Criterion, criterion
from .model import CLS_POOLER, PoolbertForSequenceClassification, calibration_of, task_loss
from .resources import Resources
from .scoring import ScoreOptions, Scores, score_split
from .tracking import History, RecordHook
from .weights import loss_weights

EpochHook = Callable[[int, dict], None]


@dataclass
class TrainResult:
    metrics: dict  # the kept epoch's eval metrics plus training statistics
    history: list[dict]
    model: PoolbertForSequenceClassification  # holding the kept epoch's weights
    scores: Scores  # validation scores at the kept epoch
    epochs_run: int

    def predictions(self, data: LoadedData) -> Predictions:
        """The validation set's predictions at the kept epoch (predictions.csv)."""
        val = data.validation
        return Predictions(val.ids, val.labels, self.scores.preds, self.scores.probs,
                           list(data.label_names), data.problem_type)

    def save(self, folder: Path, record: dict, resources: Resources,
             save_model: bool = True) -> None:
        """Write the run directory (poolbert.layout.write_run) into `folder`; its config.json
        says what the `cls` head started from (model.CLS_POOLER) and the precision the run
        computed in and why (the setting may say auto)."""
        start = getattr(self.model.config, "cls_pooler", None)
        if start:
            record = {**record, "cls_pooler": CLS_POOLER[start]}
        used = {"precision_resolved": self.metrics.get("precision"),
                "precision_reason": self.metrics.get("precision_reason")}
        record = {**record, **{k: v for k, v in used.items() if v is not None}}
        write_run(folder, record, self.metrics, self.history, self.predictions(resources.data),
                  self.model if save_model else None, resources.tokenizer)


def make_optimizer(model: torch.nn.Module, lr: float, weight_decay: float, fused: bool):
    """AdamW; no weight decay on biases and LayerNorm weights (as BERT was trained)."""
    decay: list[torch.nn.Parameter] = []
    no_decay: list[torch.nn.Parameter] = []
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


def fit(
    config: RunConfig,
    resources: Resources | None = None,
    on_epoch: EpochHook | None = None,
    quiet: bool = False,
    epoch_selection: str = "best",
    on_record: RecordHook | None = None,  # sees each history row as it is recorded (tracking)
) -> TrainResult:
    """Fine-tune one model; keep the epoch with the best validation --metric ("best"), or the
    last epoch ("last": nothing chosen on the validation set, so its score stays unbiased).
    With --early-stopping-patience N the run stops after N epochs without a better metric."""
    t = config.train
    resources = resources or Resources.load(config)
    judge = criterion(config, resources.data)
    selector = EpochSelector.of(judge, epoch_selection, t.early_stopping_patience)
    transformers.set_seed(t.seed)  # python, numpy, torch: head init, dropout and batch order
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision, device)
    check_precision(precision, device)
    model = resources.fresh_model(config, device)
    train_enc = resources.cache.get(resources.data.train, t.max_length)
    val_enc = resources.cache.get(resources.data.validation, t.max_length)
    plan = planned_calibration(config, selector.keep_last)
    # multi-label: each epoch's threshold is the best for the run's metric on the selection set
    # (0.5 on a dev set)
    how = ScoreOptions(device, precision, resources.pad_id, t.eval_batch_size, t.attention,
                       judge.problem_type, threshold=plan.threshold, threshold_metric=judge.metric)
    steps = Steps(model, config, resources, train_enc, device, precision, History(on_record))
    best_state: dict | None = None
    with attention_kernels(t.attention, device):
        for epoch in range(1, t.num_train_epochs + 1):
            epoch_time = steps.run_epoch(epoch, quiet)
            scores = score_split(model, val_enc, how)
            steps.history.append(eval_record(epoch, steps.step, scores, epoch_time,
                                             len(train_enc.labels)))
            if selector.update(epoch, scores) and not selector.keep_last:
                # a copy on the device, not in pageable host memory: no transfer per epoch
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            if not quiet:
                tqdm.write(f"epoch {epoch}: eval_loss {scores.metrics['eval_loss']:.4f} "
                           f"{judge.key} {judge.value(scores.metrics):.4f}")
            if on_epoch is not None:
                on_epoch(epoch, scores.metrics)  # may raise to stop the run (a pruned trial)
            if selector.stop:
                break
    if best_state is not None:  # "last" keeps the model's own weights
        model.load_state_dict(best_state)
    assert selector.scores is not None  # validate() asks for one epoch or more
    kept = calibrate(model, selector.scores, val_enc.labels, how, plan)
    metrics = run_metrics(kept, judge, selector.epoch, epoch, scores, steps.train_time,
                          steps.seen, resources, str(device), precision,
                          precision_reason(t.precision, device))
    metrics.update(score_extra(model, resources, config, how))
    return TrainResult(metrics, steps.history, model.cpu(), kept, epoch)


class Steps:
    """The optimisation of one run: AdamW with its linear schedule, loss scaling (fp16),
    gradient accumulation and clipping; the step count, examples seen and training time.
    `run_epoch` trains one epoch."""

    def __init__(self, model: PoolbertForSequenceClassification, config: RunConfig,
                 resources: Resources, enc: Encoded, device: torch.device, precision: str,
                 history: History) -> None:
        t = self.t = config.train
        self.model, self.enc, self.device, self.precision = model, enc, device, precision
        self.step_model = torch.compile(model) if t.compile else model
        self.problem_type = resources.data.problem_type
        self.weights = loss_weights(config, resources.data, device)
        self.pad_id = resources.pad_id
        self.pad, self.cap = pad_multiple(device, t.compile), int(enc.lengths.max())
        total_updates, warmup_updates = schedule_steps(t, len(enc.labels))
        self.optimizer = make_optimizer(model, t.learning_rate, t.weight_decay,
                                        fused_optimizer(device))
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, warmup_updates,
                                                         total_updates)
        self.scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
        self.history = history
        self.log = StepLog([history])
        self.step, self.seen, self.train_time = 0, 0, 0.0

    def run_epoch(self, epoch: int, quiet: bool) -> float:
        """Train one epoch; returns its seconds (the GPU's too: the last loss is read)."""
        t = self.t
        self.model.train()
        start = time.perf_counter()
        batches = train_batches(self.enc, t.batch_size, t.seed, epoch, t.group_by_length)
        bar = tqdm(batches, desc=f"epoch {epoch}/{t.num_train_epochs}", disable=quiet,
                   leave=False)
        micro_losses = []  # the micro-batch losses of the optimiser step being built
        for i, indices in enumerate(bar):
            interrupts.check()  # a deferred Ctrl-C stops here, between steps
            micro_losses.append(self._forward_backward(indices))
            self.seen += len(indices)
            if (i + 1) % t.gradient_accumulation_steps and i + 1 < len(batches):
                continue
            self._update(epoch, epoch - 1 + (i + 1) / len(batches), micro_losses)
            micro_losses = []
            if self.step % SYNC_EVERY == 0:
                bar.set_postfix(loss=f"{read_losses(self.log):.4f}")
        read_losses(self.log)  # waits for the epoch's last step
        elapsed = time.perf_counter() - start
        self.train_time += elapsed
        return elapsed

    def _forward_backward(self, indices: np.ndarray) -> torch.Tensor:
        """One micro-batch's loss (batch mean, on the device) and its gradients."""
        batch = to_device(collate(self.enc, indices, self.pad_id, self.pad, self.cap),
                          self.device)
        labels = batch.pop("labels")
        with autocast(self.device, self.precision):
            logits = self.step_model(**batch).logits
        loss = task_loss(logits, labels, self.problem_type, self.weights)
        self.scaler.scale(loss / self.t.gradient_accumulation_steps).backward()
        return loss.detach()

    def _update(self, epoch: int, position: float, micro_losses: list[torch.Tensor]) -> None:
        """The optimiser step: unscale, clip, step, schedule; its loss into the step log."""
        self.scaler.unscale_(self.optimizer)
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.t.max_grad_norm)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.log.add([(self.step, epoch, position, self.scheduler.get_last_lr()[0])],
                     micro_losses)


def schedule_steps(t: TrainConfig, n_train: int) -> tuple[int, int]:
    """(optimizer updates in the whole run, warm-up updates) of the linear schedule; a packed
    member's schedule is the same (pack.Pack.add)."""
    updates_per_epoch = math.ceil(math.ceil(n_train / t.batch_size) / t.gradient_accumulation_steps)
    total = updates_per_epoch * t.num_train_epochs
    return total, math.ceil(t.warmup_ratio * total)


def run_metrics(kept: Scores, judge: Criterion, best_epoch: int, epochs_run: int, last: Scores,
                train_time: float, seen: int, resources: Resources, device: str,
                precision: str, why: str | None = None) -> dict:
    """metrics.json of a run: the kept epoch's validation metrics and training statistics;
    `why`: the precision's reason (device.precision_reason), kept as precision_reason."""
    return {
        **kept.metrics,
        "metric": judge.metric,
        "epoch": float(best_epoch),
        "best_epoch": best_epoch,
        "epochs_run": epochs_run,
        "last_eval_value": judge.value(last.metrics),
        "train_runtime": train_time,
        "train_samples_per_second": seen / train_time if train_time > 0 else 0.0,
        "n_train": len(resources.data.train),
        "label_names": list(resources.data.label_names),
        "problem_type": judge.problem_type,
        "device": device,
        "precision": precision,
        **({"precision_reason": why} if why else {}),
    }


def eval_record(epoch: int, step: int, scores: Scores, epoch_time: float, n_train: int) -> dict:
    """An epoch's row of history.jsonl: its validation metrics and its training speed."""
    lists = ("eval_confusion", "eval_precision", "eval_recall")
    return {"type": "eval", "epoch": epoch, "step": step,
            **{k: v for k, v in scores.metrics.items() if k not in lists},
            "train_runtime": epoch_time, "train_samples_per_second": n_train / epoch_time}


def score_extra(model: PoolbertForSequenceClassification, resources: Resources,
                config: RunConfig, how: ScoreOptions) -> dict:
    """The kept model on the task's further validation splits (MNLI mismatched), as
    eval_<split>_<metric>."""
    out = {}
    temperature, threshold = calibration_of(model.config)
    scoring = replace(how, temperature=temperature, threshold=threshold)
    for name, split in resources.data.extra.items():
        enc = resources.cache.get(split, config.train.max_length)
        found = score_split(model, enc, scoring).metrics
        out.update({f"eval_{name}_{k.removeprefix('eval_')}": v for k, v in found.items()
                    if k in ("eval_loss", "eval_accuracy", "eval_f1", "eval_mcc",
                             "eval_binary_f1")})
    return out
