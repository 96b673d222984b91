"""`poolbert report`: figures and an HTML page from a study or run directory (no retraining)."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "report", help="figures and a self-contained HTML page from a study or run directory",
        description="Redraw every figure of a finished study (optimisation history, "
        "hyperparameter importances, slice plots, best model's loss curve, intermediate values, "
        "parallel coordinates, per-head accuracy, confusion matrices) from the saved files only, "
        "and write DIR/report/index.html with the figures embedded, the comparison tables, the "
        "config and the protocol. For a `poolbert train` run directory: loss curve, metrics and "
        "confusion matrix. An existing DIR/report/ is replaced.",
    )
    parser.add_argument("directory", metavar="DIR",
                        help="study directory (from `poolbert tune`) or run directory (from "
                        "`poolbert train`)")
    parser.add_argument("--storage", help="Optuna storage URL to read the trials from (default: "
                        "DIR/study.db or DIR/journal.log, else the storage in DIR/config.json)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import api

    index = api.report(Path(args.directory), storage=args.storage)
    print(f"report written: {index}")
    return 0
