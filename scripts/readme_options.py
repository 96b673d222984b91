"""Rewrite the README's option tables from the settings' declarations (poolbert.cli.flags).

    python scripts/readme_options.py          # after adding or changing a setting
"""

from pathlib import Path

from poolbert.cli.flags import rewrite_readme

README = Path(__file__).resolve().parents[1] / "README.md"
README.write_text(rewrite_readme(README.read_text(encoding="utf-8")), encoding="utf-8")
