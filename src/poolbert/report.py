"""Figures and tables from saved results (the only module that imports plotting)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display needed
import matplotlib.pyplot as plt  # noqa: E402


def plot_loss_curve(history: list[dict], path: Path, title: str = "") -> Path:
    """Training loss per optimiser step and validation loss/accuracy per epoch."""
    steps = [r for r in history if r["type"] == "step"]
    evals = [r for r in history if r["type"] == "eval"]
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    ax.plot([r["epoch"] for r in steps], [r["loss"] for r in steps], lw=0.8, alpha=0.6,
            label="training loss (per step)")
    ax.plot([r["epoch"] for r in evals], [r["eval_loss"] for r in evals], "o-",
            label="validation loss (per epoch)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("cross-entropy loss")
    acc_ax = ax.twinx()
    acc_ax.plot([r["epoch"] for r in evals], [r["eval_accuracy"] for r in evals], "s--",
                color="tab:green", label="validation accuracy")
    acc_ax.set_ylabel("validation accuracy")
    acc_ax.set_ylim(0, 1)
    handles = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    ax.legend(handles, [h.get_label() for h in handles], loc="upper right", fontsize=8)
    ax.set_title(f"Loss curve{': ' + title if title else ''}")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
