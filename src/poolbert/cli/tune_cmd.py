"""`poolbert tune`: an Optuna study per pooling head, final seed runs and paired tests."""

from __future__ import annotations

import argparse
from typing import Any

from ..layout import StudyDir
from ..tuning.settings import TuneConfig, tune_config
from . import flags
from .common import add_run_flags, command_line, quiet_libraries, run_settings_given


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "tune", help="tune and compare pooling heads with Optuna",
        description="Tune each pooling head in its own Optuna study, re-train the best settings "
        "with several seeds and compare the heads with paired tests. Writes config.json, the "
        "Optuna storage, trials.csv, heads/<head>/{best.json,best/,seeds/}, summary.json and "
        "summary.md into the output directory. Running the same command again resumes. Training "
        "flags set the values that are not searched.",
    )
    parser.add_argument("--output-dir", required=True, help="study directory (created, or resumed)")
    flags.add_flags(parser.add_argument_group("study"), TuneConfig)
    add_run_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import api

    quiet_libraries(args.quiet)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is printed instead
    values, preset = given_settings(args)
    study = api.tune(args.config, output_dir=args.output_dir, preset=preset, quiet=args.quiet,
                     command=command_line(), **values)
    folder = StudyDir(study.output_dir)
    print(folder.summary_md.read_text(encoding="utf-8"))
    if (folder.report / "index.html").is_file():
        print(f"report: {folder.report / 'index.html'}")
    return 0


def given_settings(args: argparse.Namespace) -> tuple[dict[str, Any], str | None]:
    """The run and study settings given as flags, and the preset."""
    values = {**run_settings_given(args), **flags.given(args, TuneConfig)}
    return values, values.pop("preset", None)


def tune_config_from_args(args: argparse.Namespace) -> TuneConfig:
    """The TuneConfig `poolbert tune` runs with these flags (api.tune builds the same)."""
    values, preset = given_settings(args)
    return tune_config(args.config, values, output_dir=args.output_dir, preset=preset,
                       quiet=args.quiet, command=command_line())
