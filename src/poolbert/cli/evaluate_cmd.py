"""`poolbert evaluate MODEL_DIR`: re-score a saved model on a split."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..config import PRECISIONS
from .common import add_data_flags, quiet_libraries


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="re-score a saved model",
        description="Score a saved model (a run directory, its model/ folder, an exported "
        "folder or a study directory's best head) on the validation split of the data it was "
        "trained on, or on other data given by the data flags (they default to the run's).",
    )
    parser.add_argument("model_dir", help="run directory, model folder, exported folder or "
                        "study directory")
    parser.add_argument("--split", default="validation", choices=["validation", "train"],
                        help="split to score (default: validation)")
    parser.add_argument("--max-length", type=int,
                        help="max tokens per example (default: the run's max_length)")
    parser.add_argument("--batch-size", type=int,
                        help="evaluation batch size (default: 128 on CUDA, 32 on CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, ... (default: auto)")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto (default: bf16 autocast on a GPU with bf16 and on a CPU that "
                        "computes bf16 natively, fp16 on other GPUs, else fp32), fp32, bf16, fp16")
    parser.add_argument("--output", help="write the metrics JSON here as well")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_data_flags(parser, defaults=False)  # each defaults to the saved run's own
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import api
    from ..config import DataConfig
    from . import flags

    quiet_libraries(args.quiet)
    metrics = api.evaluate(args.model_dir, split=args.split, max_length=args.max_length,
                           batch_size=args.batch_size, device=args.device,
                           precision=args.precision,
                           **flags.given(args, DataConfig))
    text = json.dumps(metrics, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0
