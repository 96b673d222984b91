"""Accuracy per head: each seed re-training, their mean with its 95% interval, the best model,
and the baseline as a horizontal line (heads that do not beat it marked under their names)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from ...tuning.results import HeadResult
from ..load import StudyData, metric_label
from ._common import FigureSkipped, axis_label, once, save


@dataclass(frozen=True)
class HeadAccuracy:
    name: str
    seeds: list[float]  # one accuracy per seed re-training
    mean: float | None
    interval: tuple[float, float] | None  # 95% interval of the mean (the mean when not given)
    best: float | None  # the best trial's model
    beats_baseline: bool | None = None  # None: not tested (no baseline in the summary)


@dataclass(frozen=True)
class HeadAccuracyInfo:
    title: str
    ylabel: str
    heads: list[HeadAccuracy]
    baseline: tuple[str, float] | None = None  # its name and value on dev


def get_head_accuracy_info(study: StudyData) -> HeadAccuracyInfo:
    result = study.result
    if result is None or not result.heads:
        raise FigureSkipped("The per-head accuracy plot needs summary.json with per-head results.")
    names = [h for h in study.heads if h in result.heads] or list(result.heads)
    n_eval = result.n_eval
    return HeadAccuracyInfo(
        title="Accuracy per head" + (f" (validation set, n = {n_eval})" if n_eval else ""),
        ylabel=axis_label(metric_label(result.metric)),
        heads=[_head(name, result.heads[name]) for name in names],
        baseline=(result.baseline.name, result.baseline.value)
        if result.baseline is not None and result.baseline.value is not None else None)


def _head(name: str, h: HeadResult) -> HeadAccuracy:
    mean = h.mean
    interval = (h.ci95[0], h.ci95[1]) if h.ci95 else (mean, mean) if mean is not None else None
    return HeadAccuracy(
        name=name, seeds=[a for a in h.seed_values if a is not None], mean=mean,
        interval=interval, best=h.dev_value_best if h.dev_value_best is not None
        else h.best_value, beats_baseline=h.beats_baseline)


def tick_label(head: HeadAccuracy) -> str:
    """The head's name, and under it whether it failed to beat the baseline."""
    return f"{head.name}\n(does not beat\nthe baseline)" if head.beats_baseline is False \
        else head.name


def plot_head_accuracy(info: HeadAccuracyInfo, path: Path) -> Path:
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(info.heads) + 2.5), 4.5), dpi=110)
    rng = np.random.default_rng(0)  # jitter only
    drawn: set[str | None] = set()
    for x, head in enumerate(info.heads):
        if head.seeds:
            ax.plot(x + rng.uniform(-0.12, 0.12, len(head.seeds)), head.seeds, "o", color="grey",
                    alpha=0.6, ms=5, label=once(drawn, "one seed re-training"))
        if head.mean is not None and head.interval is not None:
            lo, hi = head.interval
            ax.errorbar(x, head.mean, yerr=[[head.mean - lo], [hi - head.mean]], fmt="o",
                        color="k", capsize=6, ms=8, lw=2,
                        label=once(drawn, "seed mean with 95% interval"))
        if head.best is not None:
            ax.plot(x + 0.25, head.best, "D", mfc="none", color="tab:red", ms=8,
                    label=once(drawn, "best trial's model"))
    if info.baseline is not None:
        name, value = info.baseline
        ax.axhline(value, color="tab:blue", ls="--", lw=1.2, label=f"baseline: {name}")
    ax.set_xticks(range(len(info.heads)), [tick_label(head) for head in info.heads])
    ax.set_xlim(-0.6, len(info.heads) - 0.4)
    ax.set_xlabel("pooling head")
    ax.set_ylabel(info.ylabel)
    ax.set_title(info.title)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, path)
