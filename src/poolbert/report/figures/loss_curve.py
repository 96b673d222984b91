"""Loss curve: training loss per optimiser step, validation loss and accuracy per epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ...layout import RunDir
from ._common import FigureSkipped, save


@dataclass(frozen=True)
class LossCurveInfo:
    step_epochs: list[float]
    step_losses: list[float]
    eval_epochs: list[float]
    eval_losses: list[float]
    eval_accuracies: list[float]
    title: str


def run_history(run: RunDir | None, where: str) -> list[dict]:
    """A run's step and eval records; FigureSkipped naming `where` when there are none."""
    if run is None or not run.history_file.is_file():
        raise FigureSkipped(f"No loss curve: {where} is missing.")
    history = [r for r in run.read_history() if r.get("type") in ("step", "eval")]
    if not history:
        raise FigureSkipped(f"No loss curve: {where} has no records.")
    return history


def get_loss_curve_info(history: list[dict], title: str = "") -> LossCurveInfo:
    steps = [r for r in history if r["type"] == "step"]
    evals = [r for r in history if r["type"] == "eval"]
    return LossCurveInfo(
        step_epochs=[r["epoch"] for r in steps], step_losses=[r["loss"] for r in steps],
        eval_epochs=[r["epoch"] for r in evals], eval_losses=[r["eval_loss"] for r in evals],
        eval_accuracies=[r["eval_accuracy"] for r in evals],
        title=f"Loss curve{': ' + title if title else ''}",
    )


def plot_loss_curve(history: list[dict], path: Path, title: str = "") -> Path:
    """Training loss per optimiser step and validation loss/accuracy per epoch.

    Takes the history rather than its info: `poolbert train` calls it with a run's history."""
    info = get_loss_curve_info(history, title)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(info.step_epochs, info.step_losses, lw=0.8, alpha=0.6, label="training loss (per step)")
    ax.plot(info.eval_epochs, info.eval_losses, "o-", label="validation loss (per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    acc_ax = ax.twinx()
    acc_ax.plot(info.eval_epochs, info.eval_accuracies, "s--", color="tab:green",
                label="validation accuracy")
    acc_ax.set_ylabel("validation accuracy (fraction correct)")
    acc_ax.set_ylim(0, 1)
    handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], loc="upper right", fontsize=8)
    ax.set_title(info.title)
    ax.grid(alpha=0.3)
    return save(fig, path)
