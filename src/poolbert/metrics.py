"""Metrics of each problem type, the names `--metric` takes, which way is better, and the two
things fitted on a selection set: a temperature (calibration) and a multi-label threshold.

All functions take plain arrays, so training, studies, the report and tests share them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import RunConfig
from .data import LoadedData, task_spec
from .errors import PoolbertError

# --metric name -> the metrics.json key holding it
METRIC_KEYS = {"accuracy": "eval_accuracy", "f1": "eval_binary_f1", "macro_f1": "eval_f1",
               "micro_f1": "eval_micro_f1", "mcc": "eval_mcc", "pearson": "eval_pearson",
               "spearman": "eval_spearman", "loss": "eval_loss"}
FITTING = {  # the metrics each problem type has
    "single_label": ("accuracy", "f1", "macro_f1", "micro_f1", "mcc", "loss"),
    "multi_label": ("accuracy", "macro_f1", "micro_f1", "loss"),
    "regression": ("pearson", "spearman", "loss"),
}
DEFAULTS = {"single_label": "accuracy", "multi_label": "micro_f1", "regression": "pearson"}
PERCENT = ("accuracy", "f1", "macro_f1", "micro_f1")  # metrics shown as percentages
LABELS = {"accuracy": "accuracy", "f1": "F1", "macro_f1": "macro-F1", "micro_f1": "micro-F1",
          "mcc": "Matthews correlation", "pearson": "Pearson correlation",
          "spearman": "Spearman correlation", "loss": "loss"}


def resolve_metric(asked: str, problem_type: str, task_metric: str | None,
                   num_labels: int) -> str:
    """The metric a run is judged by: the one asked for, else the task's official one, else
    the problem type's usual one; one that does not fit the problem is refused."""
    name = asked if asked != "auto" else task_metric or DEFAULTS[problem_type]
    fitting = [m for m in FITTING[problem_type] if m != "f1" or num_labels == 2]
    if name not in fitting:
        kind = {"single_label": "single-label classification",
                "multi_label": "multi-label classification", "regression": "regression"}
        raise PoolbertError(f"--metric {name} does not fit {kind[problem_type]}; choose one of: "
                            f"{', '.join(fitting)}")
    return name


def higher_is_better(metric: str) -> bool:
    return metric != "loss"


def better(a: float, b: float | None, metric: str) -> bool:
    """Whether value `a` beats `b` (None: nothing yet) under `metric`."""
    if b is None:
        return True
    return a > b if higher_is_better(metric) else a < b


def direction(metric: str) -> str:
    """Optuna's study direction for a study that optimises `metric`."""
    return "maximize" if higher_is_better(metric) else "minimize"


def labelled(labels: np.ndarray) -> np.ndarray:
    """(N,) bool: the rows that carry a label. A hidden label is NaN for regression (float
    targets), -1 for a class index, and a row of -1 for multi-label."""
    if labels.ndim == 2:
        return np.asarray((labels >= 0).all(axis=1))
    return np.asarray(~np.isnan(labels) if labels.dtype.kind == "f" else labels >= 0)


# ----------------------------------------------------------------------------- single-label


def classification_metrics(labels: np.ndarray, preds: np.ndarray, num_labels: int) -> dict:
    """Accuracy, macro-F1 (eval_f1), micro-F1, Matthews correlation, the positive class's F1
    (two labels, as GLUE reports MRPC and QQP), per-class precision and recall, and the
    confusion matrix (rows = true label, columns = predicted)."""
    confusion = np.zeros((num_labels, num_labels), dtype=np.int64)
    np.add.at(confusion, (labels, preds), 1)
    tp = np.diag(confusion).astype(float)
    precision = _ratio(tp, confusion.sum(0))
    recall = _ratio(tp, confusion.sum(1))
    f1 = _ratio(2 * precision * recall, precision + recall)
    accuracy = float((labels == preds).mean()) if len(labels) else 0.0
    out = {"eval_accuracy": accuracy, "eval_f1": float(f1.mean()), "eval_micro_f1": accuracy,
           "eval_mcc": _mcc(confusion), "eval_precision": precision.tolist(),
           "eval_recall": recall.tolist(), "eval_confusion": confusion.tolist()}
    if num_labels == 2:
        out["eval_binary_f1"] = float(f1[1])
    return out


