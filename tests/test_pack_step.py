"""The packed step's pieces against what they stand for: batched losses against `task_loss` per
member, row-wise AdamW against torch's AdamW with clipping and schedule, a pack of every head
against each run alone; and a step whose operations do not grow with the members."""

from __future__ import annotations

import copy
import math
from collections import Counter

import pytest
import torch
from architectures import cached_model
from helpers import tiny_glue_dir
from torch.utils._python_dispatch import TorchDispatchMode
from transformers import get_linear_schedule_with_warmup

from poolbert.config import RunConfig
from poolbert.data import train_batches
from poolbert.fused_heads import member_losses
from poolbert.losses import StepLog
from poolbert.model import task_loss
from poolbert.pack import Pack, train_together
from poolbert.pooling import POOLERS
from poolbert.resources import Resources
from poolbert.row_adamw import RowSchedule, adamw_rows
from poolbert.training import fit


@pytest.mark.parametrize("reduction", ["mean", "sum"])
@pytest.mark.parametrize("problem", ["single_label", "multi_label", "regression"])
def test_batched_losses_are_each_members_task_loss(problem, reduction):
    torch.manual_seed(0)
    k, b, c = 3, 5, 4
    logits = torch.randn(k, b, c if problem != "regression" else 1)
    if problem == "single_label":
        labels = torch.randint(0, c, (k * b,))
        labels[[1, 7]] = -1  # unlabelled rows
    elif problem == "multi_label":
        labels = torch.randint(0, 2, (k * b, c)).float()
        labels[[2, 9]] = -1
    else:
        labels = torch.randn(k * b)
        labels[[0, 11]] = float("nan")
    weights = None
    if problem != "regression" and reduction == "mean":
        weights = torch.rand(k, c) + 0.5
        weights[1] = 1.0  # a member without weights
    got = member_losses(logits, labels, problem, weights, reduction)
    for j in range(k):
        own = weights[j] if weights is not None and j != 1 else None
        expected = task_loss(logits[j], labels[j * b:(j + 1) * b], problem, own, reduction)
        torch.testing.assert_close(got[j], expected, rtol=1e-6, atol=1e-7)


def test_row_adamw_is_torch_adamw_with_clipping_and_schedule_for_each_row():
    """Three members with their own learning rate, warm-up, length, weight decay and clipping
    norm (one clipped at every step): each row follows torch's AdamW on its own parameters."""
    torch.manual_seed(0)
    n, decayed = 40, 25  # the first 25 columns take weight decay
    settings = [(1e-2, 2, 6, 0.1, 0.05), (3e-3, 0, 6, 0.0, 10.0), (5e-2, 3, 5, 0.01, 1.0)]
    start = torch.randn(len(settings), n)
    grads = [torch.randn(len(settings), n) for _ in range(6)]
    rows = start.clone()
    exp_avg, exp_avg_sq = torch.zeros_like(rows), torch.zeros_like(rows)
    schedule = RowSchedule.of([(*s, 0) for s in settings], torch.device("cpu"))
    for g in grads:
        adamw_rows(rows, g.clone(), exp_avg, exp_avg_sq, schedule, decayed)
    for j, (lr, warmup, total, decay, max_norm) in enumerate(settings):
        with_decay = torch.nn.Parameter(start[j, :decayed].clone())
        without = torch.nn.Parameter(start[j, decayed:].clone())
        optimizer = torch.optim.AdamW([{"params": [with_decay], "weight_decay": decay},
                                       {"params": [without], "weight_decay": 0.0}], lr=lr)
        lr_schedule = get_linear_schedule_with_warmup(optimizer, warmup, total)
        for g in grads[:total]:
            with_decay.grad, without.grad = g[j, :decayed].clone(), g[j, decayed:].clone()
            torch.nn.utils.clip_grad_norm_([with_decay, without], max_norm)
            optimizer.step()
            lr_schedule.step()
        # past its total the schedule's rate is 0: only AdamW's moments move, nothing else
        torch.testing.assert_close(rows[j], torch.cat([with_decay, without]).detach(),
                                   rtol=1e-5, atol=1e-7)
    assert schedule.steps.flatten().tolist() == [6.0, 6.0, 6.0]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    return (cached_model("bert", tmp_path_factory),
            tiny_glue_dir(tmp_path_factory.mktemp("pack-step-data"), 24, 16))


