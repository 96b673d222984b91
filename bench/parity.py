"""bench/bench.py's bf16-parity row: does bf16 training on a CPU reach fp32's accuracy?

Per seed, one run in fp32 and one in bf16 (autocast over float32 master weights), each on the
same rows with the same settings (--parity-pooling, --parity-epochs, the last epoch kept, so no
epoch is chosen on dev); each run's model then scores dev in both precisions. Reported: dev
accuracy per seed and paired over seeds, the last epoch's mean training loss, how many dev
predictions the fp32 and bf16 runs share, and how many the same weights keep when scored in
bf16 instead of fp32.

Each run is its own process (`python bench/parity.py SPEC_JSON`), its result kept in
--parity-dir under a name made of its settings, so an interrupted row resumes where it stopped.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from precision import PRECISIONS, cpu_bf16


def parity_row(args: argparse.Namespace, path: str) -> tuple[dict, str]:
    seeds = [int(s) for s in args.parity_seeds.split(",")]
    spec = {"model": path, "data_dir": args.data_dir, "device": args.device,
            "train_samples": args.parity_train_samples, "epochs": args.parity_epochs,
            "pooling": args.parity_pooling, "max_length": args.max_length,
            "batch_size": args.batch_size}
    # every fp32 run first: the cheap side, and fp32's own spread between seeds, early
    runs = {(p, seed): one_run({**spec, "precision": p, "seed": seed}, Path(args.parity_dir))
            for p in PRECISIONS for seed in seeds}
    per_seed = [seed_row(runs["fp32", s], runs["bf16", s]) for s in seeds]
    summary = summarise(per_seed)
    row = {"row": "bf16-parity", "settings": spec, "seeds": per_seed, "summary": summary}
    return row, parity_table(spec, per_seed, summary)


def one_run(spec: dict, folder: Path) -> dict:
    """A finished run's result from `folder`, else train it now in its own process."""
    key = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    found = folder / f"{spec['precision']}-seed{spec['seed']}-{key}.json"
    if found.is_file():
        return json.loads(found.read_text())
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    print(f"bf16-parity: training {spec['precision']}, seed {spec['seed']} ...", file=sys.stderr,
          flush=True)
    proc = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench: parity run {spec} failed:\n{proc.stderr[-3000:]}")
    result = {**json.loads(proc.stdout.strip().splitlines()[-1]),
              "wall_s": time.perf_counter() - start}
    partial = found.with_suffix(".tmp")
    partial.write_text(json.dumps(result) + "\n")
    partial.replace(found)  # whole or not at all: a killed run is trained again
    return result


def train_and_score(spec: dict) -> dict:
    """One run (last epoch kept) and its model scoring dev in each precision."""
    import torch

    from poolbert.config import RunConfig
    from poolbert.resources import Resources
    from poolbert.scoring import ScoreOptions, score_split
    from poolbert.training import fit

    config = RunConfig()
    config.data.data_dir = spec["data_dir"]
    config.data.max_train_samples = spec["train_samples"] or None
    config.model.model_name_or_path = spec["model"]
    config.model.pooling = spec["pooling"]
    t = config.train
    t.num_train_epochs, t.seed, t.precision = spec["epochs"], spec["seed"], spec["precision"]
    t.max_length, t.batch_size, t.device = spec["max_length"], spec["batch_size"], spec["device"]
    resources = Resources.load(config.validate())
    result = fit(config, resources, quiet=True, epoch_selection="last")
    device = torch.device(spec["device"])
    enc = resources.cache.get(resources.data.validation, t.max_length)
    scored = {}
    for precision in PRECISIONS:
        s = score_split(result.model.to(device), enc, ScoreOptions(device, precision,
                                                                   resources.pad_id))
        scored[precision] = {"accuracy": s.metrics["eval_accuracy"], "preds": s.preds.tolist()}
    last = [r["loss"] for r in result.history
            if r["type"] == "step" and r["epoch"] > t.num_train_epochs - 1]
    return {"precision": result.metrics["precision"],
            "precision_reason": result.metrics.get("precision_reason"),
            "dev_accuracy": result.metrics["eval_accuracy"],
            "train_loss_last_epoch": statistics.fmean(last),
            "train_examples_per_s": result.metrics["train_samples_per_second"],
            "preds": result.scores.preds.tolist(), "scored": scored}


