"""Calibration of a kept model: a temperature for its probabilities and, for multi-label, the
decision threshold, both fitted on the selection set (or fixed), and stored in the model's
config so a saved or exported model predicts with them."""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from .config import RunConfig
from .metrics import expected_calibration_error, fit_temperature
from .model import PoolbertForSequenceClassification
from .scoring import ScoreOptions, Scores, score_logits


@dataclass(frozen=True)
class Calibration:
    """A run's temperature and multi-label threshold; None: fitted on the selection set."""

    temperature: float | None = None
    threshold: float | None = None


def planned_calibration(config: RunConfig, keep_last: bool) -> Calibration:
    """Fitted on the validation set when it is the run's selection set; fixed (T = 1,
    threshold 0.5) when the run keeps its last epoch, since then the validation set is a
    study's dev set and nothing may be fitted on it. --no-calibrate keeps T = 1."""
    if keep_last:
        return Calibration(1.0, 0.5)
    return Calibration(None if config.train.calibrate else 1.0, None)


def calibrate(model: PoolbertForSequenceClassification, scores: Scores, labels: np.ndarray,
              how: ScoreOptions, plan: Calibration) -> Scores:
    """The kept epoch's scores with the planned temperature and threshold (fitted on these
    examples where the plan says None); both go into the model's config. ECE before and
    after."""
    if how.problem_type == "regression":
        return scores
    temperature = plan.temperature
    if temperature is None:
        temperature = fit_temperature(scores.logits, labels, how.problem_type)
    raw = expected_calibration_error(scores.probs, labels, how.problem_type)
    calibrated = replace(how, temperature=temperature, threshold=plan.threshold)
    found = score_logits(labels, scores.logits, 0.0, 0, 0.0, calibrated)
    if how.problem_type == "multi_label":
        model.config.decision_threshold = found.metrics["eval_threshold"]
    model.config.calibration_temperature = temperature
    keep = ("eval_loss", "eval_runtime", "eval_samples_per_second", "eval_steps_per_second")
    metrics = {**found.metrics, **{k: scores.metrics[k] for k in keep if k in scores.metrics},
               "temperature": temperature, "eval_ece": raw,
               "eval_ece_calibrated": expected_calibration_error(found.probs, labels,
                                                                 how.problem_type)}
    return replace(found, metrics=metrics)
