"""The `poolbert` command: one subcommand per job, each builds a config and calls one function."""

from __future__ import annotations

import argparse
import os
import sys

from ..errors import PoolbertError
from . import common


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="poolbert",
        description="Fine-tune BERT-family encoders with a choice of pooling head, tune and "
        "compare heads with Optuna, report, export and push the best model.",
    )
    parser.add_argument("--version", action="version", version=f"poolbert {common.version()}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in common.command_modules():
        module.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(args.handler(args) or 0)
    except PoolbertError as exc:
        print(f"poolbert: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("poolbert: interrupted; finished work is on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
