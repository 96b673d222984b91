"""`poolbert plan`: how many seeds and dev examples a study needs to tell two heads apart."""

from __future__ import annotations

import argparse

from ..errors import PoolbertError

SEED_ROWS = (2, 3, 5, 10, 20, 50)


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "plan", help="seeds and dev examples needed to detect a difference between heads",
        description="For an accuracy-like metric: the smallest true difference between two "
        "heads that a study detects with the given power (its minimum detectable effect), and "
        "the seeds and dev examples that bring it down to --effect. Same test and Holm level as "
        "a study's verdict (alpha / number of pairs of heads). Per-example variance of the "
        "heads' difference: 2 p (1 - p) (1 - correlation) at accuracy p, or --example-sd (a "
        "study's summary gives it per pair).",
    )
    parser.add_argument("--effect", type=float, required=True,
                        help="true difference to detect, in points (e.g. 3)")
    parser.add_argument("--accuracy", type=float, default=65.0,
                        help="the heads' accuracy level in percent (default: 65)")
    parser.add_argument("--seed-std", type=float, default=2.0,
                        help="std of one run's score over seeds, in points (default: 2)")
    parser.add_argument("--n-eval", type=int, default=277,
                        help="dev examples (default: 277, RTE)")
    parser.add_argument("--seeds", type=int, default=5, help="seed runs per head (default: 5)")
    parser.add_argument("--heads", type=int, default=3,
                        help="heads compared; Holm's strictest level is alpha / pairs "
                        "(default: 3)")
    parser.add_argument("--correlation", type=float, default=0.5,
                        help="correlation of two heads' per-example correctness (default: 0.5)")
    parser.add_argument("--example-sd", type=float,
                        help="per-example sd of the heads' difference in points (overrides "
                        "--accuracy and --correlation)")
    parser.add_argument("--alpha", type=float, default=0.05, help="(default: 0.05)")
    parser.add_argument("--power", type=float, default=0.8, help="(default: 0.8)")
    parser.set_defaults(handler=run)


def check(args: argparse.Namespace) -> None:
    """One clear error per bad value, before any work."""
    rules = [
        (args.effect > 0, f"--effect must be above 0 points, got {args.effect}"),
        (1 < args.accuracy < 100,
         f"--accuracy is a percentage in (1, 100), e.g. 65, got {args.accuracy}"),
        (args.seed_std >= 0, f"--seed-std must be 0 or more points, got {args.seed_std}"),
        (args.n_eval >= 2, f"--n-eval must be at least 2, got {args.n_eval}"),
        (args.seeds >= 2, f"--seeds must be at least 2 (a seed std needs two), got {args.seeds}"),
        (args.heads >= 2, f"--heads must be at least 2, got {args.heads}"),
        (-1 <= args.correlation <= 1, f"--correlation must be in [-1, 1], got {args.correlation}"),
        (args.example_sd is None or args.example_sd >= 0,
         f"--example-sd must be 0 or more points, got {args.example_sd}"),
        (0 < args.alpha < 1, f"--alpha must be in (0, 1), got {args.alpha}"),
        (0 < args.power < 1, f"--power must be in (0, 1), got {args.power}"),
    ]
    for ok, message in rules:
        if not ok:
            raise PoolbertError(message)


def run(args: argparse.Namespace) -> int:
    from ..tuning.power import example_variance, plan

    check(args)
    example_var = ((args.example_sd / 100) ** 2 if args.example_sd is not None else
                   example_variance(args.accuracy / 100, args.correlation))
    pairs = args.heads * (args.heads - 1) // 2
    answer = plan(args.effect / 100, args.seed_std / 100, args.n_eval, args.seeds, example_var,
                  pairs, args.alpha, args.power)
    print(f"Minimum detectable effect (MDE) at {args.power:.0%} power, two-sided alpha "
          f"{args.alpha} / {pairs} pair(s) = {answer.alpha_per_pair:.4g}; example sd "
          f"{100 * example_var ** 0.5:.1f} points, seed std {args.seed_std:g} points.\n")
    print("\n".join(table(args, example_var, answer.alpha_per_pair)) + "\n")
    seeds = (f"{answer.seeds_needed} seeds per head with {args.n_eval} dev examples"
             if answer.seeds_needed else
             f"no number of seeds is enough with {args.n_eval} dev examples")
    examples = (f"{answer.n_eval_needed} dev examples with {args.seeds} seeds"
                if answer.n_eval_needed else f"no dev set is large enough with {args.seeds} seeds")
    print(f"With {args.seeds} seeds and {args.n_eval} dev examples the MDE is "
          f"{100 * answer.mde:.1f} points. To detect {args.effect:g} points: {seeds}; "
          f"{examples}.")
    return 0


def table(args: argparse.Namespace, example_var: float, level: float) -> list[str]:
    """MDE in points per number of seeds (rows) and dev size (columns)."""
    from ..tuning.power import planned_mde

    n_values = sorted({args.n_eval, 2 * args.n_eval, 5 * args.n_eval})
    lines = ["| seeds | " + " | ".join(f"{n} dev examples" for n in n_values) + " |",
             "|---|" + "---|" * len(n_values)]
    for seeds in sorted({*SEED_ROWS, args.seeds}):
        mdes = [planned_mde(n, seeds, example_var, (args.seed_std / 100) ** 2, level, args.power)
                for n in n_values]
        lines.append(f"| {seeds} | " + " | ".join(f"{100 * m:.1f}" for m in mdes) + " |")
    return lines
