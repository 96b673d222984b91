"""AdamW over a pack's (K, N) rows: torch.optim.AdamW's arithmetic and `clip_grad_norm_` for
every member at once, each with its own learning rate schedule, weight decay, step count and
clipping norm, in the same dozen passes over the buffer whatever K.

The members' settings are device tensors made when the members change (`RowSchedule.of`); the
step counts advance on the device, and the learning rates and bias corrections are computed
there in float64 (as torch's AdamW computes them in Python) and rounded to float32 once, as a
Python number is when a kernel takes it. Nothing in a step is read from or copied to the host.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.AdamW's defaults, which fit() uses


def linear_schedule(step: int, warmup: int, total: int) -> float:
    """transformers' linear warm-up then linear decay: the learning rate factor at `step`."""
    if step < warmup:
        return step / max(1, warmup)
    return max(0.0, (total - step) / max(1, total - warmup))


@dataclass
class RowSchedule:
    """Each member's settings as a (K, 1) float64 column on the device."""

    learning_rate: torch.Tensor
    warmup: torch.Tensor
    total: torch.Tensor
    weight_decay: torch.Tensor
    max_grad_norm: torch.Tensor
    steps: torch.Tensor  # optimiser steps done

    @classmethod
    def of(cls, rows: list[tuple[float, int, int, float, float, int]],
           device: torch.device) -> RowSchedule:
        """From each member's (learning rate, warm-up steps, total steps, weight decay, clipping
        norm, steps done): one host-to-device copy, when the members change."""
        table = torch.tensor(rows, dtype=torch.float64).reshape(len(rows), 6).to(device)
        return cls(*table.T.unsqueeze(-1).unbind(0))  # six (K, 1) columns

    def rates(self) -> torch.Tensor:
        """(K, 1) each member's learning rate for its next step (`linear_schedule`)."""
        step = self.steps
        rising = step / self.warmup.clamp(min=1)
        falling = ((self.total - step) / (self.total - self.warmup).clamp(min=1)).clamp(min=0)
        return self.learning_rate * torch.where(step < self.warmup, rising, falling)


@torch.no_grad()
def adamw_rows(params: torch.Tensor, grads: torch.Tensor, exp_avg: torch.Tensor,
               exp_avg_sq: torch.Tensor, schedule: RowSchedule, decayed: int) -> None:
    """One AdamW step of every row: gradients (K, N) clipped to each member's norm, weight
    decay on columns 0..decayed-1, moments and parameters updated in place."""
    b1, b2 = BETAS
    lr = schedule.rates()
    schedule.steps.add_(1)
    norms = torch.linalg.vector_norm(grads, dim=1, keepdim=True)  # (K, 1), as clip_grad_norm_
    grads.mul_((schedule.max_grad_norm.float() / (norms + 1e-6)).clamp_(max=1.0))
    params[:, :decayed].mul_((1 - lr * schedule.weight_decay).float())
    exp_avg.lerp_(grads, 1 - b1)
    exp_avg_sq.mul_(b2).addcmul_(grads, grads, value=1 - b2)
    step_size = (lr / (1 - b1 ** schedule.steps)).float()
    correction = (1 - b2 ** schedule.steps).sqrt().float()
    denom = exp_avg_sq.sqrt().div_(correction).add_(EPS)
    params.addcdiv_(exp_avg * step_size, denom, value=-1.0)
