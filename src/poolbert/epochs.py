"""Which epoch a run keeps, and when it stops early: one selector for `training.fit` and for
every member of a pack (poolbert.pack)."""

from __future__ import annotations

from dataclasses import dataclass

from .metrics import Criterion
from .scoring import Scores

EPOCH_SELECTIONS = ("best", "last")


@dataclass
class EpochSelector:
    """The best epoch by the run's metric ("best"), or the last ("last": nothing is chosen on
    the validation set, so its score stays unbiased). Early stopping after `patience` epochs
    without a better value watches the selection set only: under "last" the validation set is
    a study's dev set, which is only ever scored."""

    judge: Criterion
    keep_last: bool = False
    patience: int | None = None
    value: float | None = None  # of the kept epoch
    epoch: int = 0  # the kept epoch (0: none yet)
    scores: Scores | None = None  # the kept epoch's validation scores
    stale: int = 0  # epochs since the best one

    @classmethod
    def of(cls, judge: Criterion, selection: str, patience: int | None) -> EpochSelector:
        if selection not in EPOCH_SELECTIONS:
            raise ValueError(f"epoch_selection must be 'best' or 'last', got {selection!r}")
        keep_last = selection == "last"
        return cls(judge, keep_last, None if keep_last else patience)

    def update(self, epoch: int, scores: Scores) -> bool:
        """Record an epoch's validation scores; True when this epoch is now the kept one (the
        caller keeps its weights)."""
        value = self.judge.value(scores.metrics)
        improved = self.value is None or self.judge.better(value, self.value)
        self.stale = 0 if improved else self.stale + 1
        if improved or self.keep_last:
            self.value, self.epoch, self.scores = value, epoch, scores
            return True
        return False

    @property
    def stop(self) -> bool:
        """Early stopping: `patience` epochs without a better value."""
        return self.patience is not None and self.stale >= self.patience
