"""What `poolbert.train` and `poolbert.tune` return: a run or study directory as a notebook holds
it, read from disk (poolbert.layout), so a folder from an earlier session or another machine
opens the same way: `poolbert.Run("runs/mm")`, `poolbert.Study("runs/quick")`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .errors import PoolbertError
from .layout import RunDir, StudyDir, is_run, is_study

if TYPE_CHECKING:
    from .tuning.results import StudyResult


@dataclass(frozen=True)
class Run:
    """A run directory (`poolbert train`, a study's best trial or seed run).

    Attributes:
        output_dir: the folder.

    Example:
        >>> run = poolbert.train(task="rte", pooling="mean_max", output_dir="runs/mm")
        >>> run.metrics["eval_accuracy"], run.output_dir
    """

    output_dir: Path

    def __init__(self, output_dir: str | os.PathLike) -> None:
        path = Path(output_dir)
        if not is_run(path):
            raise PoolbertError(f"{path}: not a run directory (no metrics.json or history.jsonl)")
        object.__setattr__(self, "output_dir", path)

    @property
    def metrics(self) -> dict[str, Any]:
        """metrics.json: the kept epoch's validation metrics and the training statistics."""
        return RunDir(self.output_dir).read_metrics()

    @property
    def history(self) -> list[dict[str, Any]]:
        """history.jsonl: a row per optimiser step (`type` "step") and per epoch ("eval")."""
        return RunDir(self.output_dir).read_history()

    @property
    def config(self) -> RunConfig:
        """The run's settings (config.json), ready to repeat it: `poolbert.train(run.config,
        output_dir=...)`."""
        return RunConfig.from_dict(RunDir(self.output_dir).read_config(), "config.json")

    def load(self, device: str = "auto") -> Any:
        """The run's model as a `Classifier` (see `poolbert.load`)."""
        from .classifier import Classifier

        return Classifier.load(self.output_dir, device=device)


@dataclass(frozen=True)
class Study:
    """A study directory (`poolbert tune`).

    Attributes:
        output_dir: the folder.

    Example:
        >>> study = poolbert.tune(preset="quick", output_dir="runs/quick")
        >>> study.summary.heads["mean_max"].mean, study.best_run_dir("mean_max")
    """

    output_dir: Path

    def __init__(self, output_dir: str | os.PathLike) -> None:
        path = Path(output_dir)
        if not is_study(path):
            raise PoolbertError(f"{path}: not a study directory (no summary.json, study "
                                "storage or heads/)")
        object.__setattr__(self, "output_dir", path)

    @property
    def summary(self) -> StudyResult:
        """summary.json as a typed `StudyResult`: per head (`heads[name]`) the trials, best
        settings, dev scores and seed statistics; the paired tests between heads
        (`comparisons`); the budget."""
        from .tuning.results import read_result

        result = read_result(StudyDir(self.output_dir))
        if result is None:
            raise PoolbertError(f"{self.output_dir}: no summary.json yet (the study has not "
                                "finished; run it again to resume)")
        return result

    @property
    def heads(self) -> list[str]:
        """The heads with a folder in the study."""
        return StudyDir(self.output_dir).head_names()

    def best_run_dir(self, head: str) -> Path:
        """The run directory of `head`'s best trial (its model included)."""
        run = StudyDir(self.output_dir).head(head).best
        if not run.path.is_dir():
            raise PoolbertError(f"{self.output_dir}: no best run for head {head!r} (heads: "
                                f"{', '.join(self.heads) or 'none'})")
        return run.path

    def load(self, head: str = "best", device: str = "auto") -> Any:
        """A head's best model as a `Classifier` ("best": the best seed mean)."""
        from .classifier import Classifier

        return Classifier.load(self.output_dir, head=head, device=device)
