"""Validity of poolbert's head comparison and race, by simulation with known truth: no training.

    python bench/validity.py             # a few minutes on one core
    python bench/validity.py --quick     # a smoke run (fewer studies; not for the README)

Studies shaped like RTE (277 dev examples, majority class 52.7%, 3 heads, 3 or 5 seeds) are
drawn from a latent model whose true accuracies and seed noise are known, and fed through the
same function a study's summary calls (poolbert.tuning.verdict.compare_heads). The race rule
(poolbert.tuning.race.race) is run on simulated trial sequences. Writes
bench/results/validity.json and validity.md. The secondary tests' bootstraps run with
--resamples resamples (production: 10,000 and 2,000); the primary test has no resampling.

The latent model: example i, head h, seed s is right when
    a_h + BETA z_i + GAMMA w_hi + lam u_hs + eta e_hsi > 0
z: the example's difficulty (shared by heads), w: the head's own take on the example, u: the
seed's shift (moves all examples together), e: per-example seed flips; all standard normal
(u: Student t with 3 df, or a run that collapses to the majority class, in the robustness
rows). eta and lam are solved for each row's seed std and its shared share; a_h for the
head's true accuracy (its expectation over examples and seeds).
"""

from __future__ import annotations

import os

for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # one core: small matrices, threads only contend

import argparse  # noqa: E402
import functools  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
from scipy import special  # noqa: E402

from poolbert.tuning.baseline import baseline  # noqa: E402
from poolbert.tuning.evidence import HeadEvidence  # noqa: E402
from poolbert.tuning.race import race  # noqa: E402
from poolbert.tuning.verdict import PRIMARY, compare_heads  # noqa: E402

HERE = Path(__file__).resolve().parent
N_DEV = 277  # RTE: dev size
MAJORITY = 146 / 277  # dev's share of the majority class
HEADS = ("cls", "mean_max", "attention")
BETA, GAMMA = 1.0, 0.6
ALPHA = 0.05


@dataclass(frozen=True)
class Cell:
    """One row of the simulation: true accuracy, seed std (accuracy units), seeds, the share
    of the seed variance that moves all examples together, and the seed noise's shape."""

    accuracy: float
    seed_std: float
    seeds: int
    shared: float = 0.5
    tails: str = "normal"  # "normal", "t3" or "collapse" (10% of runs predict one class)

    @property
    def name(self) -> str:
        return (f"acc {self.accuracy:.2f}, seed std {100 * self.seed_std:.0f} pt, "
                f"{self.seeds} seeds, shared {self.shared:.0%}, {self.tails}")


def seed_variance(acc: float, eta: float, lam: float, grid: tuple[np.ndarray, np.ndarray]) -> float:
    """Expected variance over seeds of a run's accuracy on N_DEV examples."""
    m, u = grid  # latent example scores (before a) and seed shifts, fixed draws
    total = np.sqrt(BETA ** 2 + GAMMA ** 2 + lam ** 2 + eta ** 2)
    a = special.ndtri(acc) * total
    p = special.ndtr((a + m[None, :] + lam * u[:, None]) / eta)  # (U, M): right, per seed shift
    shared = p.mean(axis=1).var()
    flips = (p * (1 - p)).mean() / N_DEV
    return float(shared + flips)


@functools.cache
def calibrate(cell: Cell) -> tuple[float, float]:
    """(eta, lam) giving the cell's seed std with its shared share, by bisection."""
    rng = np.random.default_rng(12345)
    grid = (rng.standard_normal(4000) * np.hypot(BETA, GAMMA), rng.standard_normal(300))
    target = cell.seed_std ** 2

    def solve(f, lo: float, hi: float) -> float:  # type: ignore[no-untyped-def]
        for _ in range(40):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if f(mid) < 0 else (lo, mid)
        return (lo + hi) / 2

    eta = solve(lambda x: seed_variance(cell.accuracy, x, 0.0, grid)
                - (1 - cell.shared) * target, 1e-3, 20.0)
    lam = 0.0 if cell.shared == 0 else solve(
        lambda x: seed_variance(cell.accuracy, eta, x, grid) - target, 0.0, 5.0)
    return eta, lam


