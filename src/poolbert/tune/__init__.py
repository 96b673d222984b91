"""Optuna studies that tune and compare pooling heads (see docs/internals.md for the files).

`run_study(TuneConfig(...))` runs or resumes a whole study; the pieces are importable for tests
and scripts: search spaces (`space`), the trial objective (`objective`), storages and workers,
the final seed runs (`final`), statistics (`stats`) and the written summary (`summary`).
"""

from .objective import BestKeeper, Objective, TrialFailed, TrialSetup, trial_config
from .settings import PRESETS, PRUNERS, SELECT_ON, TuneConfig, redact
from .space import HeadSpace, Param, SearchSpace, load_space, parse_space
from .study import run_study

__all__ = [
    "PRESETS", "PRUNERS", "SELECT_ON", "BestKeeper", "HeadSpace", "Objective", "Param",
    "SearchSpace", "TrialFailed", "TrialSetup", "TuneConfig", "load_space", "parse_space",
    "redact", "run_study", "trial_config",
]
