"""What the figures share: the Agg backend, saving, axis words, parameter axes, FigureSkipped."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.pyplot as plt
from matplotlib.ticker import MaxNLocator

matplotlib.use("Agg")  # files only, no display; figures are made only after this has run


class FigureSkipped(Exception):
    """A figure that cannot be drawn from the data at hand; the message becomes the page's note."""


def draw_or_skip(draw: Callable[[Path], Any], path: Path) -> Any:
    """`draw(path)`; any other failure becomes a FigureSkipped too, naming the figure, since one
    broken figure must not cost the user the whole page."""
    try:
        return draw(path)
    except FigureSkipped:
        raise
    except Exception as exc:
        plt.close("all")  # whatever the failed drawing left open
        raise FigureSkipped(f"Could not draw {path.name}: {type(exc).__name__}: {exc}") from exc


def save(fig: Any, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def finish_over_steps(fig: Any, ax: Any, xlabel: str, ylabel: str, title: str, path: Path) -> Path:
    """The ending of a plot over trial numbers or epochs: whole-number ticks, grid, legend, saved."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    return save(fig, path)


def axis_label(label: str) -> str:
    return f"{label} (fraction correct)" if "accuracy" in label else label


def once(seen: set[str | None], text: str) -> str | None:
    """`text` the first time it is asked for, None after: one legend entry per kind of mark."""
    first = text not in seen
    seen.add(text)
    return text if first else None


def is_log(dist: Any) -> bool:
    return bool(getattr(dist, "log", False))


def is_categorical(dist: Any) -> bool:
    return hasattr(dist, "choices")


def axis_position(dist: Any, value: Any) -> float:
    """Where a value sits on a parameter's axis: its index for categories, else the value."""
    if is_categorical(dist):
        choices = list(dist.choices)
        return float(choices.index(value) if value in choices else choices.index(str(value)))
    return float(value)