def _ratio(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    return np.divide(a, b, out=np.zeros_like(a), where=b > 0)


def _mcc(confusion: np.ndarray) -> float:
    """Matthews correlation of a K-class confusion matrix (Gorodkin's R_K); 0 when undefined."""
    c = confusion.astype(float)
    total, correct = c.sum(), np.trace(c)
    predicted, true = c.sum(0), c.sum(1)
    denom = math.sqrt((total ** 2 - predicted @ predicted) * (total ** 2 - true @ true))
    return float((correct * total - predicted @ true) / denom) if denom > 0 else 0.0


# ----------------------------------------------------------------------------- multi-label


def multilabel_metrics(labels: np.ndarray, preds: np.ndarray) -> dict:
    """Exact-match accuracy, macro-F1 over labels (eval_f1), micro-F1 over all decisions, and
    per-label precision and recall; labels and preds (N, C) 0/1."""
    tp = (labels * preds).sum(0)
    precision = _ratio(tp, preds.sum(0))
    recall = _ratio(tp, labels.sum(0))
    f1 = _ratio(2 * precision * recall, precision + recall)
    micro = _ratio(np.array([2 * tp.sum()]), np.array([preds.sum() + labels.sum()]))[0]
    exact = float((labels == preds).all(1).mean()) if len(labels) else 0.0
    return {"eval_accuracy": exact, "eval_f1": float(f1.mean()), "eval_micro_f1": float(micro),
            "eval_precision": precision.tolist(), "eval_recall": recall.tolist()}


def best_threshold(labels: np.ndarray, probs: np.ndarray, metric: str = "micro_f1") -> float:
    """The decision threshold (0.05 .. 0.95) with the best `metric` (exact-match accuracy,
    macro- or micro-F1; micro-F1 for loss, which no threshold changes) on these examples; ties
    go to the one nearest 0.5."""
    key = METRIC_KEYS[metric if metric in ("accuracy", "macro_f1") else "micro_f1"]
    grid = np.round(np.arange(0.05, 0.951, 0.05), 2)
    scores = [multilabel_metrics(labels, (probs >= t).astype(float))[key] for t in grid]
    best = max(scores)
    return float(min((t for t, s in zip(grid, scores, strict=True) if s == best),
                     key=lambda t: abs(t - 0.5)))


# ----------------------------------------------------------------------------- regression


def regression_metrics(targets: np.ndarray, preds: np.ndarray) -> dict:
    """Pearson and Spearman correlation (GLUE's STS-B) and the mean squared error."""
    from scipy import stats

    constant = len(targets) < 2 or np.ptp(targets) == 0 or np.ptp(preds) == 0
    pearson = 0.0 if constant else float(stats.pearsonr(targets, preds)[0])
    spearman = 0.0 if constant else float(stats.spearmanr(targets, preds)[0])
    return {"eval_pearson": pearson, "eval_spearman": spearman,
            "eval_mse": float(np.mean((targets - preds) ** 2)) if len(targets) else 0.0}


# ----------------------------------------------------------------------------- calibration


def probabilities(logits: np.ndarray, problem_type: str, temperature: float = 1.0) -> np.ndarray:
    """Class probabilities (softmax; sigmoid per label for multi-label) of logits / T; for
    regression the predicted values (N, 1)."""
    z = logits.astype(np.float64) / temperature
    if problem_type == "regression":
        return logits.astype(np.float32)
    if problem_type == "multi_label":
        return (1.0 / (1.0 + np.exp(-z))).astype(np.float32)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def fit_temperature(logits: np.ndarray, labels: np.ndarray, problem_type: str) -> float:
    """Temperature scaling (Guo et al. 2017): the T > 0 minimising the negative log-likelihood
    of logits / T on these (labelled) examples."""
    from scipy.optimize import minimize_scalar

    z = logits.astype(np.float64)

    def nll(log_t: float) -> float:
        p = np.clip(probabilities(z, problem_type, math.exp(log_t)).astype(np.float64),
                    1e-12, 1 - 1e-12)
        if problem_type == "multi_label":
            return float(-(labels * np.log(p) + (1 - labels) * np.log(1 - p)).mean())
        return float(-np.log(p[np.arange(len(labels)), labels]).mean())

    found = minimize_scalar(nll, bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(found.x))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, problem_type: str,
                               bins: int = 15) -> float:
    """ECE: the confidence-weighted gap between confidence and accuracy over equal-width bins
    (single-label: the top class; multi-label: every label decision)."""
    confidence, accuracy, counts = reliability_bins(probs, labels, problem_type, bins)
    total = counts.sum()
    return float((counts * np.abs(confidence - accuracy)).sum() / total) if total else 0.0


def reliability_bins(probs: np.ndarray, labels: np.ndarray, problem_type: str,
                     bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty equal-width confidence bin: mean confidence, fraction correct, decisions;
    what ECE sums and a reliability diagram draws."""
    confidence, correct = calibration_points(probs, labels, problem_type)
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(confidence, edges[1:-1]), 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    filled = counts > 0
    sums = np.bincount(which, weights=confidence, minlength=bins)[filled]
    hits = np.bincount(which, weights=correct, minlength=bins)[filled]
    return sums / counts[filled], hits / counts[filled], counts[filled]


def calibration_points(probs: np.ndarray, labels: np.ndarray,
                       problem_type: str) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct) per decision: what a reliability diagram bins."""
    if problem_type == "multi_label":
        confident = np.maximum(probs, 1 - probs).ravel()
        return confident, ((probs >= 0.5) == (labels >= 0.5)).ravel().astype(float)
    return probs.max(axis=1), (probs.argmax(axis=1) == labels).astype(float)


def raw_probabilities(calibrated: np.ndarray, problem_type: str,
                      temperature: float) -> np.ndarray:
    """The uncalibrated probabilities back from calibrated ones and T (softmax(T * log p) for
    one label per row, sigmoid(T * logit p) per label), for a reliability diagram."""
    p = np.clip(calibrated.astype(np.float64), 1e-12, 1 - 1e-12)
    if problem_type == "multi_label":
        return probabilities(temperature * np.log(p / (1 - p)), problem_type)
    return probabilities(temperature * np.log(p), problem_type)


# ----------------------------------------------------------------------------- a run's criterion


@dataclass(frozen=True)
class Criterion:
    """What a run is judged by: its metric under its problem type."""

    metric: str
    problem_type: str

    @property
    def key(self) -> str:
        return METRIC_KEYS[self.metric]

    @property
    def label(self) -> str:
        return LABELS[self.metric]

    def value(self, metrics: dict) -> float:
        return float(metrics[self.key])

    def better(self, a: float, b: float | None) -> bool:
        return better(a, b, self.metric)


def criterion(config: RunConfig, data: LoadedData) -> Criterion:
    """What runs of `config` on `data` are judged by: --metric, else the task's own metric,
    else the problem type's usual one."""
    spec = task_spec(config.data.task)
    metric = resolve_metric(config.train.metric, data.problem_type,
                            spec.metric if spec else None, len(data.label_names))
    return Criterion(metric, data.problem_type)
