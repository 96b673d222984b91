"""Search spaces as data: a YAML file names, per pooling head, the settings to search.

```yaml
heads:
  cls:
    n_trials: 48
    params:
      learning_rate: {type: float, low: 1.0e-5, high: 1.0e-4, log: true}
      num_train_epochs: {type: categorical, choices: [3, 5, 10, 15]}
      dropout: {type: float, low: 0.0, high: 0.2}
default:            # any head not listed above (mean, max, weighted_layers, ...)
  n_trials: 30
  params:
    learning_rate: {type: float, low: 1.0e-5, high: 1.0e-4, log: true}
    batch_size: [16, 32]          # a plain list is a categorical
```
A parameter name is any `RunConfig` field (learning_rate, batch_size, weight_decay, warmup_ratio,
dropout, max_length, pooling, ...); settings not searched come from the command line. Types:
`float` (low, high, optional log or step), `int` (low, high, optional log or step) and
`categorical` (choices). Every mistake is a one-line `PoolbertError` naming the file and the key.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ..config import SECTIONS, DataConfig, coerce, read_settings_file, section_of, value_type
from ..errors import PoolbertError
from ..pooling import POOLERS, check_pooling

PARAM_TYPES = ("float", "int", "categorical")
PARAM_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
}
HEAD_KEYS = {"n_trials", "params"}
# loaded once per worker (data, tokenizer, encoder) or per machine: the same for every trial
NOT_SEARCHABLE = {f.name for f in dataclasses.fields(DataConfig)} | {
    "model_name_or_path", "device", "precision", "compile"}
TOP_KEYS = {"heads", "default", "description"}
SHIPPED = ("paper", "quick")  # src/poolbert/spaces/<name>.yaml


@dataclass(frozen=True)
class Param:
    """One searched setting, suggested through the matching `trial.suggest_*`."""

    name: str
    type: str
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple = ()

    def suggest(self, trial: Any) -> Any:
        if self.type == "float":
            return trial.suggest_float(self.name, self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return trial.suggest_int(self.name, self.low, self.high, log=self.log,
                                     step=self.step or 1)
        return trial.suggest_categorical(self.name, list(self.choices))

    def to_dict(self) -> dict[str, Any]:
        if self.type == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        out: dict[str, Any] = {"type": self.type, "low": self.low, "high": self.high}
        if self.log:
            out["log"] = True
        if self.step is not None:
            out["step"] = self.step
        return out


@dataclass(frozen=True)
class HeadSpace:
    """What one head's study searches, and how many finished trials it asks for."""

    head: str
    n_trials: int
    params: dict[str, Param] = field(default_factory=dict)

    def suggest(self, trial: Any) -> dict[str, Any]:
        return {name: param.suggest(trial) for name, param in self.params.items()}

    def to_dict(self) -> dict[str, Any]:
        return {"n_trials": self.n_trials,
                "params": {name: p.to_dict() for name, p in self.params.items()}}

    def max_epochs(self, fixed: int) -> int:
        """The most epochs any trial can run (for Hyperband's max_resource)."""
        param = self.params.get("num_train_epochs")
        if param is None:
            return fixed
        if param.type == "categorical":
            return int(max(param.choices))
        return int(param.high or fixed)


@dataclass(frozen=True)
class SearchSpace:
    source: str
    heads: dict[str, HeadSpace]
    default: HeadSpace | None = None

    def for_head(self, head: str) -> HeadSpace:
        if head in self.heads:
            return self.heads[head]
        if self.default is not None:
            return dataclasses.replace(self.default, head=head)
        listed = ", ".join(self.heads) or "none"
        raise PoolbertError(f"{self.source}: no search space for head {head!r} (heads: {listed}; "
                            "add it or a 'default' section)")

    def check_heads(self, heads: list[str]) -> None:
        """Each head must be a pooler, unless its space searches `pooling` (then it is a label)."""
        for head in heads:
            space = self.for_head(head)
            if head not in POOLERS and "pooling" not in space.params:
                raise PoolbertError(f"unknown head {head!r}; choose from {', '.join(POOLERS)} "
                                    f"(or search 'pooling' in {self.source})")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"heads": {h: s.to_dict() for h, s in self.heads.items()}}
        if self.default is not None:
            out["default"] = self.default.to_dict()
        return out


def space_path(name_or_path: str) -> Path:
    """A shipped space by name ("paper", "quick") or a YAML/JSON file of the user's."""
    if name_or_path in SHIPPED:
        return Path(str(resources.files("poolbert") / "spaces" / f"{name_or_path}.yaml"))
    return Path(name_or_path)


def load_space(name_or_path: str) -> SearchSpace:
    path = space_path(name_or_path)
    return parse_space(read_settings_file(path), str(path))


def parse_space(raw: dict[str, Any], source: str) -> SearchSpace:
    _no_unknown(raw, TOP_KEYS, source, "")
    heads_raw = raw.get("heads") or {}
    if not isinstance(heads_raw, dict):
        raise PoolbertError(f"{source}: heads: expected a mapping of head name to its space")
    heads = {str(h): _head(str(h), spec, source, f"heads.{h}") for h, spec in heads_raw.items()}
    default = _head("default", raw["default"], source, "default") if "default" in raw else None
    if not heads and default is None:
        raise PoolbertError(f"{source}: no 'heads' and no 'default' section: nothing to search")
    return SearchSpace(source, heads, default)


