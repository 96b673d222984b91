"""How a setting is declared once (`setting`), and how a value from a file, a flag, a keyword
argument or a search space becomes the field's type (`coerce`)."""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from ..errors import PoolbertError
from ..text import comma_list


def setting(default: Any, help: str, *, flag: str | None = None, shown: str | None = None,
            choices: tuple[str, ...] | None = None, factory: Any = None) -> Any:
    """A dataclass field that declares a setting once: its default and type (the field's), its
    help text and its command-line flag (`--name-with-dashes` unless `flag` says otherwise;
    a boolean that defaults to true is turned off with `--no-<name>`). `shown` is how help and
    README show the default where the value alone says little (None meaning "all", say).
    poolbert.cli.flags builds the flags and the README's option tables from these fields."""
    metadata = {"help": help, "flag": flag, "shown": shown, "choices": choices}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def may_be_none(cls: type, name: str) -> bool:
    """Whether field `name` is declared `X | None`."""
    hint = typing.get_type_hints(cls)[name]
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def value_type(cls: type, name: str) -> type:
    """A field's type without its `| None`: int, float, bool, str or list."""
    hint = typing.get_type_hints(cls)[name]
    if isinstance(hint, types.UnionType):  # X | None
        hint = next(k for k in typing.get_args(hint) if k is not type(None))
    return typing.get_origin(hint) or hint


def coerce(cls: type, key: str, value: Any, source: str) -> Any:
    """Bring a value from a file, flag or search space to field `key`'s type, or say which key
    is wrong. `--task none` means custom data; a comma-separated text is a list."""
    kind = value_type(cls, key)
    try:
        if key == "task" and isinstance(value, str) and value.lower() == "none":
            return None
        if kind is list:
            return comma_list(value) if isinstance(value, str) else list(value)
        if kind is int:
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
    except (TypeError, ValueError):
        raise PoolbertError(f"{source}: {key} = {value!r} is not a valid {kind.__name__}") from None
    return value


def check_choices(section: Any) -> None:
    """A setting declared with choices holds one of them."""
    for f in dataclasses.fields(section):
        choices = f.metadata.get("choices")
        value = getattr(section, f.name)
        if choices and value not in choices:
            raise PoolbertError(f"{f.name} must be one of {', '.join(choices)}, got {value!r}")


@dataclass(frozen=True)
class Setting:
    """One declared setting, as the command line and the README show it."""

    name: str
    kind: type  # int, float, bool, str or list
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    shown: str | None = None  # the default in words, where the value alone says little
    renamed: str | None = None  # a flag that is not the field's name (--model)

    @property
    def flag(self) -> str:
        if self.renamed:
            return self.renamed
        negated = self.kind is bool and self.default is True
        return ("--no-" if negated else "--") + self.name.replace("_", "-")

    @property
    def default_text(self) -> str:
        if self.shown:
            return self.shown
        value = self.default
        if value is None:
            return ""
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, float):  # 5e-05 -> 5e-5
            return re.sub(r"e([+-])0*(\d)", lambda m: f"e{m[1].lstrip('+')}{m[2]}", f"{value:g}")
        if isinstance(value, list):
            return ",".join(map(str, value))
        return str(value)


def settings_of(cls: type) -> list[Setting]:
    """The fields of `cls` declared with `config.setting` (those that carry help text)."""
    out = []
    for f in dataclasses.fields(cls):
        if "help" not in f.metadata:
            continue
        default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else f.default)
        out.append(Setting(f.name, value_type(cls, f.name), default, f.metadata["help"],
                           f.metadata.get("choices"), f.metadata.get("shown"),
                           f.metadata.get("flag")))
    return out
