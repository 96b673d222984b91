"""Settings as dataclasses: data, model and training, loaded from a file plus CLI overrides.

A run's `config.json` is `RunConfig.to_dict()`; `RunConfig.from_dict()` of it rebuilds the same
run, so every run can be repeated from its saved config and seed.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import DEFAULT_MODEL
from .errors import PoolbertError

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
# SDPA backends a run may allow (see device.attention_kernels)
ATTENTION_BACKENDS = ("auto", "efficient", "cudnn", "flash", "math")



@dataclass
class DataConfig:
    """Where the examples come from and which columns hold text and label."""

    task: str | None = "rte"  # a GLUE preset (text columns, label names); None for custom files
    data_dir: str | None = None  # local folder with train/validation[/test] files
    train_file: str | None = None
    validation_file: str | None = None
    test_file: str | None = None
    text_columns: list[str] | None = None  # one (single sentence) or two (pair); preset default
    label_column: str = "label"
    max_train_samples: int | None = None
    max_eval_samples: int | None = None


@dataclass
class ModelConfig:
    """The encoder and the head on top of it."""

    model_name_or_path: str = DEFAULT_MODEL  # hub name, local folder, or the embedded default
    pooling: str = "cls"
    dropout: float = 0.1  # dropout before the linear classifier (the report's "dropout")


@dataclass
class TrainConfig:
    """One fine-tuning run."""

    learning_rate: float = 5e-5
    num_train_epochs: int = 3
    max_length: int = 128
    batch_size: int = 16
    eval_batch_size: int | None = None  # None: 128 on CUDA, 32 on CPU (see evaluate.py)
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float = 1.0
    seed: int = 42
    precision: str = "auto"  # auto = bf16 (or fp16) autocast on CUDA, fp32 on CPU
    device: str = "auto"
    group_by_length: bool = True
    compile: bool = False  # torch.compile the encoder (CUDA; padded to length buckets)
    attention: str = "auto"  # CUDA attention kernels; auto = flash or memory-efficient, no cuDNN


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
        apply_overrides(config, flatten(raw, source), source)
        return config

    def validate(self) -> RunConfig:
        validate(self)
        return self


SECTIONS = ("data", "model", "train")
# written into a run's config.json for the record; read back, they are not settings
RECORD_ONLY_KEYS = ("versions", "command", "data_source", "text_columns_resolved")


def field_names(section: str) -> list[str]:
    return [f.name for f in dataclasses.fields(type(getattr(RunConfig(), section)))]


def section_of(key: str) -> str | None:
    for section in SECTIONS:
        if key in field_names(section):
            return section
    return None


def flatten(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Nested sections are merged into one flat mapping of field name to value."""
    flat: dict[str, Any] = {}
    for key, value in raw.items():
        if key in SECTIONS and isinstance(value, dict):
            flat.update(value)
        elif key in RECORD_ONLY_KEYS:
            continue  # written into config.json for the record; not settings
        else:
            flat[key] = value
    return flat


def apply_overrides(config: RunConfig, values: dict[str, Any], source: str = "flags") -> None:
    """Set fields by name (None values are skipped, so unset CLI flags keep file values)."""
    aliases = {"model": "model_name_or_path"}
    for key, value in values.items():
        if value is None:
            continue
        key = aliases.get(key, key)
        section = section_of(key)
        if section is None:
            raise PoolbertError(f"{source}: unknown setting {key!r}")
        target = getattr(config, section)
        setattr(target, key, coerce(key, value, getattr(target, key), source))


def coerce(key: str, value: Any, current: Any, source: str) -> Any:
    """Bring a value from a file or flag to the field's type, or say which key is wrong."""
    if key == "text_columns" and isinstance(value, str):
        return [c.strip() for c in value.split(",") if c.strip()]
    kinds = {f.name: f.type for sec in SECTIONS for f in dataclasses.fields(type(getattr(RunConfig(), sec)))}
    kind = str(kinds[key])
    try:
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if kind.startswith("bool"):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
    except (TypeError, ValueError):
        raise PoolbertError(f"{source}: {key} = {value!r} is not a valid {kind.split(' ')[0]}") from None
    return value


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
    if t.precision not in PRECISIONS:
        raise PoolbertError(f"precision must be one of {', '.join(PRECISIONS)}, got {t.precision!r}")
    if t.attention not in ATTENTION_BACKENDS:
        raise PoolbertError(f"attention must be one of {', '.join(ATTENTION_BACKENDS)}, "
                            f"got {t.attention!r}")
    if d.text_columns is not None and not 1 <= len(d.text_columns) <= 2:
        raise PoolbertError(f"text_columns takes one or two columns, got {d.text_columns}")


def read_settings_file(path: str | os.PathLike) -> dict[str, Any]:
    """A JSON, YAML or TOML file of settings, as a dict; a clear error naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise PoolbertError(f"config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix in (".yaml", ".yml"):
            import yaml

            raw = yaml.safe_load(text)
        elif path.suffix == ".toml":
            import tomllib

            raw = tomllib.loads(text)
        else:
            raw = json.loads(text)
    except Exception as exc:  # every parser has its own error type; the message is what matters
        first_line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise PoolbertError(f"{path}: cannot parse: {first_line}") from None
    if not isinstance(raw, dict):
        raise PoolbertError(f"{path}: expected a mapping of settings at the top level")
    return raw


def load_config(path: str | None, overrides: dict[str, Any]) -> RunConfig:
    """File values first (if any), then CLI overrides, then validation."""
    config = RunConfig()
    if path:
        config = RunConfig.from_dict(read_settings_file(path), source=str(path))
    apply_overrides(config, overrides)
    return config.validate()
