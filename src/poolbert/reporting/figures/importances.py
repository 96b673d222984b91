"""Hyperparameter importances (report fig. 2): Optuna's fANOVA, else mean decrease in impurity."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from ..load import HeadData, param_names
from ._common import FigureSkipped, save

FANOVA_DESCRIPTION = ("fANOVA (optuna.importance.FanovaImportanceEvaluator, 64 trees, seed 0), "
                      "Optuna's default evaluator")
MDI_DESCRIPTION = ("mean decrease in impurity of a random forest "
                   "(optuna.importance.MeanDecreaseImpurityImportanceEvaluator, seed 0)")


@dataclass(frozen=True)
class ImportancesInfo:
    title: str
    names: list[str]  # bottom to top: the largest importance is drawn on top
    values: list[float]
    evaluator: str  # the evaluator used, in words, for the caption


def param_importances(head: HeadData) -> tuple[dict[str, float], str]:
    """Optuna's importances of the varying hyperparameters, and the evaluator used, in words."""
    import optuna

    done = head.scored()
    if len(done) < 2:
        raise FigureSkipped("Hyperparameter importances need at least 2 complete trials; this "
                            f"head has {len(done)}.")
    names = param_names(done)
    varying = [p for p in names if len({repr(t.params.get(p)) for t in done}) > 1
               and all(p in t.params for t in done)]
    left_out = [p for p in names if p not in varying]
    if not varying:
        raise FigureSkipped("Hyperparameter importances need hyperparameters that vary across "
                            "complete trials; none does here.")
    if len({t.value for t in done}) < 2:
        raise FigureSkipped("Hyperparameter importances need the objective to vary; all "
                            f"{len(done)} complete trials have the same value.")
    study = optuna.create_study(
        direction=optuna.study.StudyDirection[head.direction.upper()])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.add_trials([optuna.trial.create_trial(
            value=t.value, params={p: t.params[p] for p in varying},
            distributions={p: t.distributions[p] for p in varying}) for t in done])
        evaluators = ((optuna.importance.FanovaImportanceEvaluator(seed=0), FANOVA_DESCRIPTION),
                      (optuna.importance.MeanDecreaseImpurityImportanceEvaluator(seed=0),
                       MDI_DESCRIPTION))
        errors = []
        for evaluator, description in evaluators:
            try:
                found = optuna.importance.get_param_importances(study, evaluator=evaluator)
            except (RuntimeError, ValueError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            if errors:
                description += f" (fANOVA failed: {errors[0]})"
            if left_out:
                description += (f"; left out (constant or not in every complete trial): "
                                f"{', '.join(left_out)}")
            return found, description
    raise FigureSkipped("Optuna could not compute importances: " + "; ".join(errors))


def get_importances_info(head: HeadData) -> ImportancesInfo:
    importances, evaluator = param_importances(head)
    names = list(importances)[::-1]
    short = "fANOVA" if evaluator.startswith("fANOVA") else "mean decrease impurity"
    n_done = len(head.by_state("COMPLETE"))
    return ImportancesInfo(
        title=f"Hyperparameter importances: {head.name} ({short}, {n_done} complete trials)",
        names=names, values=[importances[n] for n in names], evaluator=evaluator)


def plot_importances(info: ImportancesInfo, path: Path) -> Path:
    """Horizontal bars, largest on top."""
    fig, ax = plt.subplots(figsize=(8, max(2.8, 1.4 + 0.55 * len(info.names))), dpi=110)
    bars = ax.barh(info.names, info.values, color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for v in info.values], padding=3, fontsize=9)
    ax.set_xlim(0, max(1.0, max(info.values) * 1.15))
    ax.set_xlabel("importance (share of objective variance, sums to 1)")
    ax.set_ylabel("hyperparameter")
    ax.set_title(info.title)
    ax.grid(axis="x", alpha=0.3)
    return save(fig, path)
