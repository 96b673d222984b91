"""`poolbert tune`: an Optuna study per pooling head, final seed runs and paired tests."""

from __future__ import annotations

import argparse
import copy
import sys
from typing import Any

from ..config import apply_overrides, flatten, read_settings_file
from ..errors import PoolbertError
from .common import SETTING_FLAGS, add_run_flags, command_line, config_from_args, quiet_libraries


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
    parser.add_argument("--preset", choices=["quick", "paper"],
                        help="quick: the embedded model, small budget (minutes on a CPU); "
                        "paper: bert-base-uncased with the report's spaces, 48/30/30 trials, "
                        "selection on dev like the report. Flags given explicitly win.")
    parser.add_argument("--poolings", help="comma-separated heads to tune "
                        "(default: cls,mean_max,attention)")
    parser.add_argument("--space", help="search space: paper (default), quick, or a YAML file")
    parser.add_argument("--n-trials", type=int,
                        help="finished (complete + pruned) trials per head (default: the space's)")
    parser.add_argument("--pruner", choices=["none", "median", "hyperband"],
                        help="stop unpromising trials; never before epoch 2 (default: median)")
    parser.add_argument("--select-on", choices=["holdout", "dev"],
                        help="holdout (default): score trials on a held-out slice of train and "
                        "measure dev once at the end; dev: score and report on dev, as the "
                        "report did (optimistic)")
    parser.add_argument("--holdout-fraction", type=float,
                        help="share of train held out for --select-on holdout (default 0.15)")
    parser.add_argument("--final-seeds", type=int,
                        help="re-train each head's best settings with seeds 1..K on all of "
                        "train (default 5; 0 skips)")
    parser.add_argument("--storage", help="Optuna storage: study.db in the output dir (default), "
                        "'journal' (journal.log there), or a database URL such as "
                        "postgresql://user@host/db to share one study between machines")
    parser.add_argument("--study-name", help="studies are named <study-name>-<head> "
                        "(default: the output directory's name)")
    parser.add_argument("--n-workers", type=int,
                        help="worker processes on this machine (default: 1 on CPU; on CUDA, "
                        "one per visible GPU times --trials-per-gpu)")
    parser.add_argument("--trials-per-gpu", type=int,
                        help="CUDA: trials run at once on each GPU, one worker process each, "
                        "for models too small to fill a GPU alone (default 1)")
    parser.add_argument("--timeout", type=float,
                        help="seconds after which no new trial starts (running trials finish)")
    parser.add_argument("--max-retry", type=int,
                        help="re-runs of a trial whose worker died (default 2)")
    add_run_flags(parser)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from ..interrupts import sigterm_as_interrupt
    from ..tune import run_study

    tc = tune_config_from_args(args)
    quiet_libraries(args.quiet)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is printed instead
    with sigterm_as_interrupt():  # exit 130 with everything finished on disk, as for Ctrl-C
        summary = run_study(tc)
        print(tc.dir.summary_md.read_text(encoding="utf-8"))
        build_report(tc, summary)
    return 0


def tune_config_from_args(args: argparse.Namespace) -> Any:
    """Preset defaults first, then the --config file and flags the user gave."""
    from ..device import resolve_device
    from ..tune import PRESETS, TuneConfig
    from ..tune.settings import preset_run_settings

    if args.pooling:
        raise PoolbertError("tune compares heads: use --poolings cls,mean_max,... (not --pooling)")
    preset = PRESETS.get(args.preset or "", {"run": {}, "tune": {}})
    config = config_from_args(args)
    given = user_settings(args)
    run_settings = preset_run_settings(args.preset, resolve_device(config.train.device).type)
    apply_overrides(config, {k: v for k, v in run_settings.items() if k not in given}, "preset")
    tc = TuneConfig(run=config, output_dir=args.output_dir, preset=args.preset,
                    quiet=args.quiet, command=command_line())
    picked = {
        "heads": _heads(args.poolings), "space": args.space, "n_trials": args.n_trials,
        "pruner": args.pruner, "select_on": args.select_on,
        "holdout_fraction": args.holdout_fraction, "final_seeds": args.final_seeds,
        "storage": args.storage, "study_name": args.study_name, "n_workers": args.n_workers,
        "trials_per_gpu": args.trials_per_gpu,
        "timeout": args.timeout, "max_retry": args.max_retry,
    }
    chosen = {k: v for k, v in picked.items() if v is not None}
    for key, value in {**preset["tune"], **chosen}.items():
        setattr(tc, key, copy.deepcopy(value))  # never share the preset's lists
    _refuse_fixed_and_searched(tc, args)
    return tc.validate()


def user_settings(args: argparse.Namespace) -> set[str]:
    """Run settings the user chose (flags or --config file): presets leave them alone."""
    given = {name for name in SETTING_FLAGS if getattr(args, name, None) is not None}
    if args.config:
        given |= set(flatten(read_settings_file(args.config), args.config))
    return {"model_name_or_path" if k == "model" else k for k in given}


def _heads(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [h.strip() for h in text.split(",") if h.strip()]


def _refuse_fixed_and_searched(tc: Any, args: argparse.Namespace) -> None:
    """Unknown heads, and flags fixing a searched setting (ambiguous), fail before any work."""
    from ..tune import load_space

    space = load_space(tc.space)
    space.check_heads(tc.heads)
    for head in tc.heads:
        for name in space.for_head(head).params:
            if getattr(args, name, None) is not None:
                flag = "--" + ("model" if name == "model_name_or_path" else name.replace("_", "-"))
                raise PoolbertError(f"{flag} is searched by the space {space.source} (head "
                                    f"{head}); drop the flag or remove {name} from the space")


def build_report(tc: Any, summary: dict) -> None:
    """Figures and index.html when `poolbert.report` offers them; tune works without it."""
    from .. import report

    if not hasattr(report, "build_report"):
        return
    storage = tc.storage if tc.storage and "://" in tc.storage else None
    try:
        path = (report.build_report(tc.out, storage=storage) if storage
                else report.build_report(tc.out))
    except Exception as exc:  # noqa: BLE001  (the study is on disk; the report can be redone)
        print(f"poolbert: warning: report not built ({type(exc).__name__}: {exc}); run "
              f"`poolbert report {tc.out}`", file=sys.stderr)
        return
    print(f"report: {path}")
