"""Per-step training losses, kept on the device and read every SYNC_EVERY optimiser steps: the
history's step rows, and the one place a non-finite loss is found (a run, or each member of a
pack)."""

from __future__ import annotations

import math

import torch

SYNC_EVERY = 32  # optimiser steps between reads of the training loss from the device


class NonFiniteLoss(RuntimeError):
    """The training loss became NaN or infinite; the run cannot recover."""


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
