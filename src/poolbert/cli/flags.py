"""Command-line flags made from the settings' own declarations (`config.setting` fields).

Each setting is declared once, on its dataclass field: default, type, help, flag name and
choices. The flags, their help text (default included) and the README's option tables are all
made from those fields, so none of them can drift from the code.
"""

from __future__ import annotations

import argparse
import re
from typing import Any

from ..config import SECTIONS, coerce, settings_of


def add_flags(parser: Any, cls: type, defaults: bool = True) -> None:
    """One flag per setting of `cls`. Every flag defaults to None ("not given"), so a settings
    file or a preset keeps its value unless the flag is on the command line. `defaults`: show
    each setting's default in its help (not where the default is something else, such as a
    saved run's own data)."""
    for s in settings_of(cls):
        shown = defaults and s.default_text
        help_text = s.help + (f" (default: {s.default_text})" if shown else "")
        # the metavar names the flag (--poolings POOLINGS), not the field it sets (heads)
        metavar = None if s.kind is bool else s.flag.lstrip("-").replace("-", "_").upper()
        options: dict[str, Any] = {"dest": s.name, "default": None, "help": help_text}
        if metavar and not s.choices:
            options["metavar"] = metavar
        if s.kind is bool:
            options["action"] = "store_false" if s.default is True else "store_true"
        else:
            options["type"] = s.kind if s.kind in (int, float) else str
            if s.choices:
                options["choices"] = list(s.choices)
        parser.add_argument(s.flag, **options)


def given(args: argparse.Namespace, cls: type) -> dict[str, Any]:
    """The settings of `cls` given on the command line, by field name, in the field's type."""
    return {s.name: coerce(cls, s.name, getattr(args, s.name), "flags") for s in settings_of(cls)
            if getattr(args, s.name, None) is not None}


def options_table(*classes: type) -> str:
    """The README's table of these settings: flag, default, meaning."""
    lines = ["| flag | default | meaning |", "| --- | --- | --- |"]
    for cls in classes:
        for s in settings_of(cls):
            meaning = s.help + (f"; one of {', '.join(s.choices)}" if s.choices else "")
            cells = (f"`{s.flag}`", s.default_text, meaning)  # a bare | would end a cell
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines) + "\n"


def readme_tables() -> dict[str, str]:
    """Each README option table (between `<!-- options: NAME -->` and `<!-- /options -->`) as
    the settings' declarations make it: "run" for the data, model and training sections,
    "tune" for the study's own settings."""
    from ..tuning.settings import TuneConfig

    return {"run": options_table(*SECTIONS.values()), "tune": options_table(TuneConfig)}


def _keeping_markers(table: str) -> Any:
    return lambda match: match[1] + table + match[2]


def rewrite_readme(text: str) -> str:
    """`text` with every option table replaced by the one the declarations make."""
    for name, table in readme_tables().items():
        pattern = re.compile(rf"(<!-- options: {name} -->\n).*?(<!-- /options -->)", re.S)
        if not pattern.search(text):
            raise ValueError(f"README has no '<!-- options: {name} -->' block")
        text = pattern.sub(_keeping_markers(table), text)
    return text