def simulate(rng: np.random.Generator, cell: Cell, latent: tuple[float, float],
             accs: np.ndarray) -> tuple[dict[str, HeadEvidence], np.ndarray]:
    """One study: per head, S runs' predictions on N_DEV examples; and the labels."""
    eta, lam = latent
    h, s, n = len(accs), cell.seeds, N_DEV
    y = (rng.random(n) >= MAJORITY).astype(np.int64)  # class 0 is the majority
    u = rng.standard_normal((h, s))
    if cell.tails == "t3":
        u = rng.standard_t(3, (h, s)) / np.sqrt(3.0)  # unit variance, heavy tails
    total = np.sqrt(BETA ** 2 + GAMMA ** 2 + lam ** 2 + eta ** 2)
    a = special.ndtri(accs) * total
    score = (a[:, None, None] + BETA * rng.standard_normal(n) + GAMMA *
             rng.standard_normal((h, 1, n)) + lam * u[:, :, None]
             + eta * rng.standard_normal((h, s, n)))
    preds = np.where(score > 0, y, 1 - y)
    if cell.tails == "collapse":
        preds[rng.random((h, s)) < 0.1] = 0  # the run predicts the majority class throughout
    values = (preds == y).mean(axis=2)
    seeded = s > 1  # one run: the best trial's model stands in
    return ({name: HeadEvidence(preds[i], values[i], seeded=seeded)
             for i, name in enumerate(HEADS)}, y)


def run_cell(cell: Cell, studies: int, accs: np.ndarray, seed: int,
             resamples: int) -> list[dict]:
    """compare_heads on `studies` simulated studies; per study the fields the summary needs."""
    rng = np.random.default_rng(seed)
    latent = calibrate(cell)
    out = []
    for i in range(studies):
        evidence, y = simulate(rng, cell, latent, accs)
        base = baseline(y, "single_label", "accuracy", 2)
        verdict = compare_heads(evidence, base, "single_label", "accuracy", y, alpha=ALPHA,
                                seed=i, n_resamples=resamples)
        primary = [r for r in verdict.comparisons if r["test"] == PRIMARY]
        out.append({
            "any_significant": any(r["significant"] for r in primary),
            "first_pair": primary[0],
            "any_beats_baseline": any(v["beats_baseline"] for v in verdict.heads.values()),
            "old_rule_any": any(r["p_value"] < ALPHA for r in verdict.comparisons
                                if not r["primary"]),
            "seed_std": float(np.mean([np.var(e.values, ddof=1) for e in evidence.values()]))
            if cell.seeds > 1 else None,
            "candidates": {"primary": primary[0]["p_value"],
                           **candidate_pvalues(evidence, y, rng)},
            "disagreement": float(np.mean(evidence[HEADS[0]].preds != evidence[HEADS[1]].preds)),
        })
    return out


