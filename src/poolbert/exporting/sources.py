"""What a model is taken from: a run directory, one head of a study, a model folder or an export.

`resolve_source` finds the model folder and the records around it (through `poolbert.layout`);
`training_info` reads what predict needs from those records or from the export's poolbert.json,
the one file format of its own that an export folder has (written here by `write_export_info`).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import PreTrainedModel

from ..errors import PoolbertError
from ..files import read_json, refuse_unfinished, write_json
from ..layout import RunDir, StudyDir
from ..text import first_line
from ..tuning.results import StudyResult, read_result
from ..version import __version__

EXPORT_INFO = "poolbert.json"  # head, task, text columns, max_length: what predict needs later
MODEL_CARD = "README.md"  # an export folder has both; a bare model folder has neither


@dataclass
class Source:
    """Where a model and its records live; `run` / `study` are None when absent."""

    model_dir: Path
    run: RunDir | None = None
    study: StudyDir | None = None
    head: str | None = None  # the study head that was picked
    exported: bool = False  # already an export folder (README.md + poolbert.json)

    def run_config(self) -> dict:
        return self.run.read_config() if self.run else {}

    def metrics(self) -> dict:
        return self.run.read_metrics() if self.run else {}

    def result(self) -> StudyResult | None:
        """The study's summary.json, typed; None for a run, or a study without one."""
        return read_result(self.study) if self.study else None

    def best(self) -> dict:
        return self.study.head(self.head).read_best() if self.study and self.head else {}


def resolve_source(path: str | os.PathLike, head: str = "best") -> Source:
    """A run directory, a study directory (`head`: 'best' or a name), a model or export folder."""
    path = Path(path)
    if not path.exists():
        raise PoolbertError(f"{path}: not found")
    refuse_unfinished(path)
    study, run = StudyDir(path), RunDir(path)
    if study.heads.is_dir():
        name = pick_head(path, head)
        best = study.head(name).best
        if not best.has_model():
            raise PoolbertError(f"{best.path}: no model/ folder (the study ran without saving "
                                "models?)")
        return Source(best.model, best, study, name)
    if run.has_model():
        return Source(run.model, run)
    if (path / "config.json").is_file() and any(path.glob("*.safetensors")):
        if (path / EXPORT_INFO).is_file():
            return Source(path, exported=(path / MODEL_CARD).is_file())
        parent = RunDir(path.parent)  # a run directory's model/ folder, named directly
        in_run = path.name == "model" and parent.config_file.is_file()
        return Source(path, parent if in_run else None)
    raise PoolbertError(f"no saved model in {path}: expected a run directory (model/), a study "
                        "directory (heads/), or a model folder (config.json + model.safetensors)")


def pick_head(study: str | os.PathLike, head: str) -> str:
    """A named head, or for 'best' the best seed mean in summary.json (else best tuning value)."""
    folder = StudyDir(Path(study))
    heads = [h for h in folder.head_names() if folder.head(h).best.path.is_dir()]
    if not heads:
        raise PoolbertError(f"{study}: no heads/<head>/best/ run directories")
    if head != "best":
        if head not in heads:
            raise PoolbertError(f"{study}: no head {head!r} (heads with a best run: "
                                f"{', '.join(heads)})")
        return head
    scores = _head_scores(folder, heads)
    if not scores:
        raise PoolbertError(f"{study}: no scores in summary.json or heads/*/best.json to pick "
                            f"the best head; name one with --head ({', '.join(heads)})")
    return max(scores, key=lambda h: scores[h])  # ties: the first in name order


def _head_scores(study: StudyDir, heads: list[str]) -> dict[str, float]:
    """Seed means when every head has one (one yardstick for all), else the tuning best values."""
    result = read_result(study)
    found = result.heads if result else {}
    means = {h: found[h].mean if h in found else None for h in heads}
    if all(is_number(v) for v in means.values()):
        return {h: float(v) for h, v in means.items() if v is not None}
    best = {}
    for h in heads:
        value: Any = found[h].best_value if h in found else None
        if not is_number(value):
            value = study.head(h).read_best().get("value")
        if is_number(value):
            best[h] = float(value)
    return best


def is_number(value: Any) -> bool:
    """A finite int or float read from JSON (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


@dataclass
class TrainingInfo:
    """What predict needs from training: the task, the text columns and the max length."""

    task: str | None = None
    text_columns: list[str] | None = None
    max_length: int | None = None
    head: str | None = None


def training_info(source: Source) -> TrainingInfo:
    """From the export's poolbert.json, else from the run's config.json."""
    info_file = source.model_dir / EXPORT_INFO
    if source.exported or info_file.is_file():
        raw = read_json(info_file) if info_file.is_file() else {}
        raw = raw if isinstance(raw, dict) else {}
        return TrainingInfo(raw.get("task"), raw.get("text_columns"), raw.get("max_length"),
                            raw.get("head"))
    config = source.run_config()
    data, train = config.get("data", {}), config.get("train", {})
    columns = config.get("text_columns_resolved") or data.get("text_columns")
    return TrainingInfo(data.get("task"), columns, train.get("max_length"),
                        config.get("model", {}).get("pooling"))


def write_export_info(folder: Path, info: TrainingInfo, head: str, labels: list[str],
                      remote_code: bool) -> None:
    """poolbert.json: what `training_info` reads back from an export folder."""
    write_json(folder / EXPORT_INFO, {
        "poolbert_version": __version__, "head": head, "task": info.task,
        "text_columns": info.text_columns, "max_length": info.max_length,
        "label_names": labels, "remote_code": remote_code,
    })


def load_classifier(model_dir: str | os.PathLike) -> tuple[PreTrainedModel, Any]:
    """(model in eval mode, tokenizer) from a poolbert model folder or an exported one.

    Exported poolbert heads load with poolbert's own classes, never the folder's code; the
    tokenizer gets the model's config, so transformers neither asks whether to run the folder's
    code (its auto_map) nor guesses a config.
    """
    from transformers import AutoModelForSequenceClassification

    from ..model import PoolbertForSequenceClassification

    model_dir = Path(model_dir)
    config, tokenizer = load_config_and_tokenizer(model_dir, "model")
    poolbert = config.model_type == "poolbert"
    try:
        loader = PoolbertForSequenceClassification if poolbert else \
            AutoModelForSequenceClassification
        model = loader.from_pretrained(model_dir, config=config, dtype=torch.float32)
    except (OSError, ValueError, KeyError) as exc:
        raise PoolbertError(f"cannot load the model in {model_dir}: {first_line(exc)}") from None
    return model.eval(), tokenizer


def load_config_and_tokenizer(folder: Path, what: str) -> tuple[Any, Any]:
    """(config, tokenizer) of a poolbert model folder or an exported one: poolbert's own config
    class for a poolbert head, never the folder's code, and the tokenizer given that config;
    `what` names the thing being loaded in the one-line error."""
    from transformers import AutoConfig, AutoTokenizer

    from ..model import PoolbertConfig

    poolbert = read_json(folder / "config.json").get("model_type") == "poolbert"
    try:
        config = (PoolbertConfig if poolbert else AutoConfig).from_pretrained(folder)
        return config, AutoTokenizer.from_pretrained(folder, config=config)
    except (OSError, ValueError, KeyError) as exc:
        raise PoolbertError(f"cannot load the {what} in {folder}: {first_line(exc)}") from None


def label_names(config: Any) -> list[str]:
    """The class names of a model's config in class-index order."""
    return [config.id2label[i] for i in range(len(config.id2label))]
