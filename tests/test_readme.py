"""The README shows the settings exactly as the code declares them."""

from __future__ import annotations

from pathlib import Path

from poolbert.cli import build_parser
from poolbert.cli.flags import readme_tables, rewrite_readme

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_option_tables_match_the_declared_settings():
    text = README.read_text(encoding="utf-8")
    assert rewrite_readme(text) == text, "run: python scripts/readme_options.py"


def test_every_table_row_is_a_flag_of_its_command_with_that_default():
    subcommands = build_parser()._subparsers._group_actions[0].choices
    for table, command in (("run", "train"), ("tune", "tune")):
        actions = {flag: a for a in subcommands[command]._actions for flag in a.option_strings}
        for row in readme_tables()[table].splitlines()[2:]:
            flag, default = row.split(" | ")[0].strip("| `"), row.split(" | ")[1]
            assert flag in actions, (command, flag)
            assert f"(default: {default})" in actions[flag].help or not default, (flag, default)
