"""bench/bench.py's CPU precision rows: poolbert in fp32 and bf16, next to the Trainer recipe.

    python bench/bench.py --rows precision --name cpu-precision          # speed: a quiet machine
    python bench/bench.py --rows bf16-parity --name cpu-bf16-parity      # accuracy: 3 seeds x 2
    python bench/bench.py --rows step-profile --name cpu-step-profile    # where a step's time goes

`precision` times whole processes as a user runs them, one after another on the same rows:
bench/peer.py's Trainer recipe (fp32), `poolbert train --pooling cls` with its defaults (auto
precision) and with --precision fp32 and bf16, then `poolbert evaluate` and `poolbert predict`
(RTE test rows) of that model in fp32 and bf16. `bf16-parity` trains full RTE per seed in both
precisions (kept in --parity-dir, so an interrupted row resumes) and scores each model in both.
`step-profile` runs torch.profiler over one epoch of training steps per precision.

On a CPU without native bf16 (no AVX512-BF16 or AMX: poolbert.device.cpu_bf16_feature) the
bf16 columns measure emulation, which is slower than fp32; the Markdown says which it was.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PRECISIONS = ("fp32", "bf16")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--predict-rows", type=int, default=3000,
                   help="precision row: RTE test rows poolbert predict labels")
    p.add_argument("--parity-seeds", default="1,2,3", help="bf16-parity row: seeds")
    p.add_argument("--parity-train-samples", type=int, default=0, help="0 = all of train")
    p.add_argument("--parity-epochs", type=int, default=3)
    p.add_argument("--parity-pooling", default="mean_max")
    p.add_argument("--parity-dir", default=str(Path(tempfile.gettempdir()) / "poolbert-parity"),
                   help="bf16-parity row: finished runs are kept here and not trained again")
    p.add_argument("--profile-steps", type=int, default=12, help="step-profile row: steps")


def cpu_bf16() -> str:
    """The CPU's native bf16 instructions, or a note that bf16 is emulated here."""
    from poolbert.device import cpu_bf16_feature

    feature = cpu_bf16_feature()
    return f"native bf16 ({feature})" if feature else "no native bf16: bf16 is emulated"


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def timed(cmd: list[str]) -> tuple[float, str]:
    """A command's whole-process wall seconds and its stdout (a failure stops the bench)."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd[:5])} ... failed:\n{proc.stderr[-3000:]}")
    return wall, proc.stdout


def poolbert(*args: str) -> list[str]:
    return [sys.executable, "-m", "poolbert", *args]


# ----------------------------------------------------------------------------- precision row

def precision_row(args: argparse.Namespace, path: str) -> tuple[dict, str]:
    """Whole processes on the same rows: the Trainer recipe, poolbert's defaults, fp32, bf16."""
    common = ["--max-length", str(args.max_length), "--batch-size", str(args.batch_size)]
    wall, out = timed([sys.executable, str(Path(__file__).parent / "peer.py"), "train",
                       "--model", path, "--data-dir", args.data_dir, "--train-samples",
                       str(args.train_samples), "--epochs", str(args.epochs), "--seed", "42",
                       *common])
    sides = {"peer": {**json.loads(out.strip().splitlines()[-1]), "wall_s": wall}}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("auto", *PRECISIONS):
            run = Path(tmp, name)
            wall, _ = timed(poolbert(
                "train", "--pooling", "cls", "--model", path, "--data-dir", args.data_dir,
                "--max-train-samples", str(args.train_samples), "--num-train-epochs",
                str(args.epochs), "--device", args.device, "--precision", name, *common,
                "--output-dir", str(run), "--quiet"))
            m = json.loads((run / "metrics.json").read_text())
            sides[name] = {"wall_s": wall, "train_examples_per_s": m["train_samples_per_second"],
                           "eval_examples_per_s": m["eval_samples_per_second"],
                           "dev_accuracy": m["eval_accuracy"], "precision": m["precision"],
                           "precision_reason": m.get("precision_reason")}
        scoring = score_processes(args, Path(tmp, "fp32"), Path(tmp))
    return {"row": "precision", **sides, "scoring": scoring}, precision_table(args, sides, scoring)


