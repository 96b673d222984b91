"""Intermediate values: the per-epoch objective every trial reported to the pruner."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ...text import plural
from ..load import HeadData
from ._common import FigureSkipped, axis_label, finish_over_steps, once


@dataclass(frozen=True)
class TrialCurve:
    number: int
    state: str
    steps: list[int]  # epochs, ascending
    values: list[float]
    best: bool  # the head's best trial


@dataclass(frozen=True)
class IntermediateInfo:
    title: str
    ylabel: str
    curves: list[TrialCurve]


def get_intermediate_info(head: HeadData, label: str) -> IntermediateInfo:
    reported = [t for t in head.trials if t.intermediate]
    if not reported:
        raise FigureSkipped("No intermediate values were recorded (they live in the Optuna "
                            "storage, not in trials.csv).")
    best = head.best_trial()
    curves = []
    for t in reported:
        steps = sorted(t.intermediate)
        curves.append(TrialCurve(t.number, t.state, steps, [t.intermediate[s] for s in steps],
                                 best is not None and t.number == best.number))
    n_pruned = len(head.by_state("PRUNED"))
    return IntermediateInfo(
        title=f"Intermediate values: {head.name} ({plural(len(reported), 'trial')}, "
              f"{n_pruned} pruned)", ylabel=axis_label(label), curves=curves)


def plot_intermediate(info: IntermediateInfo, path: Path) -> Path:
    """One line per trial; the best trial in red, pruned trials orange and ending in a cross."""
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    labelled: set[str | None] = set()
    for curve in info.curves:
        style = _style(curve)
        style["label"] = once(labelled, style["label"])
        ax.plot(curve.steps, curve.values, marker=".", **style)
        if curve.state == "PRUNED":
            ax.plot(curve.steps[-1], curve.values[-1], "x", color="tab:orange", ms=9, mew=2)
    return finish_over_steps(fig, ax, "epoch (step reported to the pruner)", info.ylabel,
                             info.title, path)


def _style(curve: TrialCurve) -> dict:
    if curve.best:
        return {"color": "tab:red", "lw": 2.2, "zorder": 3, "label": f"best trial #{curve.number}"}
    if curve.state == "PRUNED":
        return {"color": "tab:orange", "lw": 1.2, "label": "pruned trial"}
    return {"color": "tab:blue", "lw": 1.0, "alpha": 0.6, "label": f"{curve.state.lower()} trial"}
