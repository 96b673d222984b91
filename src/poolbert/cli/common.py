"""Flags shared by the subcommands that train (train, tune) and their translation to a config."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType
from typing import Any

from ..config import SECTIONS, DataConfig, ModelConfig, TrainConfig
from ..version import __version__
from . import flags

# one module per subcommand (each owns its flags and handler); kept in the order of `--help`
COMMANDS = ("train", "evaluate", "tune", "plan", "report", "export", "push", "predict")


def version() -> str:
    return __version__


def command_modules() -> list[ModuleType]:
    return [importlib.import_module(f"poolbert.cli.{name}_cmd") for name in COMMANDS]


def add_data_flags(parser: argparse.ArgumentParser, defaults: bool = True) -> None:
    flags.add_flags(parser.add_argument_group("data"), DataConfig, defaults)


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="settings file (JSON, YAML or TOML; a run's config.json "
                        "works); flags override it")
    add_data_flags(parser)
    flags.add_flags(parser.add_argument_group("model"), ModelConfig)
    flags.add_flags(parser.add_argument_group("training"), TrainConfig)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run_settings_given(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings (data, model, training) given as flags."""
    return {k: v for cls in SECTIONS.values() for k, v in flags.given(args, cls).items()}


def quiet_libraries(quiet: bool) -> None:
    """Silence transformers' and datasets' own progress bars and info logs."""
    import transformers

    transformers.logging.set_verbosity_error()
    from huggingface_hub.utils import logging as hub_logging

    hub_logging.set_verbosity_error()  # retries and offline warnings; our error says it in one line
    transformers.logging.disable_progress_bar()  # weight loading/saving bars: not our progress
    if quiet:
        try:
            import datasets

            datasets.disable_progress_bars()
        except ImportError:  # pragma: no cover
            pass
    logging.getLogger("optuna").setLevel(logging.WARNING)


def command_line() -> list[str]:
    return ["poolbert", *sys.argv[1:]]
