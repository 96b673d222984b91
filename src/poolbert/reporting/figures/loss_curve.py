"""Loss curve: training loss per optimiser step, validation loss and the run's metric per epoch."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ...layout import RunDir
from ...metrics import LABELS, METRIC_KEYS
from ._common import FigureSkipped, axis_label, save


@dataclass(frozen=True)
class LossCurveInfo:
    step_epochs: list[float]
    step_losses: list[float]
    eval_epochs: list[float]
    eval_losses: list[float]
    eval_values: list[float]  # the run's metric per epoch
    metric_label: str  # "accuracy", "Matthews correlation", ...
    loss_label: str  # the training loss of the problem type
    title: str


LOSS_LABELS = {"single_label": "cross-entropy loss", "multi_label": "binary cross-entropy loss",
               "regression": "mean squared error"}


def run_history(run: RunDir | None, where: str) -> list[dict]:
    """A run's step and eval records; FigureSkipped naming `where` when there are none."""
    if run is None or not run.history_file.is_file():
        raise FigureSkipped(f"No loss curve: {where} is missing.")
    history = [r for r in run.read_history() if r.get("type") in ("step", "eval")]
    if not history:
        raise FigureSkipped(f"No loss curve: {where} has no records.")
    return history


def get_loss_curve_info(history: list[dict], title: str = "", metric: str | None = None,
                        problem_type: str | None = None) -> LossCurveInfo:
    """`metric` and `problem_type` as metrics.json records them; runs from before they were
    recorded were single-label runs judged by accuracy."""
    steps = [r for r in history if r["type"] == "step"]
    evals = [r for r in history if r["type"] == "eval"]
    # the loss itself is on the left axis already: show accuracy beside it
    shown = metric if metric in METRIC_KEYS and metric != "loss" else (
        "pearson" if problem_type == "regression" else "accuracy")
    key = METRIC_KEYS[shown]
    return LossCurveInfo(
        step_epochs=[r["epoch"] for r in steps], step_losses=[r["loss"] for r in steps],
        eval_epochs=[r["epoch"] for r in evals if key in r],
        eval_losses=[r["eval_loss"] for r in evals if key in r],
        eval_values=[r[key] for r in evals if key in r], metric_label=LABELS[shown],
        loss_label=LOSS_LABELS.get(problem_type or "single_label", "loss"),
        title=f"Loss curve{': ' + title if title else ''}",
    )


def plot_loss_curve(history: list[dict], path: Path, title: str = "", metric: str | None = None,
                    problem_type: str | None = None) -> Path:
    """Training loss per optimiser step and validation loss and metric per epoch.

    Takes the history rather than its info: `poolbert train` calls it with a run's history."""
    info = get_loss_curve_info(history, title, metric, problem_type)
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot(info.step_epochs, info.step_losses, lw=0.8, alpha=0.6, label="training loss (per step)")
    ax.plot(info.eval_epochs, info.eval_losses, "o-", label="validation loss (per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel(info.loss_label)
    acc_ax = ax.twinx()
    acc_ax.plot(info.eval_epochs, info.eval_values, "s--", color="tab:green",
                label=f"validation {info.metric_label}")
    acc_ax.set_ylabel(axis_label(f"validation {info.metric_label}"))
    if info.metric_label in ("accuracy", "F1", "macro-F1", "micro-F1"):
        acc_ax.set_ylim(0, 1)
    else:  # correlations run from -1 to 1
        acc_ax.set_ylim(-1, 1)
    handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    ax.legend(handles, [str(h.get_label()) for h in handles], loc="upper right", fontsize=8)
    ax.set_title(info.title)
    ax.grid(alpha=0.3)
    return save(fig, path)
