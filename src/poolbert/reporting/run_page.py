"""The single-run report (`build_run_report`) and `build_any_report`, which picks a study or a
run report for a folder."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from ..errors import PoolbertError
from ..layout import Predictions, RunDir, is_run
from ..text import fmt_number
from .figures._common import FigureSkipped
from .figures.confusion import get_confusion_info, plot_confusions
from .figures.loss_curve import plot_loss_curve, run_history
from .figures.reliability import get_reliability_info, plot_reliability
from .html import INDEX, Page, esc, generated_line, note, pre_json, report_page, table
from .load import existing_dir, nested
from .study_page import build_report

RUN_METRICS = MappingProxyType({
    "metric": "metric the best epoch was chosen by", "problem_type": "problem type",
    "eval_accuracy": "validation accuracy (multi-label: exact match)",
    "eval_f1": "validation macro-F1", "eval_binary_f1": "validation F1 of the positive label",
    "eval_micro_f1": "validation micro-F1", "eval_mcc": "validation Matthews correlation",
    "eval_pearson": "validation Pearson correlation",
    "eval_spearman": "validation Spearman correlation", "eval_mse": "validation mean squared error",
    "eval_loss": "validation loss", "eval_threshold": "decision threshold (multi-label)",
    "temperature": "calibration temperature", "eval_ece": "expected calibration error, T = 1",
    "eval_ece_calibrated": "expected calibration error, calibrated",
    "best_epoch": "best epoch", "epochs_run": "epochs run", "n_eval": "validation examples",
    "eval_runtime": "evaluation time (s)",
    "eval_samples_per_second": "evaluation speed (examples/s)",
    "train_runtime": "training time (s)", "train_samples_per_second": "training speed (examples/s)",
})


def build_run_report(run_dir: Path) -> Path:
    """Write `<run_dir>/report/` for one `poolbert train` run; return index.html's path."""
    run = RunDir(existing_dir(run_dir))
    if not run.history_file.is_file() and not run.metrics_file.is_file():
        raise PoolbertError(f"{run.path}: not a run directory (no history.jsonl or metrics.json)")
    metrics, config = run.read_metrics(), run.read_config()
    pooling = nested(config, "model", "pooling") or "run"
    with report_page(run.report, f"poolbert run report: {run.path.name}") as page:
        page.add(f"<h1>poolbert run report: {esc(run.path.resolve().name)}</h1>")
        task = nested(config, "data", "task")
        model = nested(config, "model", "model_name_or_path")
        page.add(f'<p class="meta">Task: {esc(task or "custom data")} · encoder: '
                 f'{esc(model or "?")} · pooling: {esc(pooling)}</p>')
        page.add(generated_line(str(run.path)))
        _metrics_section(metrics, page)
        _figures_section(run, metrics, pooling, page)
        page.add("<h2>Configuration</h2>")
        page.add(pre_json(config) if config else note("config.json is missing."))
    return run.report / INDEX


def _metrics_section(metrics: dict, page: Page) -> None:
    page.add("<h2>Metrics</h2>")
    rows = [[label, k, fmt_number(metrics[k]) if not isinstance(metrics[k], str) else metrics[k]]
            for k, label in RUN_METRICS.items() if k in metrics]
    page.add(table(["metric", "key in metrics.json", "value"], rows, "metrics") if rows
             else note("metrics.json is missing: no metrics table."))


def _figures_section(run: RunDir, metrics: dict, pooling: str, page: Page) -> None:
    page.add("<h2>Figures</h2>")
    page.figure("loss_curve.png", "Training loss per step, validation loss and metric per "
                "epoch.", lambda p: plot_loss_curve(run_history(run, run.history_file.name), p,
                                                    pooling, metrics.get("metric"),
                                                    metrics.get("problem_type")))
    if metrics.get("problem_type", "single_label") == "single_label":
        page.figure("confusion_matrix.png", "Confusion matrix on the validation set at the best "
                    "epoch.", lambda p: plot_confusions(
                        get_confusion_info([(pooling, metrics)],
                                           "Confusion matrix at the best epoch"), p))
    if metrics.get("problem_type") != "regression":
        page.figure("reliability.png", "Reliability diagram on the validation set: fraction "
                    "correct per confidence bin before and after temperature scaling.",
                    lambda p: plot_reliability(get_reliability_info(
                        [(pooling, _predictions(run), metrics.get("temperature"))]), p))


def _predictions(run: RunDir) -> Predictions:
    if not run.predictions_file.is_file():
        raise FigureSkipped(f"No reliability diagram: {run.predictions_file.name} is missing.")
    return run.read_predictions()


def build_any_report(path: Path, storage: str | None = None) -> Path:
    """A study report for a study directory, a run report for a run directory."""
    path = existing_dir(path)
    return build_run_report(path) if is_run(path) else build_report(path, storage)
