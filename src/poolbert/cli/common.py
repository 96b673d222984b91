"""Flags shared by the subcommands that train (train, tune) and their translation to a config."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from types import ModuleType

from .. import DEFAULT_MODEL, __version__
from ..config import RunConfig, load_config
from ..pooling import POOLERS

# one module per subcommand (each owns its flags and handler); kept in the order of `--help`
COMMANDS = ("train", "evaluate", "tune", "report", "export", "push", "predict", "bench")


def version() -> str:
    return __version__


def command_modules() -> list[ModuleType]:
    modules = []
    for name in COMMANDS:
        try:
            modules.append(importlib.import_module(f"poolbert.cli.{name}_cmd"))
        except ModuleNotFoundError as exc:
            if exc.name != f"poolbert.cli.{name}_cmd":
                raise
    return modules


def add_data_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("data")
    group.add_argument("--task", help="GLUE task preset: rte (default), cola, sst2, mrpc, qqp, "
                       "mnli, qnli, wnli; 'none' for custom files")
    group.add_argument("--data-dir", help="local folder with train/validation[/test] files "
                       "(parquet, csv, tsv incl. GLUE's glue_data/<TASK>, jsonl); default: "
                       "$POOLBERT_DATA_DIR/glue/<task>, else the Hugging Face Hub")
    group.add_argument("--train-file", help="custom training file (csv, tsv, jsonl, parquet)")
    group.add_argument("--validation-file", help="custom validation file")
    group.add_argument("--test-file", help="custom test file (labels optional)")
    group.add_argument("--text-columns", help="one or two comma-separated text columns, "
                       "e.g. premise,hypothesis (default: the task preset's)")
    group.add_argument("--label-column", help="label column (default: label)")
    group.add_argument("--max-train-samples", type=int, help="use a fixed random subset of train")
    group.add_argument("--max-eval-samples", type=int, help="use a fixed random subset of validation")


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model")
    group.add_argument("--model", dest="model_name_or_path",
                       help=f"hub name or local folder of a BERT-family encoder (default: the "
                       f"embedded {DEFAULT_MODEL}; the report used bert-base-uncased)")
    group.add_argument("--pooling", help=f"pooling head: {', '.join(POOLERS)} (default: cls)")
    group.add_argument("--dropout", type=float, help="dropout before the classifier (default 0.1)")


def add_train_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("training")
    group.add_argument("--learning-rate", type=float, help="peak AdamW learning rate (default 5e-5)")
    group.add_argument("--num-train-epochs", type=int, help="epochs (default 3)")
    group.add_argument("--max-length", type=int, help="max tokens per example (default 128)")
    group.add_argument("--batch-size", type=int, help="training batch size (default 16)")
    group.add_argument("--eval-batch-size", type=int,
                       help="evaluation batch size (default: 128 on CUDA, 32 on CPU)")
    group.add_argument("--gradient-accumulation-steps", type=int,
                       help="batches per optimiser step (default 1)")
    group.add_argument("--warmup-ratio", type=float, help="linear warm-up share of steps (default 0.1)")
    group.add_argument("--weight-decay", type=float, help="AdamW weight decay (default 0.01)")
    group.add_argument("--max-grad-norm", type=float, help="gradient clipping norm (default 1.0)")
    group.add_argument("--seed", type=int, help="seed for init, dropout and batch order (default 42)")
    group.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                       help="auto: bf16/fp16 autocast on CUDA with fp32 master weights, fp32 on CPU")
    group.add_argument("--device", help="auto (default), cpu, cuda, cuda:1 ...")
    group.add_argument("--no-group-by-length", dest="group_by_length", action="store_false",
                       default=None, help="plain shuffled batches instead of length-grouped ones")
    group.add_argument("--compile", action="store_true", default=None,
                       help="torch.compile the model (pads to multiples of 32 to limit recompiles)")
    group.add_argument("--attention", choices=["auto", "efficient", "cudnn", "flash", "math"],
                       help="CUDA attention kernels: auto (default) = flash or memory-efficient, "
                       "never cuDNN, whose per-shape plans slow every first epoch")


def add_run_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="settings file (JSON, YAML or TOML; a run's config.json "
                        "works); flags override it")
    add_data_flags(parser)
    add_model_flags(parser)
    add_train_flags(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


SETTING_FLAGS = (
    "task", "data_dir", "train_file", "validation_file", "test_file", "text_columns",
    "label_column", "max_train_samples", "max_eval_samples", "model_name_or_path", "pooling",
    "dropout", "learning_rate", "num_train_epochs", "max_length", "batch_size", "eval_batch_size",
    "gradient_accumulation_steps", "warmup_ratio", "weight_decay", "max_grad_norm", "seed",
    "precision", "device", "group_by_length", "compile", "attention",
)


def config_from_args(args: argparse.Namespace) -> RunConfig:
    """File settings, then the flags that were given, then validation (PoolbertError if bad)."""
    overrides = {name: getattr(args, name, None) for name in SETTING_FLAGS}
    if overrides.get("task") == "none":
        overrides["task"] = None
    custom_files = args.train_file or args.validation_file
    config = load_config(args.config, overrides)
    if custom_files and args.task is None and not _task_from_file(args):
        config.data.task = None  # custom files without --task: no GLUE preset
    from ..data import GLUE_TASKS  # validated here so a bad name fails before any work
    from ..errors import PoolbertError

    if config.data.task is not None and config.data.task not in GLUE_TASKS:
        raise PoolbertError(f"unknown task {config.data.task!r}; known: {', '.join(GLUE_TASKS)}")
    if config.model.pooling not in POOLERS:
        raise PoolbertError(f"unknown pooling {config.model.pooling!r}; choose one of: "
                            f"{', '.join(POOLERS)}")
    return config


def _task_from_file(args: argparse.Namespace) -> bool:
    if not args.config:
        return False
    from ..config import read_settings_file

    raw = read_settings_file(args.config)
    return "task" in raw or "task" in raw.get("data", {})


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