def agreement(a: list, b: list) -> float:
    return sum(x == y for x, y in zip(a, b, strict=True)) / len(a)


def seed_row(fp32: dict, bf16: dict) -> dict:
    return {"fp32_accuracy": fp32["dev_accuracy"], "bf16_accuracy": bf16["dev_accuracy"],
            "difference": bf16["dev_accuracy"] - fp32["dev_accuracy"],
            "fp32_loss": fp32["train_loss_last_epoch"], "bf16_loss": bf16["train_loss_last_epoch"],
            "runs_agree": agreement(fp32["preds"], bf16["preds"]),
            # the same weights scored in bf16 instead of fp32
            "fp32_weights_agree": agreement(*(fp32["scored"][p]["preds"] for p in PRECISIONS)),
            "bf16_weights_agree": agreement(*(bf16["scored"][p]["preds"] for p in PRECISIONS)),
            "fp32_train_examples_per_s": fp32["train_examples_per_s"],
            "bf16_train_examples_per_s": bf16["train_examples_per_s"]}


def summarise(rows: list[dict]) -> dict:
    """Paired over seeds: the mean difference, its spread, the paired t-test's p, and fp32's own
    spread between seeds (seed noise) to hold the difference against."""
    diffs = [r["difference"] for r in rows]
    out = {"mean_fp32": statistics.fmean(r["fp32_accuracy"] for r in rows),
           "mean_bf16": statistics.fmean(r["bf16_accuracy"] for r in rows),
           "mean_difference": statistics.fmean(diffs),
           "min_same_weights_agreement": min(min(r["fp32_weights_agree"], r["bf16_weights_agree"])
                                             for r in rows)}
    if len(rows) > 1:
        from scipy.stats import ttest_rel

        out["sd_difference"] = statistics.stdev(diffs)
        out["sd_fp32_between_seeds"] = statistics.stdev(r["fp32_accuracy"] for r in rows)
        same = all(d == 0 for d in diffs)
        out["paired_t_p"] = 1.0 if same else float(ttest_rel(
            [r["bf16_accuracy"] for r in rows], [r["fp32_accuracy"] for r in rows]).pvalue)
    return out


def parity_table(spec: dict, rows: list[dict], s: dict) -> str:
    head = (f"### bf16 against fp32 training on this CPU ({cpu_bf16()})\n\nRTE, "
            f"{spec['train_samples'] or 'all'} train rows, {spec['pooling']}, "
            f"{spec['epochs']} epoch(s) (the last kept), batch {spec['batch_size']}, max length "
            f"{spec['max_length']}; dev has the validation split's rows.\n\n")
    lines = ["| seed | dev acc fp32 | dev acc bf16 | bf16 - fp32 | last-epoch train loss "
             "fp32 / bf16 | dev predictions shared by the two runs | same weights, bf16 vs "
             "fp32 scoring (fp32 run / bf16 run) | train examples/s fp32 / bf16 |",
             "| ---: |" + " ---: |" * 7]
    for seed, r in enumerate(rows, 1):
        lines.append(f"| {seed} | {r['fp32_accuracy']:.4f} | {r['bf16_accuracy']:.4f} | "
                     f"{r['difference']:+.4f} | {r['fp32_loss']:.4f} / {r['bf16_loss']:.4f} | "
                     f"{r['runs_agree']:.4f} | {r['fp32_weights_agree']:.4f} / "
                     f"{r['bf16_weights_agree']:.4f} | {r['fp32_train_examples_per_s']:.3g} / "
                     f"{r['bf16_train_examples_per_s']:.3g} |")
    paired = (f"; paired over seeds: sd of the difference {s['sd_difference']:.4f}, t-test p "
              f"{s['paired_t_p']:.3f}; fp32's own sd between seeds {s['sd_fp32_between_seeds']:.4f}"
              if "paired_t_p" in s else "")
    return (head + "\n".join(lines) + f"\n\nMean dev accuracy fp32 {s['mean_fp32']:.4f}, bf16 "
            f"{s['mean_bf16']:.4f}, difference {s['mean_difference']:+.4f}{paired}. The same "
            f"weights scored in bf16 keep at least {s['min_same_weights_agreement']:.2%} of their "
            "fp32 dev predictions.\n")


if __name__ == "__main__":
    print(json.dumps(train_and_score(json.loads(sys.argv[1]))))