def config_for(setup, pooling: str, **train) -> RunConfig:
    config = RunConfig()
    config.model.model_name_or_path = str(setup[0])
    config.data.data_dir = str(setup[1])
    config.model.pooling, config.model.dropout = pooling, 0.0
    config.train.batch_size, config.train.device, config.train.max_length = 8, "cpu", 32
    config.train.num_train_epochs = 2
    for key, value in train.items():
        setattr(config.train, key, value)
    return config.validate()


def test_a_pack_of_every_head_trains_each_member_as_it_would_train_alone(setup):
    """All seven heads in one pack (every group of the batched heads, the classifier padded to
    2H), two of them with class weights, each with its own settings; two micro-batches per
    optimiser step."""
    configs = [config_for(setup, head, learning_rate=1e-3 * (1 + j), warmup_ratio=0.1 * (j % 3),
                          weight_decay=0.01 * j, max_grad_norm=0.5 + j,
                          class_weights="balanced" if j in (2, 5) else "none",
                          gradient_accumulation_steps=2)
               for j, head in enumerate(sorted(POOLERS))]
    resources = Resources.load(configs[0])
    for config, together in zip(configs, train_together(configs, resources), strict=True):
        alone = fit(config, resources, quiet=True)
        assert not isinstance(together, str), together
        steps = [r["loss"] for r in alone.history if r["type"] == "step"]
        got = [r["loss"] for r in together.history if r["type"] == "step"]
        assert len(got) == len(steps) == 2 * math.ceil(math.ceil(24 / 8) / 2)
        assert got == pytest.approx(steps, rel=1e-4), config.model.pooling
        mine, theirs = together.model.state_dict(), alone.model.state_dict()
        assert mine.keys() == theirs.keys()
        for key in mine:
            torch.testing.assert_close(mine[key], theirs[key], rtol=1e-5, atol=1e-5,
                                       msg=f"{config.model.pooling} {key}")


class Ops(TorchDispatchMode):
    """Every aten operation dispatched inside the block, by name."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.overloadpacket.__name__] += 1
        return func(*args, **(kwargs or {}))


def step_ops(setup, k: int) -> Counter[str]:
    """The operations of one packed training step of k members (after a warm step), the
    members' heads mixed."""
    heads = ["cls", "mean_max", "attention", "cls"]
    configs = [config_for(setup, heads[j % 4], learning_rate=1e-3 * (j + 1), seed=j)
               for j in range(k)]
    resources = Resources.load(configs[0])
    pack = Pack(resources, torch.device("cpu"), "fp32", 8, 1)
    for j, config in enumerate(configs):
        pack.add(j, copy.deepcopy(config))
    for m in pack.members:
        m.batches = train_batches(m.train_enc, 8, m.config.train.seed, 1)
    log, outcomes = StepLog([m.history for m in pack.members]), []
    pack._train_mode(True)
    pack._step(0, 1, 3, log, outcomes)
    with Ops() as counter:
        pack._step(1, 2, 3, log, outcomes)
    return counter.ops


def test_a_packed_step_does_not_grow_with_its_members_and_reads_nothing_back(setup):
    """One member more adds no operation (no per-member loop in heads, losses, clipping or
    AdamW), and the step reads no value from the device (`.item()`) nor makes a tensor of
    Python values other than the batch's own fields."""
    three, five = step_ops(setup, 3), step_ops(setup, 5)
    assert sum(five.values()) - sum(three.values()) <= 2, five - three
    for ops in (three, five):
        assert ops["_local_scalar_dense"] == 0
        assert ops["lift_fresh"] <= 4  # input_ids, attention_mask, token_type_ids, labels
