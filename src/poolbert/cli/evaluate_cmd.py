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
        description="Score a saved model (a run directory, its model/ folder or an exported "
        "folder) on the validation split of the data it was trained on, or on other data given "
        "by the data flags.",
    )
    parser.add_argument("model_dir", help="run directory or model folder")
    parser.add_argument("--split", default="validation", choices=["validation", "train"],
                        help="split to score (default: validation)")
    parser.add_argument("--max-length", type=int, help="default: the run's max_length")
    parser.add_argument("--batch-size", type=int,
                        help="evaluation batch size (default: 128 on CUDA, 32 on CPU)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda ...")
    parser.add_argument("--precision", default="auto", choices=PRECISIONS,
                        help="auto (default: bf16 autocast on a GPU with bf16 and on a CPU that "
                        "computes bf16 natively, fp16 on other GPUs, else fp32), fp32, bf16, fp16")
    parser.add_argument("--output", help="write the metrics JSON here as well")
    parser.add_argument("--quiet", action="store_true", help="no progress output")
    add_data_flags(parser)
    parser.set_defaults(handler=run)


def locate(model_dir: str) -> tuple[Path, Path | None]:
    """(model folder, the run's config.json or None), found as export and predict find them: a
    run directory, its model/ folder, an exported folder or a study (its best head)."""
    from ..exporting import resolve_source

    source = resolve_source(model_dir)
    run_config = source.run.config_file if source.run else None
    return source.model_dir, run_config if run_config and run_config.is_file() else None


def run(args: argparse.Namespace) -> int:
    from ..config import RunConfig, apply_overrides
    from ..data import TokenCache, load_data
    from ..device import check_precision, precision_reason, resolve_device, resolve_precision
    from ..exporting import load_classifier
    from ..files import read_json
    from ..scoring import ScoreOptions, score_split
    from .common import run_settings_given

    quiet_libraries(args.quiet)
    model_path, run_config = locate(args.model_dir)
    config = RunConfig.from_dict(read_json(run_config)) if run_config else RunConfig()
    apply_overrides(config, run_settings_given(args))
    model, tokenizer = load_classifier(model_path)  # poolbert's folders and exported ones
    data = load_data(config.data)
    split = getattr(data, args.split)
    enc = TokenCache(tokenizer).get(split, config.train.max_length)
    device = resolve_device(args.device)
    precision = resolve_precision(args.precision, device)
    check_precision(precision, device)
    scores = score_split(model.to(device), enc, ScoreOptions(
        device, precision, tokenizer.pad_token_id or 0, args.batch_size))
    text = json.dumps({**scores.metrics, "precision": precision,
                       "precision_reason": precision_reason(args.precision, device)}, indent=2)
    print(text)
    if args.output:
        Path(args.output).write_text(text + "\n", encoding="utf-8")
    return 0
