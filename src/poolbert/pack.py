"""Packed training: K runs of one encoder trained together, one forward and backward for all.

A study's trial is a small job for a GPU (batch 16 of ~70 tokens): alone it mostly waits on
kernel launches. A pack fuses K runs' encoders (poolbert.fusion) so each launch does K runs'
work. Every member keeps what makes it its own run: its head, its learning rate and schedule,
warm-up, weight decay, classifier dropout, max_length, epochs, batch order, gradient clipping,
its best epoch and its history. With dropout off, a member's losses and weights are those of
the same run trained alone by `fit()` (tests/test_pack.py), up to float rounding.

Members share the model, the training data and the batch size, so every member has the same
number of steps per epoch: members join only between epochs, and one epoch of the pack is one
epoch of every member. A member whose loss turns non-finite leaves at the next loss read; on
out-of-memory the pack sheds its second half and retries the step. `fit()` knows nothing of
packs; a study's worker (poolbert.tuning.pack_worker) decides who joins and who leaves.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import numpy as np
import torch

from . import interrupts
from .calibration import calibrate, planned_calibration
from .config import RunConfig
from .data import (
    Encoded,
    bucket_width,
    collate_blocks,
    eval_batches,
    to_device,
    train_batches,
)
from .device import (
    attention_kernels,
    autocast,
    eval_batch_size,
    free_memory,
    is_out_of_memory,
    pad_multiple,
)
from .epochs import EpochSelector
from .fused_heads import FusedHeads, member_losses, member_state, place_head
from .fusion import fuse
from .losses import SYNC_EVERY, StepLog
from .metrics import criterion
from .model import drop_encoder_pooler, encoder_inputs
from .pack_members import EpochOutcome, Member
from .resources import Resources
from .row_adamw import RowSchedule, adamw_rows
from .scoring import ScoreOptions, Scores, score_logits
from .tracking import History, RecordHook
from .training import (
    TrainResult,
    eval_record,
    run_metrics,
    schedule_steps,
    score_extra,
)
from .weights import loss_weights


class Pack:
    """Runs of one encoder on one device, trained together one epoch at a time."""

    def __init__(self, resources: Resources, device: torch.device, precision: str,
                 batch_size: int, accumulation: int, attention: str = "auto") -> None:
        if precision == "fp16":  # a loss scaler per member is not worth it: bf16 or fp32
            raise ValueError("packed training runs in fp32 or bf16, not fp16")
        self.resources, self.device, self.precision = resources, device, precision
        self.batch_size, self.accumulation, self.attention = batch_size, accumulation, attention
        base = copy.deepcopy(resources.encoder_on(device))  # fused in place below
        drop_encoder_pooler(base)  # each head has its own pooler
        config: Any = base.config  # the layers' count as the model's weighted_layers takes it
        self.heads = FusedHeads(config.hidden_size, getattr(config, "num_hidden_layers", 12) + 1,
                                len(resources.data.label_names)).to(device)
        self.encoder, self.flat, self.shape = fuse(base, "encoder.", self.heads.fused_modules())
        self.base_row = self.flat.data[0].clone()  # a new member's row, before its head
        self.shell = resources.encoder_shell()  # what a new head is built on (no weights)
        self.members: list[Member] = []
        self.schedule = RowSchedule.of([], device)
        self.weights: torch.Tensor | None = None  # (K, C) the members' loss weights
        self._set_rows(self.flat.data[:0], self.flat.data[:0], self.flat.data[:0])

    # ----------------------------------------------------------------- membership

    def add(self, key: Any, config: RunConfig, epoch_selection: str = "best",
            on_record: RecordHook | None = None) -> Member:
        """A new run (between epochs): the base encoder's weights and a fresh head, drawn from
        the run's seed exactly as `fit()` draws it; it keeps its best epoch or its last, as
        `fit()`'s `epoch_selection`."""
        t = config.train
        if t.batch_size != self.batch_size or t.gradient_accumulation_steps != self.accumulation:
            raise ValueError("the members of a pack share batch size and gradient accumulation")
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(t.seed)
            head = self.resources.fresh_model(config, encoder=copy.deepcopy(self.shell))
        row = self.base_row.clone()
        place_head(self.flat.state_of(row), {name: value for name, value in
                                             head.state_dict().items()
                                             if not name.startswith("encoder.")})
        train_enc = self.resources.cache.get(self.resources.data.train, t.max_length)
        val_enc = self.resources.cache.get(self.resources.data.validation, t.max_length)
        total, warmup = schedule_steps(t, len(train_enc.labels))
        selector = EpochSelector.of(criterion(config, self.resources.data), epoch_selection,
                                    t.early_stopping_patience)
        member = Member(key, config, train_enc, val_enc, total, warmup, selector,
                        loss_weights(config, self.resources.data, self.device),
                        history=History(on_record))
        zeros = self.flat.data.new_zeros(1, self.flat.data.shape[1])
        self.members.append(member)
        self._set_rows(torch.cat([self.flat.data, row[None]]),
                       torch.cat([self.exp_avg, zeros]), torch.cat([self.exp_avg_sq, zeros]))
        return member

    def remove(self, members: list[Member]) -> None:
        keep = [i for i, m in enumerate(self.members) if m not in members]
        self.members = [self.members[i] for i in keep]
        self._set_rows(self.flat.data[keep], self.exp_avg[keep], self.exp_avg_sq[keep])

    def _set_rows(self, params: torch.Tensor, exp_avg: torch.Tensor,
                  exp_avg_sq: torch.Tensor) -> None:
        """The members' weights and AdamW moments, one row each; and what the steps read of
        the members, made on the device once here rather than in every step."""
        self.flat.data = params.contiguous()
        self.flat.grad = None  # bind() makes a zeroed one of the new shape
        self.flat.bind()
        self.exp_avg, self.exp_avg_sq = exp_avg.contiguous(), exp_avg_sq.contiguous()
        members = self.members
        self.schedule = RowSchedule.of(
            [(m.config.train.learning_rate, m.warmup, m.total_updates,
              m.config.train.weight_decay, m.config.train.max_grad_norm, m.step)
             for m in members], self.device)
        self.heads.set_members([m.config.model.pooling for m in members],
                               [m.config.model.dropout for m in members], self.device)
        weights = [m.weights for m in members]
        self.weights = None if all(w is None for w in weights) else torch.stack(
            [w if w is not None else torch.ones(len(self.resources.data.label_names),
                                                device=self.device) for w in weights])

    # ----------------------------------------------------------------- one epoch

    def run_epoch(self) -> list[EpochOutcome]:
        """Train every member one epoch, then score each on its validation set. Members that
        failed (non-finite loss, out of memory) leave during the epoch, with an outcome."""
        for m in self.members:
            m.batches = train_batches(m.train_enc, self.batch_size, m.config.train.seed,
                                      m.epoch + 1, m.config.train.group_by_length)
        outcomes: list[EpochOutcome] = []
        log = StepLog([m.history for m in self.members])
        n_batches = len(self.members[0].batches)
        starts = range(0, n_batches, self.accumulation)  # each optimiser step's first batch
        start = time.perf_counter()
        with attention_kernels(self.attention, self.device):
            self._train_mode(True)
            for first in starts:
                interrupts.check()  # a deferred Ctrl-C stops here, between steps
                stop = min(first + self.accumulation, n_batches)
                while self.members and not self._step(first, stop, n_batches, log, outcomes):
                    pass  # out of memory: the pack was halved, the step runs again
                if not self.members:
                    return outcomes
                if self.members[0].step % SYNC_EVERY == 0:
                    outcomes += self._drop_failed(log)
            outcomes += self._drop_failed(log)
            elapsed = time.perf_counter() - start
            if self.members:
                outcomes += self._evaluate(elapsed)
        return outcomes

    def _step(self, first: int, stop: int, n_batches: int, log: StepLog,
              outcomes: list[EpochOutcome]) -> bool:
        """One optimiser step over batches first..stop-1; False if it ran out of memory."""
        try:
            micro = [self._forward_backward(i) for i in range(first, stop)]
            self._optimizer_step(n_batches, stop - 1, log, micro)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            out_of_memory = True
        else:
            out_of_memory = False
            for m in self.members:
                m.seen += sum(len(m.batches[i]) for i in range(first, stop))
        if out_of_memory:  # outside the handler, so the failed step's tensors are released
            outcomes += self._shed_half(log)
        return not out_of_memory

    def _shed_half(self, log: StepLog) -> list[EpochOutcome]:
        """Out of memory: forget the step's gradients and let the second half of the members
        go (a member alone cannot be halved: it fails, as an unpacked run would)."""
        self.flat.clear_grads()
        free_memory()
        outcomes = self._drop_failed(log)
        size = len(self.members)
        gone = self.members[size // 2:] if size > 1 else list(self.members)
        reason = f"out of memory in a pack of {size} on {self.device}"
        self._leave(gone, log)
        return outcomes + [EpochOutcome(m, failure=reason, out_of_memory=True, alone=size == 1)
                           for m in gone]

    def _drop_failed(self, log: StepLog) -> list[EpochOutcome]:
        """Read the pending losses; members whose loss became non-finite leave now."""
        _, failed = log.flush()
        outcomes = [EpochOutcome(self.members[i], failure=reason) for i, reason in failed.items()]
        self._leave([o.member for o in outcomes], log)
        return outcomes

    def _leave(self, gone: list[Member], log: StepLog) -> None:
        """Members leave in the middle of an epoch (after their losses were read)."""
        if gone:
            self.remove(gone)
            log.histories = [m.history for m in self.members]

    def _train_mode(self, on: bool) -> None:
        self.encoder.train(on)
        self.heads.train(on)

    def _batch(self, encs: list[Encoded], index_lists: list[np.ndarray]) -> dict[str, Any]:
        """Every member's batch, padded to one width: (K*B, W), member k's rows in block k."""
        longest = max(int(e.lengths[ix].max()) for e, ix in zip(encs, index_lists, strict=True))
        cap = max(int(e.lengths.max()) for e in encs)
        width = bucket_width(longest, pad_multiple(self.device), cap)
        return to_device(collate_blocks(encs, index_lists, self.resources.pad_id, width),
                         self.device)

    def _logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """(K, B, C): every member's logits on its own rows."""
        self.shape.rows = batch["input_ids"].shape[0] // len(self.members)
        mask = batch["attention_mask"]
        all_layers = self.heads.uses_all_layers
        inputs = encoder_inputs(self.encoder, batch["input_ids"], mask,
                                batch.get("token_type_ids"))
        with autocast(self.device, self.precision):
            out = self.encoder(**inputs, output_hidden_states=all_layers, return_dict=True)
            layers = torch.stack(out.hidden_states, dim=1) if all_layers else None
            logits = self.heads(out.last_hidden_state, layers, mask)
        return logits.float()

    def _member_losses(self, logits: torch.Tensor, labels: torch.Tensor,
                       reduce: str = "mean") -> torch.Tensor:
        """(K,) each member's loss over its rows (its problem type and class weights; mean, or
        a sum over the labelled rows)."""
        problem = self.resources.data.problem_type
        return member_losses(logits, labels, problem,
                             self.weights if reduce == "mean" else None, reduce)

    def _forward_backward(self, i: int) -> torch.Tensor:
        batch = self._batch([m.train_enc for m in self.members],
                            [m.batches[i] for m in self.members])
        losses = self._member_losses(self._logits(batch), batch["labels"])  # (K,)
        (losses.sum() / self.accumulation).backward()  # into the (K, N) gradient buffer
        return losses.detach()  # rows seen are counted by _step, once the step succeeds

    @torch.no_grad()
    def _optimizer_step(self, n_batches: int, last: int, log: StepLog,
                        micro: list[torch.Tensor]) -> None:
        """Every member's AdamW step with its own settings and clipping (row_adamw), then the
        host's record of it: no value crosses between host and device here."""
        adamw_rows(self.flat.data, self.flat.grads(), self.exp_avg, self.exp_avg_sq,
                   self.schedule, self.flat.decayed)
        self.flat.clear_grads()
        rows = []
        for m in self.members:
            m.step += 1
            rows.append((m.step, m.epoch + 1, m.epoch + (last + 1) / n_batches, m.lr()))
        log.add(rows, micro)

    # ----------------------------------------------------------------- evaluation

    @torch.no_grad()
    def _evaluate(self, elapsed: float) -> list[EpochOutcome]:
        """Every member scored on its validation set in one pass, as `score_split()` scores."""
        self._train_mode(False)
        start = time.perf_counter()
        size = eval_batch_size(self.members[0].config.train.eval_batch_size, self.device)
        orders = [eval_batches(m.val_enc, size) for m in self.members]
        blocks, losses = [], []
        for j in range(len(orders[0])):
            interrupts.check()
            batch = self._batch([m.val_enc for m in self.members], [o[j] for o in orders])
            blocks.append(self._logits(batch))  # (K, B, C)
            losses.append(self._member_losses(blocks[-1], batch["labels"], reduce="sum"))
        totals = torch.stack(losses).sum(0).tolist()  # the reads of the evaluation
        found = torch.cat(blocks, dim=1).cpu().numpy()  # (K, N, C)
        runtime = time.perf_counter() - start
        outcomes = []
        for idx, m in enumerate(self.members):
            out = np.zeros_like(found[idx])
            out[np.concatenate(orders[idx])] = found[idx]
            scores = score_logits(m.val_enc.labels, out, totals[idx], len(orders[idx]), runtime,
                                  self._scoring(m))
            self._record(m, idx, scores, elapsed)
            outcomes.append(EpochOutcome(m, scores))
        return outcomes

    def _scoring(self, m: Member) -> ScoreOptions:
        """How a member's validation set is scored, as `fit()` scores it."""
        t = m.config.train
        plan = planned_calibration(m.config, m.selector.keep_last)
        return ScoreOptions(self.device, self.precision, self.resources.pad_id, t.eval_batch_size,
                            t.attention, m.judge.problem_type, threshold=plan.threshold,
                            threshold_metric=m.judge.metric)

    def _record(self, m: Member, idx: int, scores: Scores, elapsed: float) -> None:
        """The epoch in the member's history; its weights kept when it is the kept epoch."""
        m.epoch += 1
        m.train_time += elapsed
        m.history.append(eval_record(m.epoch, m.step, scores, elapsed, len(m.train_enc.labels)))
        m.last_scores = scores
        if m.selector.update(m.epoch, scores):  # a copy on the device
            m.kept = self.flat.data[idx].clone()

    # ----------------------------------------------------------------- results

    def result(self, m: Member) -> TrainResult:
        """The member's run as `fit()` returns it: its kept epoch's model, calibrated, on
        the CPU."""
        if m.kept is None or m.last_scores is None or m.selector.scores is None:
            raise ValueError("a member has a result only after an epoch")
        model = self.resources.fresh_model(m.config)
        state = member_state(self.flat.state_of(m.kept.cpu()), model.state_dict())
        model.load_state_dict(state, strict=False)  # the encoder's own pooler is not in it
        how = self._scoring(m)
        kept = calibrate(model, m.selector.scores, m.val_enc.labels, how,
                         planned_calibration(m.config, m.selector.keep_last))
        metrics = run_metrics(kept, m.judge, m.selector.epoch, m.epoch, m.last_scores,
                              m.train_time, m.seen, self.resources, str(self.device),
                              self.precision)
        if self.resources.data.extra:  # further validation splits (MNLI): the model scores them
            metrics.update(score_extra(model.to(self.device), self.resources, m.config, how))
        return TrainResult(metrics, m.history, model.cpu().eval(), kept, m.epoch)


def train_together(configs: list[RunConfig], resources: Resources, epoch_selection: str = "best",
                   on_record: list[RecordHook | None] | None = None) -> list[TrainResult | str]:
    """Train `configs` as one pack until each has run its epochs; each run's TrainResult, or
    the reason it failed. (A study's worker refills the pack instead: tuning.pack_worker.)"""
    from .device import resolve_device, resolve_precision

    t = configs[0].train
    device = resolve_device(t.device)
    pack = Pack(resources, device, resolve_precision(t.precision, device), t.batch_size,
                t.gradient_accumulation_steps, t.attention)
    for i, config in enumerate(configs):
        pack.add(i, config, epoch_selection, on_record[i] if on_record else None)
    results: dict[int, TrainResult | str] = {}
    while pack.members:
        for outcome in pack.run_epoch():
            m = outcome.member
            if outcome.failure is not None:
                results[m.key] = outcome.failure
            elif m.done:
                results[m.key] = pack.result(m)
                pack.remove([m])
    return [results[i] for i in range(len(configs))]


# packed trials per worker on CUDA when --pack is not given, by encoder parameters: not yet
# measured on a GPU (bench/gpu.sh measures 1, 2, 4 and 8); small models leave most of a GPU idle
DEFAULT_PACKS = ((50e6, 8), (150e6, 4), (float("inf"), 2))


def default_pack_size(n_parameters: int, device_type: str) -> int:
    """How many runs to pack on `device_type` ("cuda", "cpu", ...) for an encoder of
    `n_parameters`: by size on CUDA, 1 elsewhere (a CPU does the members' arithmetic one after
    the other anyway)."""
    if device_type != "cuda":
        return 1
    return next(k for limit, k in DEFAULT_PACKS if n_parameters < limit)
