"""One run inside a pack (`Member`: its settings, data, schedule, history and kept epoch, all
on the host but its kept weights), and what an epoch of the pack did to it (`EpochOutcome`).
poolbert.pack trains the members; a study's worker reads them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from .config import RunConfig
from .data import Encoded
from .epochs import EpochSelector
from .metrics import Criterion
from .row_adamw import linear_schedule
from .scoring import Scores


@dataclass
class Member:
    """One run inside a pack."""

    key: Any  # the caller's handle for this run (a study's trial)
    config: RunConfig
    train_enc: Encoded
    val_enc: Encoded
    total_updates: int
    warmup: int
    selector: EpochSelector  # the kept epoch and early stopping, as fit() keeps them
    weights: torch.Tensor | None  # --class-weights, as the loss takes them
    history: list[dict] = field(default_factory=list)
    epoch: int = 0  # epochs finished
    step: int = 0  # optimiser steps done
    batches: list[np.ndarray] = field(default_factory=list)  # this epoch's
    train_time: float = 0.0
    seen: int = 0
    kept: torch.Tensor | None = None  # its row (N,) at the kept epoch, on the device
    last_scores: Scores | None = None

    @property
    def judge(self) -> Criterion:
        return self.selector.judge

    @property
    def done(self) -> bool:
        return self.epoch >= self.config.train.num_train_epochs or self.selector.stop

    def lr(self, step: int | None = None) -> float:
        """The learning rate of optimiser step `step` (default: the next one)."""
        step = self.step if step is None else step
        return self.config.train.learning_rate * linear_schedule(step, self.warmup,
                                                                 self.total_updates)


@dataclass
class EpochOutcome:
    member: Member
    scores: Scores | None = None  # validation scores after the epoch
    failure: str | None = None  # non-finite loss or out of memory: the run is over
    out_of_memory: bool = False
    alone: bool = False  # out of memory with no other member to leave: the run cannot fit