def candidate_pvalues(evidence: dict[str, HeadEvidence], y: np.ndarray,
                      rng: np.random.Generator, resamples: int = 500) -> dict[str, float]:
    """Rejected candidates for the primary test, on the first pair: a two-level bootstrap
    (dev examples and each head's seeds resampled together) and a paired t over examples of
    the seed-averaged correctness that ignores the seeds' shared noise."""
    a, b = ((np.asarray(evidence[h].preds) == y).astype(float) for h in HEADS[:2])  # (S, N)
    s, n = a.shape
    rows = rng.integers(0, n, (resamples, n)) + n * np.arange(resamples)[:, None]
    counts = np.bincount(rows.ravel(), minlength=resamples * n).reshape(resamples, n).T / n
    acc_a, acc_b = a @ counts, b @ counts  # (S, B): each run's accuracy on each resample
    pick_a, pick_b = rng.integers(0, s, (2, resamples, s))
    cols = np.arange(resamples)[:, None]
    diffs = acc_a.T[cols, pick_a].mean(axis=1) - acc_b.T[cols, pick_b].mean(axis=1)
    boot = min(1.0, 2 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    d = a.mean(axis=0) - b.mean(axis=0)
    se = d.std(ddof=1) / np.sqrt(n)
    t = float(d.mean() / se) if se > 0 else 0.0
    return {"two_level_bootstrap": boot,
            "examples_only_t": float(2 * special.stdtr(n - 1, -abs(t)))}


# ----------------------------------------------------------------------------- races


@dataclass(frozen=True)
class RaceCell:
    """A race: the true best quality of each head's configurations (the first is the best),
    trials per head, selection-set size, seed noise, spread of a trial's quality below its
    head's best (exponential, per head), and the share of trials that fail to learn."""

    bests: tuple[float, ...]
    trials: int = 30
    n_selection: int = 373  # 15% of RTE's train held out
    seed_std: float = 0.02
    regret: tuple[float, ...] = (0.04, 0.04, 0.04)
    collapse: float = 0.15

    @property
    def name(self) -> str:
        gaps = ", ".join(f"{100 * (self.bests[0] - b):.1f}" for b in self.bests[1:])
        slow = (f" (best head {100 * self.regret[0]:.0f} pt: searches slower)"
                if self.regret[0] > min(self.regret) else "")
        return (f"gaps {gaps} pt, seed std {100 * self.seed_std:.0f} pt, regret "
                f"{100 * min(self.regret):.0f} pt{slow}")


def race_values(rng: np.random.Generator, cell: RaceCell) -> np.ndarray:
    """(H, T) trial scores on the selection set, in the order the trials finish."""
    h, t = len(cell.bests), cell.trials
    quality = np.asarray(cell.bests)[:, None] - rng.exponential(1.0, (h, t)) * \
        np.asarray(cell.regret)[:, None]
    quality = np.where(rng.random((h, t)) < cell.collapse, MAJORITY, quality)
    quality = np.maximum(quality, 1 - MAJORITY)  # no worse than always the minority class
    noise = np.sqrt(quality * (1 - quality) / cell.n_selection + cell.seed_std ** 2)
    return np.asarray(quality + noise * rng.standard_normal((h, t)))


def run_race(cell: RaceCell, studies: int, seed: int) -> dict:
    """Round-robin trials; the rule is asked after each round; a stopped head stays so."""
    rng = np.random.default_rng(seed)
    wrong, used = 0, 0
    names = [f"h{i}" for i in range(len(cell.bests))]
    for _ in range(studies):
        values = race_values(rng, cell)
        stopped_at = {h: cell.trials for h in names}
        for r in range(1, cell.trials + 1):
            live = {h: values[i, :min(r, stopped_at[h])].tolist() for i, h in enumerate(names)}
            for h in race(live, cell.n_selection, "accuracy").stop:
                stopped_at[h] = min(stopped_at[h], r)
        wrong += stopped_at[names[0]] < cell.trials
        used += sum(stopped_at.values())
    total = studies * cell.trials * len(names)
    return {"cell": cell.name, "studies": studies, "wrong_elimination_rate": wrong / studies,
            "trials_saved": 1 - used / total}


# ----------------------------------------------------------------------------- the bench

MAIN = [Cell(acc, std, s) for acc in (0.55, 0.70) for std in (0.01, 0.03) for s in (3, 5)] + [
    Cell(0.62, 0.02, 3), Cell(0.62, 0.02, 5)]
ROBUST = [Cell(0.62, 0.02, 3, shared=0.0), Cell(0.62, 0.02, 3, shared=0.9),
          Cell(0.62, 0.02, 5, tails="t3"), Cell(0.62, 0.02, 5, tails="collapse"),
          Cell(0.62, 0.02, 1)]
AT_BASELINE = Cell(MAJORITY, 0.02, 3)
RACES = [RaceCell((0.68, 0.68 - g1, 0.68 - g2), seed_std=sd, regret=reg)
         for g1, g2 in ((0.005, 0.005), (0.01, 0.02), (0.02, 0.05), (0.05, 0.10), (0.10, 0.15))
         for sd in (0.01, 0.03) for reg in ((0.03, 0.03, 0.03), (0.08, 0.03, 0.03))]


def null_and_power(cell: Cell, studies: int, seed: int, resamples: int) -> dict:
    """False positives with equal heads; then power with the first pair's true difference set
    to the median minimum detectable effect those null studies reported."""
    equal = np.full(len(HEADS), cell.accuracy)
    null = run_cell(cell, studies, equal, seed, resamples)
    mde = float(np.median([r["first_pair"]["min_detectable_effect"] for r in null]))
    shifted = equal.copy()
    shifted[0] += mde
    power = run_cell(cell, studies, shifted, seed + 1, resamples)
    found = [r["first_pair"]["significant"] and r["first_pair"]["difference"] > 0 for r in power]
    # the candidates at the same true difference, before any correction
    raw_power = {k: float(np.mean([r["candidates"][k] < ALPHA for r in power]))
                 for k in power[0]["candidates"]}
    stds = [r["seed_std"] for r in null if r["seed_std"] is not None]
    return {
        "cell": cell.name, **asdict(cell), "studies": studies,
        "realised_seed_std": float(np.sqrt(np.mean(stds))) if stds else None,
        "false_positive_rate": float(np.mean([r["any_significant"] for r in null])),
        "pair_false_positive_rate": float(np.mean([r["first_pair"]["significant"]
                                                   for r in null])),
        "old_rule_false_positive_rate": float(np.mean([r["old_rule_any"] for r in null])),
        "candidate_pair_false_positive_rate": {
            k: float(np.mean([r["candidates"][k] < ALPHA for r in null]))
            for k in null[0]["candidates"]},
        "median_mde": mde, "power_at_mde": float(np.mean(found)),
        "candidate_pair_power_at_mde": raw_power,
        "median_example_sd": float(np.median([r["first_pair"]["example_sd"] for r in null])),
        "run_disagreement": float(np.mean([r["disagreement"] for r in null])),
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--studies", type=int, default=300, help="simulated studies per row and arm")
    p.add_argument("--race-studies", type=int, default=400, help="simulated races per row")
    p.add_argument("--resamples", type=int, default=200,
                   help="bootstrap resamples of the secondary tests inside the simulation")
    p.add_argument("--quick", action="store_true", help="a smoke run: 40 studies per row")
    p.add_argument("--out", default=str(HERE / "results" / "validity"),
                   help="result path without extension")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    studies = 40 if args.quick else args.studies
    races = 40 if args.quick else args.race_studies
    start = time.perf_counter()
    main_rows, robust_rows = [], []
    for i, cell in enumerate(MAIN + ROBUST):
        row = null_and_power(cell, studies, 1000 * i, args.resamples)
        (main_rows if cell in MAIN else robust_rows).append(row)
        print(f"{row['cell']}: false positives {row['false_positive_rate']:.3f}, power at MDE "
              f"{100 * row['median_mde']:.1f} pt {row['power_at_mde']:.3f}", flush=True)
    at_base = run_cell(AT_BASELINE, studies, np.full(len(HEADS), MAJORITY), 99_000,
                       args.resamples)
    race_rows = [run_race(c, races, 50_000 + i) for i, c in enumerate(RACES)]
    for r in race_rows:
        print(f"race {r['cell']}: wrong {r['wrong_elimination_rate']:.3f}, saved "
              f"{r['trials_saved']:.3f}", flush=True)
    result = summarise(main_rows, robust_rows, at_base, race_rows, studies, args)
    result["runtime_s"] = round(time.perf_counter() - start, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return 0


def summarise(main_rows: list[dict], robust_rows: list[dict], at_base: list[dict],
              race_rows: list[dict], studies: int, args: argparse.Namespace) -> dict:
    def mean(rows: list[dict], key: str) -> float:
        return float(np.mean([r[key] for r in rows]))

    return {
        "alpha": ALPHA, "n_dev": N_DEV, "heads": len(HEADS), "primary_test": PRIMARY,
        "studies_per_row": studies, "secondary_resamples": args.resamples,
        "null_studies": studies * len(main_rows),
        "false_positive_rate": mean(main_rows, "false_positive_rate"),
        "false_positive_rate_worst_row": max(r["false_positive_rate"] for r in main_rows),
        "old_rule_false_positive_rate": mean(main_rows, "old_rule_false_positive_rate"),
        "power_at_mde": mean(main_rows, "power_at_mde"),
        "power_at_mde_range": [min(r["power_at_mde"] for r in main_rows),
                               max(r["power_at_mde"] for r in main_rows)],
        "baseline_false_positive_rate": float(np.mean([r["any_beats_baseline"]
                                                       for r in at_base])),
        "race_wrong_elimination_rate": float(np.mean([r["wrong_elimination_rate"]
                                                      for r in race_rows])),
        "race_wrong_elimination_worst_row": max(r["wrong_elimination_rate"] for r in race_rows),
        "race_trials_saved": float(np.mean([r["trials_saved"] for r in race_rows])),
        "rows": main_rows, "robustness_rows": robust_rows, "race_rows": race_rows,
    }


def markdown(result: dict) -> str:
    lines = [
        "# Validity of the head comparison (bench/validity.py)", "",
        f"Simulated RTE-shaped studies ({result['n_dev']} dev examples, {result['heads']} heads, "
        f"alpha {result['alpha']}), {result['studies_per_row']} studies per row and arm; primary "
        f"test `{result['primary_test']}` with Holm across pairs. Secondary bootstraps ran with "
        f"{result['secondary_resamples']} resamples. Runtime {result.get('runtime_s', 0):.0f} s.",
        "", "| measure | value | target |", "|---|---|---|",
        f"| false positive rate (any pair, all heads equal; {result['null_studies']} studies) | "
        f"{result['false_positive_rate']:.3f} (worst row "
        f"{result['false_positive_rate_worst_row']:.3f}) | <= 0.06 |",
        f"| the old rule (any secondary test p < 0.05, no correction) | "
        f"{result['old_rule_false_positive_rate']:.3f} | |",
        f"| power at the reported MDE | {result['power_at_mde']:.3f} (rows "
        f"{result['power_at_mde_range'][0]:.3f}-{result['power_at_mde_range'][1]:.3f}) | "
        "0.75-0.85 |",
        f"| a head at the majority class declared to beat it | "
        f"{result['baseline_false_positive_rate']:.3f} | <= 0.05 |",
        f"| race: truly best head stopped | {result['race_wrong_elimination_rate']:.3f} (worst "
        f"row {result['race_wrong_elimination_worst_row']:.3f}) | <= 0.05 |",
        f"| race: trials saved | {result['race_trials_saved']:.3f} | |", "",
        "Per row: seed std realised (pt), single runs' disagreement between two heads, false "
        "positives (any pair, Holm), one pair's rejection rate at p < 0.05 before correction "
        "for the primary test / a two-level bootstrap (examples and seeds resampled) / a t-test "
        "over examples of the seed-averaged correctness (seed noise ignored), the median MDE "
        "and the power at it (Holm-significant, right sign), then the three tests' rejection "
        "rate at p < 0.05 when the first pair's true difference is that MDE.", "",
        "| row | seed std | disagree | FP any pair | one pair p < 0.05: primary / two-level "
        "bootstrap / examples-only | MDE (pt) | power at MDE | at MDE, p < 0.05: primary / "
        "bootstrap / examples-only |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"] + result["robustness_rows"]:
        c, w = r["candidate_pair_false_positive_rate"], r["candidate_pair_power_at_mde"]
        std = "-" if r["realised_seed_std"] is None else f"{100 * r['realised_seed_std']:.1f}"
        lines.append(f"| {r['cell']} | {std} | {r['run_disagreement']:.2f} | "
                     f"{r['false_positive_rate']:.3f} | {c['primary']:.3f} / "
                     f"{c['two_level_bootstrap']:.3f} / {c['examples_only_t']:.3f} | "
                     f"{100 * r['median_mde']:.1f} | {r['power_at_mde']:.3f} | "
                     f"{w['primary']:.3f} / {w['two_level_bootstrap']:.3f} / "
                     f"{w['examples_only_t']:.3f} |")
    lines += ["", "| race row | truly best head stopped | trials saved |", "|---|---|---|"]
    lines += [f"| {r['cell']} | {r['wrong_elimination_rate']:.3f} | {r['trials_saved']:.3f} |"
              for r in result["race_rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
