"""Confusion matrices (rows = true label) of one or more runs, side by side."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ._common import FigureSkipped, save


@dataclass(frozen=True)
class ConfusionPanel:
    title: str
    labels: list[str]
    counts: np.ndarray  # (C, C) float, rows = true label
    shares: np.ndarray  # each count as a share of its row


@dataclass(frozen=True)
class ConfusionInfo:
    title: str
    panels: list[ConfusionPanel]


def get_confusion_info(panels: list[tuple[str, dict]],
                       title: str = "Confusion matrices of the best models") -> ConfusionInfo:
    """One panel per (name, metrics.json-like dict) that has an eval_confusion."""
    panels = [(name, m) for name, m in panels if m.get("eval_confusion")]
    if not panels:
        raise FigureSkipped("No confusion matrix found (metrics.json of the best runs lacks "
                            "eval_confusion).")
    return ConfusionInfo(f"{title}\n(counts; rows = true label)",
                         [_panel(name, metrics) for name, metrics in panels])


def _panel(name: str, metrics: dict) -> ConfusionPanel:
    matrix = np.asarray(metrics["eval_confusion"], dtype=float)
    row_sums = matrix.sum(axis=1, keepdims=True)
    acc = metrics.get("eval_accuracy")
    where = metrics.get("evaluated_on", "validation set")
    n = metrics.get("n_eval") or int(matrix.sum())
    return ConfusionPanel(
        title=f"{name}" + (f": accuracy {acc:.4f}" if acc is not None else "")
        + f"\n{where}, n = {n}",
        labels=metrics.get("label_names") or [str(i) for i in range(len(matrix))],
        counts=matrix,
        shares=np.divide(matrix, row_sums, out=np.zeros_like(matrix), where=row_sums > 0))


def plot_confusions(info: ConfusionInfo, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(info.panels),
                             figsize=(max(6.0, 4.6 * len(info.panels) + 0.6), 4.6), dpi=110,
                             squeeze=False)
    for ax, panel in zip(axes.flat, info.panels, strict=True):
        image = ax.imshow(panel.counts, cmap="Blues", vmin=0)
        for (i, j), count in np.ndenumerate(panel.counts):
            dark = count > panel.counts.max() * 0.6
            ax.text(j, i, f"{int(count)}\n({panel.shares[i, j]:.0%} of row)", ha="center",
                    va="center", fontsize=9, color="white" if dark else "black")
        ax.set_xticks(range(len(panel.labels)), panel.labels, rotation=20)
        ax.set_yticks(range(len(panel.labels)), panel.labels)
        ax.set_xlabel("predicted label")
        ax.set_ylabel("true label")
        ax.set_title(panel.title, fontsize=10)
        fig.colorbar(image, ax=ax, shrink=0.75, label="examples")
    fig.suptitle(info.title, fontsize=11)
    return save(fig, path)
