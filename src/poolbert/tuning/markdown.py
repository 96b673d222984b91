"""Markdown of a study's results: summary.md, and the tables the model card shows."""

from __future__ import annotations

from .protocol import findings_text, protocol_text
from .results import StudyResult
from .tables import Table, study_tables


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a pipe inside a cell would end it


def markdown_table(table: Table) -> str:
    """The table (or, without rows, its note), then its note as a paragraph."""
    if not table.rows:
        return table.note
    lines = ["| " + " | ".join(map(_cell, table.headers)) + " |",
             "|" + "---|" * len(table.headers)]
    lines += ["| " + " | ".join(map(_cell, row)) + " |" for row in table.rows]
    return "\n".join(lines) + (f"\n\n{table.note}" if table.note else "")


def summary_markdown(result: StudyResult) -> str:
    """summary.md: the title, the verdict when there is one, the numbered tables, the protocol."""
    lines = [f"# poolbert study {result.study_name}: {result.task or 'custom data'}, "
             f"{result.model}", ""]
    for paragraph in findings_text(result):
        lines += [paragraph, ""]
    for number, table in enumerate(study_tables(result), 1):
        lines += [f"## Table {number}: {table.title}", "", markdown_table(table), ""]
    lines += ["## Protocol", ""]
    for paragraph in protocol_text(result):
        lines += [paragraph, ""]
    return "\n".join(lines)
