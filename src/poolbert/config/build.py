"""Settings as a caller gives them (a settings file, a config object, keyword arguments or
flags) turned into a checked config, by the same rules for the command line and for Python."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

from ..errors import PoolbertError
from ..text import first_line
from .run import ALIASES, RunConfig, apply_overrides, flatten


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
        raise PoolbertError(f"{path}: cannot parse: {first_line(exc)}") from None
    if not isinstance(raw, dict):
        raise PoolbertError(f"{path}: expected a mapping of settings at the top level")
    return raw


# custom files or columns given without a task mean custom data (no GLUE preset)
CUSTOM_DATA_KEYS = ("train_file", "validation_file", "text_columns", "label_columns")


def run_config(base: RunConfig | str | os.PathLike | None = None,
               values: dict[str, Any] | None = None, source: str = "settings") -> RunConfig:
    """A checked RunConfig, by the same rules for flags and keyword arguments.

    `base`: a RunConfig (copied, never changed) or a settings file (JSON, YAML or TOML; a run's
    config.json works); then `values` by field name (the flag's name `model` too) override it.
    Custom files or columns in `values` without a task (in `values` or in the file) mean custom
    data. Raises PoolbertError naming the bad value.
    """
    values = dict(values or {})
    if isinstance(base, RunConfig):
        config, chosen = copy.deepcopy(base), {"task"}  # an object states its own task
    elif base is not None:
        raw = read_settings_file(base)
        config, chosen = RunConfig.from_dict(raw, source=str(base)), set(flatten(raw))
    else:
        config, chosen = RunConfig(), set()
    apply_overrides(config, values, source)
    chosen |= {ALIASES.get(key, key) for key in values}
    if "task" not in chosen and any(values.get(key) for key in CUSTOM_DATA_KEYS):
        config.data.task = None
    return config.validate()