def score_processes(args: argparse.Namespace, run: Path, tmp: Path) -> dict:
    """`poolbert evaluate` (dev) and `poolbert predict` (test rows) of one model, per precision."""
    import pandas as pd

    rows = pd.read_parquet(Path(args.data_dir) / "test.parquet").head(args.predict_rows)
    table = tmp / "predict-input.csv"
    rows[["idx", "sentence1", "sentence2"]].to_csv(table, index=False)
    found: dict = {"predict_rows": len(rows)}
    for precision in PRECISIONS:
        wall, out = timed(poolbert("evaluate", str(run), "--device", args.device,
                                   "--precision", precision, "--quiet"))
        evaluated = json.loads(out)
        found[f"evaluate_{precision}"] = {"wall_s": wall,
                                          "examples_per_s": evaluated["eval_samples_per_second"],
                                          "accuracy": evaluated["eval_accuracy"]}
        wall, _ = timed(poolbert("predict", str(run), "--input", str(table), "--output",
                                 str(tmp / f"predicted-{precision}.csv"), "--device", args.device,
                                 "--precision", precision, "--overwrite", "--quiet"))
        found[f"predict_{precision}"] = {"wall_s": wall, "rows_per_s": len(rows) / wall}
    a, b = (pd.read_csv(tmp / f"predicted-{p}.csv")["prediction"] for p in PRECISIONS)
    found["predict_agreement"] = float((a == b).mean())
    return found


def precision_table(args: argparse.Namespace, s: dict, scoring: dict) -> str:
    auto = s["auto"]
    head = (f"### fp32 and bf16 on this CPU ({cpu_bf16()}; defaults: "
            f"{auto['precision_reason']})\n\n`poolbert train --pooling cls`, {args.train_samples} "
            f"RTE train rows, {args.epochs} epoch(s), batch {args.batch_size}; each column its "
            "own process, run one after another.\n\n")
    lines = ["| measure | Trainer recipe (fp32) | poolbert fp32 | poolbert bf16 | poolbert "
             "defaults | bf16 vs fp32 | defaults vs Trainer |", "| --- |" + " ---: |" * 6]
    for key, label in (("wall_s", "whole process, s"), ("train_examples_per_s",
                                                         "train examples/s"),
                       ("eval_examples_per_s", "evaluation examples/s (dev, in the run)"),
                       ("dev_accuracy", "dev accuracy")):
        values = [s[k][key] for k in ("peer", "fp32", "bf16", "auto")]
        faster = (lambda a, b: ratio(b, a)) if key == "wall_s" else ratio
        relative = ([f"{values[2] - values[1]:+.4f}", f"{values[3] - values[0]:+.4f}"]
                    if key == "dev_accuracy" else
                    [faster(values[2], values[1]), faster(values[3], values[0])])
        lines.append(f"| {label} | " + " | ".join(f"{v:.4g}" for v in values)
                     + f" | {' | '.join(relative)} |")
    for what, key, unit in (("evaluate", "examples_per_s", "dev examples/s"),
                            ("evaluate", "wall_s", "whole process, s"),
                            ("predict", "rows_per_s", f"{scoring['predict_rows']} test rows, "
                             "rows per whole-process s")):
        fp32, bf16 = scoring[f"{what}_fp32"][key], scoring[f"{what}_bf16"][key]
        rel = ratio(fp32, bf16) if key == "wall_s" else ratio(bf16, fp32)
        lines.append(f"| poolbert {what}: {unit} | | {fp32:.4g} | {bf16:.4g} | | {rel} | |")
    lines.append(f"| predict: test predictions that agree, bf16 vs fp32 | | | "
                 f"{scoring['predict_agreement']:.4f} | | | |")
    return head + "\n".join(lines) + "\n"
