"""The README shows the settings exactly as the code declares them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

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


def python_blocks(text: str) -> list[str]:
    """The README's ```python blocks, in order."""
    import re

    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


@pytest.mark.integration
@pytest.mark.slow
def test_the_readmes_python_runs_as_written(rte_dir, tmp_path):
    """Each Python block in a fresh interpreter, from a folder of its own, on the local RTE
    copy (the README names it as the README's commands do, relative to the project)."""
    blocks = python_blocks(README.read_text(encoding="utf-8"))
    assert blocks, "the README has a Python API example"
    for block in blocks:
        code = block.replace("../shared/data/glue/rte", str(rte_dir))
        done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                              text=True, timeout=3600)
        assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "exported" / "README.md").is_file()
