"""Reliability diagrams: per confidence bin, the fraction of decisions that were right, before
and after temperature scaling, one panel per run (classification only)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...layout import Predictions
from ...metrics import expected_calibration_error, raw_probabilities, reliability_bins
from ...metrics import labelled as labelled_rows
from ._common import FigureSkipped, save

BINS = 15  # as eval_ece in metrics.json counts them (Guo et al. 2017)


@dataclass(frozen=True)
class ReliabilityCurve:
    label: str  # "uncalibrated (T = 1)" or "calibrated (T = 1.42)"
    confidence: np.ndarray  # mean confidence per non-empty bin
    accuracy: np.ndarray  # fraction correct per non-empty bin
    counts: np.ndarray  # decisions per non-empty bin
    ece: float


@dataclass(frozen=True)
class ReliabilityPanel:
    title: str
    curves: list[ReliabilityCurve]


@dataclass(frozen=True)
class ReliabilityInfo:
    title: str
    panels: list[ReliabilityPanel]


def get_reliability_info(runs: list[tuple[str, Predictions, float | None]],
                         where: str = "validation set") -> ReliabilityInfo:
    """One panel per (name, predictions, temperature) of a classification run. The saved
    probabilities are the calibrated ones; the uncalibrated ones are recovered with T."""
    panels = [panel for name, found, temperature in runs
              if (panel := _panel(name, found, temperature)) is not None]
    if not panels:
        raise FigureSkipped("No reliability diagram: no classification predictions with "
                            "labels (regression has no probabilities).")
    return ReliabilityInfo(f"Reliability on the {where}: fraction correct per confidence bin",
                           panels)


def _panel(name: str, found: Predictions, temperature: float | None) -> ReliabilityPanel | None:
    if found.problem_type == "regression" or not found.probs.size:
        return None
    labelled = labelled_rows(found.labels)
    probs, labels = found.probs[labelled], found.labels[labelled]
    if not len(labels):
        return None
    curves = []
    t = temperature or 1.0
    if t != 1.0:
        curves.append(_curve("uncalibrated (T = 1)",
                             raw_probabilities(probs, found.problem_type, t), labels,
                             found.problem_type))
    curves.append(_curve(f"calibrated (T = {t:.3g})" if t != 1.0 else "T = 1", probs, labels,
                         found.problem_type))
    every = ", every label decision" if found.problem_type == "multi_label" else ""
    return ReliabilityPanel(f"{name}: {len(labels)} examples{every}", curves)


def _curve(label: str, probs: np.ndarray, labels: np.ndarray,
           problem_type: str) -> ReliabilityCurve:
    confidence, accuracy, counts = reliability_bins(probs, labels, problem_type, BINS)
    ece = expected_calibration_error(probs, labels, problem_type, BINS)
    return ReliabilityCurve(f"{label}, ECE {ece:.3f}", confidence, accuracy, counts, ece)


def plot_reliability(info: ReliabilityInfo, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(info.panels), figsize=(4.4 * len(info.panels) + 0.6, 4.4),
                             dpi=110, squeeze=False)
    for ax, panel in zip(axes.flat, info.panels, strict=True):
        ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
        for curve in panel.curves:  # the calibrated curve last, drawn solid
            style = "o-" if curve is panel.curves[-1] else "s--"
            ax.plot(curve.confidence, curve.accuracy, style, label=curve.label)
        ax.set_xlim(0, 1)
        ax.set_ylim(0, 1)
        ax.set_xlabel("confidence (mean predicted probability in the bin)")
        ax.set_ylabel("fraction correct")
        ax.set_title(panel.title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="upper left")
    fig.suptitle(info.title, fontsize=11)
    return save(fig, path)
