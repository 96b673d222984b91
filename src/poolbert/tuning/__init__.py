"""Optuna studies that tune and compare pooling heads (docs/internals.md lists the files).

`run_study(TuneConfig(...))` runs or resumes a whole study; the pieces are importable for tests
and scripts: search spaces (`space`), trial bookkeeping (`trials`), the trial objective
(`objective`), storages (`storage`), heads' studies (`heads`), workers (`worker`,
`pack_worker`, `processes`, `liveness`), the final seed runs (`final`), statistics (`stats`)
and the written summary (`summary`).
Names are loaded on first use, so `poolbert --help` and `poolbert train` do not import Optuna.
"""

from importlib import import_module
from typing import Any

_HOMES = {
    "BestKeeper": "trials", "Objective": "objective", "TrialFailed": "trials",
    "TrialSetup": "trials", "trial_config": "trials",
    "PRESETS": "settings", "PRUNERS": "settings", "SELECT_ON": "settings",
    "TuneConfig": "settings",
    "HeadSpace": "space", "Param": "space", "SearchSpace": "space", "load_space": "space",
    "parse_space": "space",
    "run_study": "study",
}
__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f".{_HOMES[name]}", __name__), name)
