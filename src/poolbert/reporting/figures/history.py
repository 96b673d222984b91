"""Optimisation history (report fig. 1): the objective per trial and the best so far."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ..load import HeadData
from ._common import FigureSkipped, axis_label, finish_over_steps


@dataclass(frozen=True)
class HistoryInfo:
    title: str
    ylabel: str
    complete: list[tuple[int, float]]  # (trial number, value)
    pruned: list[tuple[int, float]]  # (trial number, last reported value)
    failed: list[int]  # trial numbers
    best_so_far: list[float]  # running best over the complete trials, in their order
    xlim: tuple[float, float]


def get_history_info(head: HeadData, label: str) -> HistoryInfo:
    done = head.by_state("COMPLETE")
    pruned = [t for t in head.by_state("PRUNED") if t.value is not None]
    if not done and not pruned:
        raise FigureSkipped("The optimisation history needs at least one complete or pruned "
                            f"trial; this head has {len(head.trials)} trial(s), none with a value.")
    pick = np.maximum if head.direction == "maximize" else np.minimum
    numbers = [t.number for t in head.trials]
    return HistoryInfo(
        title=f"Optimisation history: {head.name} ({head.direction})", ylabel=axis_label(label),
        complete=[(t.number, t.objective) for t in done],
        pruned=[(t.number, t.objective) for t in pruned],
        failed=[t.number for t in head.by_state("FAIL")],
        best_so_far=pick.accumulate([t.objective for t in done]).tolist() if done else [],
        xlim=(min(numbers) - 0.5, max(numbers) + 0.5),
    )


def plot_history(info: HistoryInfo, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    done_x, done_y = _columns(info.complete)
    ax.plot(done_x, done_y, "o", color="tab:blue", label=f"complete trial ({len(info.complete)})")
    if info.pruned:
        ax.plot(*_columns(info.pruned), "x", color="tab:orange", ms=8,
                label=f"pruned trial, last reported value ({len(info.pruned)})")
    if info.complete:
        ax.step(done_x, info.best_so_far, where="post", color="tab:red", label="best so far")
    for i, number in enumerate(info.failed):
        ax.axvline(number, color="grey", ls=":", lw=1,
                   label=f"failed trial ({len(info.failed)})" if i == 0 else None)
    ax.set_xlim(*info.xlim)
    return finish_over_steps(fig, ax, "trial number", info.ylabel, info.title, path)


def _columns(points: list[tuple[int, float]]) -> tuple[list[int], list[float]]:
    return [x for x, _ in points], [y for _, y in points]
