"""`poolbert train`: fine-tune one model with one pooling head."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..files import atomic_dir, check_output_dir
from .common import add_run_flags, command_line, config_from_args, quiet_libraries


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
    from ..reporting import plot_loss_curve
    from ..resources import Resources, run_record
    from ..tracking import Plan, check_tools
    from ..training import fit

    config = config_from_args(args)
    tools = check_tools(config.train.report_to)  # before any work, as the output directory
    out = check_output_dir(args.output_dir, args.overwrite)
    quiet_libraries(args.quiet)
    resources = Resources.load(config)
    # the trackers log into the temporary folder while training; it becomes `out` at the end
    with atomic_dir(out, args.overwrite) as tmp, Plan(tools, tmp, moves_to=out).start(
            out.resolve().name, config.to_dict(), {"head": config.model.pooling}) as tracking:
        result = fit(config, resources, quiet=args.quiet, on_record=tracking.on_record)
        result.save(tmp, run_record(config, resources.data, command_line()), resources,
                    save_model=args.save_model)
        plot_loss_curve(result.history, tmp / "loss_curve.png",
                        f"{config.model.pooling} on {resources.data.source}",
                        result.metrics["metric"], result.metrics["problem_type"])
        tracking.log_artifacts(tmp)
    print_summary(result.metrics, Path(out))
    return 0


def print_summary(metrics: dict, out: Path) -> None:
    from ..metrics import METRIC_KEYS

    judged = METRIC_KEYS[metrics["metric"]]
    shown = dict.fromkeys([judged, "eval_accuracy", "eval_f1", "eval_pearson", "eval_loss",
                           "eval_ece_calibrated"])  # the run's own metric first
    values = "  ".join(f"{k} {metrics[k]:.4f}" for k in shown if k in metrics)
    print(f"best epoch {metrics['best_epoch']}/{metrics['epochs_run']}: {values}  "
          f"train {metrics['train_samples_per_second']:.1f} examples/s  -> {out}")
