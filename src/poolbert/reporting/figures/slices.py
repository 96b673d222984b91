"""Slice plots (report fig. 3): the objective against each hyperparameter, one panel each."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator, NullFormatter

from ..load import HeadData, TrialRecord, param_names
from ._common import FigureSkipped, axis_position, is_categorical, is_log


@dataclass(frozen=True)
class SlicePanel:
    xlabel: str
    xs: list[float]  # category index or value, per complete trial with this hyperparameter
    ys: list[float]  # objective
    numbers: list[int]  # trial numbers (the colour)
    best: tuple[float, float, int] | None  # x, objective and number of the best trial
    choices: list[str] | None  # tick labels of a categorical hyperparameter
    log: bool


@dataclass(frozen=True)
class SlicesInfo:
    title: str
    ylabel: str
    panels: list[SlicePanel]


def get_slices_info(head: HeadData, label: str) -> SlicesInfo:
    done = head.scored()
    if len(done) < 2:
        raise FigureSkipped(f"Slice plots need at least 2 complete trials; this head has "
                            f"{len(done)}.")
    names = param_names(done)
    if not names:
        raise FigureSkipped("Slice plots need hyperparameters; the trials recorded none.")
    best = head.best_trial()
    panels = [_panel(name, done, best) for name in names]
    return SlicesInfo(title=f"Slice plots: {head.name} ({len(done)} complete trials; colour = "
                      "trial number)", ylabel=label, panels=panels)


def _panel(name: str, done: list[TrialRecord], best: TrialRecord | None) -> SlicePanel:
    with_param = [t for t in done if name in t.params]
    dist: Any = with_param[0].distributions.get(name)
    constant = len({repr(t.params[name]) for t in with_param}) == 1
    return SlicePanel(
        xlabel=name + (" (log scale)" if is_log(dist) else "")
        + (" (constant in these trials)" if constant else ""),
        xs=[axis_position(dist, t.params[name]) for t in with_param],
        ys=[t.objective for t in with_param], numbers=[t.number for t in with_param],
        best=(axis_position(dist, best.params[name]), best.objective, best.number)
        if best is not None and name in best.params else None,
        choices=[str(c) for c in dist.choices] if is_categorical(dist) else None,
        log=is_log(dist))


def plot_slices(info: SlicesInfo, path: Path) -> Path:
    cols = min(len(info.panels), 2)
    rows = math.ceil(len(info.panels) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.8 * cols + 1, 3.6 * rows + 0.5), dpi=110,
                             squeeze=False, layout="constrained")
    scatter = None
    for ax, panel in zip(axes.flat, info.panels, strict=False):
        scatter = ax.scatter(panel.xs, panel.ys, c=panel.numbers, cmap="viridis", s=30,
                             edgecolors="k", linewidths=0.3)
        if panel.best is not None:
            x, y, number = panel.best
            ax.plot(x, y, "*", color="tab:red", ms=14, label=f"best trial #{number}")
            ax.legend(fontsize=7, loc="lower right")
        if panel.choices is not None:
            ax.set_xticks(range(len(panel.choices)), panel.choices)
            ax.set_xlim(-0.5, len(panel.choices) - 0.5)
        elif panel.log:
            ax.set_xscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())  # no overlapping labels
        ax.set_xlabel(panel.xlabel)
        ax.set_ylabel(info.ylabel)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(info.panels):]:
        ax.axis("off")
    fig.suptitle(info.title)
    if scatter is not None:
        bar = fig.colorbar(scatter, ax=axes.ravel().tolist(), label="trial number", shrink=0.8)
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    fig.savefig(path)  # constrained layout: no tight_layout
    plt.close(fig)
    return path