def _head(head: str, spec: Any, source: str, where: str) -> HeadSpace:
    if not isinstance(spec, dict):
        raise PoolbertError(f"{source}: {where}: expected a mapping with n_trials and params")
    _no_unknown(spec, HEAD_KEYS, source, where)
    n_trials = spec.get("n_trials", 20)
    if isinstance(n_trials, bool) or not isinstance(n_trials, int) or n_trials <= 0:
        raise PoolbertError(f"{source}: {where}.n_trials: expected a positive integer, "
                            f"got {n_trials!r}")
    params_raw = spec.get("params") or {}
    if not isinstance(params_raw, dict):
        raise PoolbertError(f"{source}: {where}.params: expected a mapping of setting to range")
    params = {str(k): _param(str(k), v, source, f"{where}.params.{k}")
              for k, v in params_raw.items()}
    return HeadSpace(head, n_trials, params)


def _param(name: str, spec: Any, source: str, where: str) -> Param:
    section = section_of(name)
    if section is None:
        raise PoolbertError(f"{source}: {where}: unknown setting {name!r} (not a RunConfig field)")
    if name in NOT_SEARCHABLE:
        raise PoolbertError(f"{source}: {where}: {name} is fixed for a whole study (data and "
                            "model are loaded once); set it with a flag instead")
    if isinstance(spec, list):
        spec = {"type": "categorical", "choices": spec}
    if not isinstance(spec, dict):
        raise PoolbertError(f"{source}: {where}: expected a mapping with a type, or a list of "
                            "choices")
    kind = spec.get("type")
    if kind not in PARAM_TYPES:
        raise PoolbertError(f"{source}: {where}.type: unknown parameter type {kind!r} "
                            f"(use {', '.join(PARAM_TYPES)})")
    _no_unknown(spec, PARAM_KEYS[kind], source, where)
    if kind == "categorical":
        return _categorical(name, spec, source, where)
    return _ranged(name, kind, spec, source, where)


def _categorical(name: str, spec: dict, source: str, where: str) -> Param:
    choices = spec.get("choices")
    if not isinstance(choices, list) or not choices:
        raise PoolbertError(f"{source}: {where}.choices: empty; give at least one value")
    owner = SECTIONS[section_of(name) or ""]  # _param checked that the setting exists
    for value in choices:
        if value is not None and not isinstance(value, bool | int | float | str):
            raise PoolbertError(f"{source}: {where}.choices: {value!r} is not a number, string "
                                "or boolean")
    typed = tuple(coerce(owner, name, v, f"{source}: {where}.choices") for v in choices)
    if len(set(typed)) != len(typed):
        raise PoolbertError(f"{source}: {where}.choices: repeated value in {choices}")
    for choice in typed if name == "pooling" else ():
        try:
            check_pooling(choice)
        except ValueError as exc:
            raise PoolbertError(f"{source}: {where}.choices: {exc}") from None
    return Param(name, "categorical", choices=typed)


def _ranged(name: str, kind: str, spec: dict, source: str, where: str) -> Param:
    current = value_type(SECTIONS[section_of(name) or ""], name)  # checked by _param
    if current not in (int, float):
        raise PoolbertError(f"{source}: {where}: {name} is not a numeric setting; use "
                            "type categorical")
    if kind == "float" and current is int:
        raise PoolbertError(f"{source}: {where}.type: {name} is an integer setting; use type int "
                            "or categorical")
    cast = float if kind == "float" else _integer
    low = _number(spec, "low", cast, source, where)
    high = _number(spec, "high", cast, source, where)
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise PoolbertError(f"{source}: {where}.log: expected true or false, got {log!r}")
    step = _number(spec, "step", cast, source, where) if spec.get("step") is not None else None
    if low >= high:
        raise PoolbertError(f"{source}: {where}: low ({low}) must be below high ({high})")
    if log and low <= 0:
        raise PoolbertError(f"{source}: {where}.low: a log scale needs low > 0, got {low}")
    if step is not None and (step <= 0 or log):
        raise PoolbertError(f"{source}: {where}.step: needs a positive step and no log scale")
    return Param(name, kind, low=low, high=high, log=log, step=step)


def _integer(value: Any) -> int:
    if isinstance(value, float) and not value.is_integer():
        raise ValueError(value)
    return int(value)


def _number(spec: dict, key: str, cast: Any, source: str, where: str) -> Any:
    """YAML reads `1e-5` (no dot) as text; accept it, refuse anything that is not a number."""
    if key not in spec:
        raise PoolbertError(f"{source}: {where}.{key}: missing")
    value = spec[key]
    try:
        if isinstance(value, bool) or not isinstance(value, numbers.Real | str):
            raise ValueError(value)
        number = cast(float(value) if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise PoolbertError(f"{source}: {where}.{key}: {value!r} is not a valid "
                            f"{'integer' if cast is _integer else 'number'}") from None
    if isinstance(number, float) and not math.isfinite(number):
        raise PoolbertError(f"{source}: {where}.{key}: {value!r} is not finite")
    return number


def _no_unknown(spec: dict, allowed: set[str], source: str, where: str) -> None:
    for key in spec:
        if key not in allowed:
            prefix = f"{where}.{key}" if where else str(key)
            raise PoolbertError(f"{source}: {prefix}: unknown key (expected one of: "
                                f"{', '.join(sorted(allowed))})")
