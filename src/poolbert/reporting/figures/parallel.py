"""Parallel coordinates: one vertical axis per hyperparameter plus the objective."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt

from ...text import fmt_number
from ..load import HeadData, param_names
from ._common import FigureSkipped, axis_position, is_categorical, is_log, save


@dataclass(frozen=True)
class ParallelInfo:
    title: str
    labels: list[str]  # the axes: hyperparameters, then the objective
    lines: list[list[float]]  # per complete trial, its position (0 to 1) on each axis
    colours: list[float]  # per complete trial, its objective scaled 0 to 1 (the colour map)
    numbers: list[int]  # per complete trial, its number
    best: int | None  # the best trial's number
    ticks: list[list[tuple[float, str]]]  # per axis, (position, text) labels


def get_parallel_info(head: HeadData, label: str) -> ParallelInfo:
    done = head.scored()
    names = [p for p in param_names(done) if all(p in t.params for t in done)]
    if len(done) < 2 or not names:
        raise FigureSkipped("Parallel coordinates need at least 2 complete trials with the same "
                            f"hyperparameters; this head has {len(done)} complete trial(s).")
    dists = {p: done[0].distributions.get(p) for p in names}
    columns = [[_scaled(dists[p], t.params[p]) for t in done] for p in names]
    columns.append([t.objective for t in done])
    labels = names + [label]
    norm = [_normalise(col) for col in columns]
    best = head.best_trial()
    return ParallelInfo(
        title=f"Parallel coordinates: {head.name} ({len(done)} complete trials; colour = "
              "objective)", labels=labels,
        lines=[[col[i] for col in norm] for i in range(len(done))],
        colours=_normalise([t.objective for t in done]), numbers=[t.number for t in done],
        best=best.number if best is not None else None,
        ticks=[_axis_ticks(dists.get(name), col) for name, col in zip(labels, columns, strict=True)])


def _scaled(dist: Any, value: Any) -> float:
    if is_categorical(dist):
        return axis_position(dist, value)
    return math.log10(value) if is_log(dist) and value > 0 else float(value)


def _normalise(col: list[float]) -> list[float]:
    low, high = min(col), max(col)
    return [0.5 if high == low else (v - low) / (high - low) for v in col]


def _axis_ticks(dist: Any, col: list[float]) -> list[tuple[float, str]]:
    """Labels along one axis: categories, or the min and max values."""
    low, high = min(col), max(col)
    if is_categorical(dist):
        used = sorted(set(col))
        return [(0.5 if high == low else (v - low) / (high - low), str(dist.choices[int(v)]))
                for v in used]
    unscale = (lambda v: 10 ** v) if is_log(dist) else (lambda v: v)
    if high == low:
        return [(0.5, fmt_number(unscale(low), small=1e-2))]
    return [(0.0, fmt_number(unscale(low), small=1e-2)),
            (1.0, fmt_number(unscale(high), small=1e-2))]


def plot_parallel(info: ParallelInfo, path: Path) -> Path:
    colours = plt.get_cmap("viridis")(info.colours)
    fig, ax = plt.subplots(figsize=(max(8, 2.0 * len(info.labels)), 4.8), dpi=110)
    xs = range(len(info.labels))
    for i, (number, ys) in enumerate(zip(info.numbers, info.lines, strict=True)):
        if number == info.best:
            ax.plot(xs, ys, color="tab:red", lw=2.5, zorder=3, label=f"best trial #{number}")
        else:
            ax.plot(xs, ys, color=colours[i], lw=1.2, alpha=0.8)
    for x, ticks in enumerate(info.ticks):
        ax.axvline(x, color="k", lw=0.8)
        for y, text in ticks:
            ax.text(x + 0.03, y, text, fontsize=7, va="center")
    ax.set_xticks(xs, info.labels, rotation=15)
    ax.set_yticks([0, 1], ["min", "max"])
    ax.set_ylabel("position on each axis (min to max)")
    ax.set_xlim(-0.2, len(info.labels) - 0.6)
    ax.set_title(info.title)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.12))
    return save(fig, path)
