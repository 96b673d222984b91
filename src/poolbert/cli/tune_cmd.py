"""`poolbert tune`: an Optuna study per pooling head, final seed runs and paired tests."""

from __future__ import annotations

import argparse
import copy
import sys

from ..config import ALIASES, apply_overrides, flatten, read_settings_file
from ..device import resolve_device
from ..errors import PoolbertError
from ..tuning.settings import PRESETS, TuneConfig, preset_run_settings
from . import flags
from .common import (
    add_run_flags,
    command_line,
    config_from_args,
    quiet_libraries,
    run_settings_given,
)


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
    from ..interrupts import sigterm_as_interrupt
    from ..tuning import run_study

    tc = tune_config_from_args(args)
    quiet_libraries(args.quiet)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)  # one line per trial is printed instead
    with sigterm_as_interrupt():  # exit 130 with everything finished on disk, as for Ctrl-C
        run_study(tc)
        print(tc.dir.summary_md.read_text(encoding="utf-8"))
        build_report(tc)
    return 0


def tune_config_from_args(args: argparse.Namespace) -> TuneConfig:
    """Preset defaults first, then the --config file and flags the user gave."""
    if args.pooling:
        raise PoolbertError("tune compares heads: use --poolings cls,mean_max,... (not --pooling)")
    config = config_from_args(args)
    given = user_settings(args)
    run_settings = preset_run_settings(args.preset, resolve_device(config.train.device).type)
    apply_overrides(config, {k: v for k, v in run_settings.items() if k not in given}, "preset")
    tc = TuneConfig(run=config, output_dir=args.output_dir, quiet=args.quiet,
                    command=command_line())
    preset = PRESETS.get(args.preset or "", {}).get("tune", {})
    for key, value in {**preset, **flags.given(args, TuneConfig)}.items():
        setattr(tc, key, copy.deepcopy(value))  # never share the preset's lists
    _refuse_fixed_and_searched(tc, args)
    return tc.validate()


def user_settings(args: argparse.Namespace) -> set[str]:
    """Run settings the user chose (flags or --config file): presets leave them alone."""
    chosen = set(run_settings_given(args))
    if args.config:
        chosen |= set(flatten(read_settings_file(args.config)))
    return {ALIASES.get(k, k) for k in chosen}


def _refuse_fixed_and_searched(tc: TuneConfig, args: argparse.Namespace) -> None:
    """Unknown heads, and flags fixing a searched setting (ambiguous), fail before any work."""
    from ..tuning import load_space

    space = load_space(tc.space)
    space.check_heads(tc.heads)
    given = run_settings_given(args)
    for head in tc.heads:
        for name in space.for_head(head).params:
            if name in given:
                raise PoolbertError(f"{flags.flag_for(name)} is searched by the space "
                                    f"{space.source} (head {head}); drop the flag or remove "
                                    f"{name} from the space")


def build_report(tc: TuneConfig) -> None:
    """Figures and index.html; a failure here leaves the finished study as it is."""
    from ..reporting import build_report as draw

    storage = tc.storage if tc.storage and "://" in tc.storage else None
    try:
        path = draw(tc.out, storage=storage)
    except Exception as exc:  # the study is on disk; the report can be redone
        print(f"poolbert: warning: report not built ({type(exc).__name__}: {exc}); run "
              f"`poolbert report {tc.out}`", file=sys.stderr)
        return
    print(f"report: {path}")
