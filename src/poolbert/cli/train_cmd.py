"""`poolbert train`: fine-tune one model with one pooling head."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import add_run_flags, command_line, quiet_libraries, run_settings_given


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train", help="fine-tune one model with one pooling head",
        description="Fine-tune an encoder with a pooling head; writes config.json, metrics.json, "
        "history.jsonl, predictions.csv, loss_curve.png and model/ into the output directory "
        "(and the logs of the --report-to trackers).",
    )
    parser.add_argument("--output-dir", required=True, help="run directory to create")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing output directory")
    parser.add_argument("--no-save-model", dest="save_model", action="store_false",
                        help="skip writing model/ (metrics and history only)")
    add_run_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from .. import api

    quiet_libraries(args.quiet)
    run = api.train(args.config, output_dir=args.output_dir, overwrite=args.overwrite,
                    save_model=args.save_model, quiet=args.quiet, command=command_line(),
                    **run_settings_given(args))
    print_summary(run.metrics, run.output_dir)
    return 0


def print_summary(metrics: dict, out: Path) -> None:
    from ..metrics import METRIC_KEYS

    judged = METRIC_KEYS[metrics["metric"]]
    shown = dict.fromkeys([judged, "eval_accuracy", "eval_f1", "eval_pearson", "eval_loss",
                           "eval_ece_calibrated"])  # the run's own metric first
    values = "  ".join(f"{k} {metrics[k]:.4f}" for k in shown if k in metrics)
    print(f"best epoch {metrics['best_epoch']}/{metrics['epochs_run']}: {values}  "
          f"train {metrics['train_samples_per_second']:.1f} examples/s  -> {out}")
