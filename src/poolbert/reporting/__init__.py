"""Figures and tables from saved results; nothing is retrained, so a study from another machine
works.

`build_report(study_dir)` reads what `poolbert tune` wrote (the Optuna storage, trials.csv,
heads/<head>/best/, summary.json, config.json) and writes `report/`: one PNG per figure and a
self-contained `index.html` that embeds them as data URIs. `build_run_report(run_dir)` does the
same for a single `poolbert train` run; `build_any_report(path)` picks one of the two.

Which module owns what:

    load        reading what tune and train wrote (trials from the Optuna storage, else
                trials.csv; heads, best runs, confusion matrices from predictions)
    figures/    one module per figure, data (get_*_info) apart from drawing (plot_*); the only
                modules that import matplotlib
    html        the page machinery: embedded figures, tables, notes, CSS, the document
    study_page  the study report: protocol, comparison tables, per-head sections, config
    run_page    the single-run report, and build_any_report
"""

from ..text import fmt_number
from .figures.loss_curve import plot_loss_curve
from .load import HeadData, StudyData, TrialRecord, best_confusion, load_study_dir
from .run_page import build_any_report, build_run_report
from .study_page import build_report

__all__ = [
    "HeadData", "StudyData", "TrialRecord", "best_confusion", "build_any_report", "build_report",
    "build_run_report", "fmt_number", "load_study_dir", "plot_loss_curve",
]
