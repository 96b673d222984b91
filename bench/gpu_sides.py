"""bench/gpu.py's two sides: `poolbert train` and `poolbert tune` as a user runs them, and
the Trainer recipe (bench/peer.py), each a process of its own timed whole; and the bench's
state (rows measured, time left)."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from procgroup import run_group  # bench/, beside this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# the studies' trials: 12 trials of 1 or 2 epochs (18 trial-epochs), so the study, its --pack 1
# twin and the rows after them fit bench/gpu.sh's time budget (bench/gpu.py, ESTIMATE_S)
GRID_LRS = (2e-5, 3e-5, 5e-5, 7e-5, 1e-4, 1.5e-4)
GRID_EPOCHS = (1, 2)
SPACE = """\
default:
  params:
    learning_rate: {{type: float, low: 1.0e-5, high: 2.0e-4, log: true}}
    num_train_epochs: {{type: categorical, choices: {epochs}}}
"""


class Bench:
    """The rows measured so far, and the time left for the rest."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.started = time.monotonic()
        self.table: list[tuple[str, str, str, str]] = []  # measure, peer, poolbert, ratio
        self.raw: dict[str, dict] = {}
        self.notes: list[str] = []
        self.work = Path(tempfile.mkdtemp(prefix="poolbert-gpu-bench-"))

    def left(self) -> float:
        return self.args.budget - (time.monotonic() - self.started)

    def run(self, cmd: list[str], label: str, env: dict | None = None) -> tuple[float, str]:
        """Run one process (in a session of its own) to its end, or until the budget is
        spent; its whole wall time and stdout. Raises on failure or timeout."""
        timeout = max(5.0, self.left())
        start = time.perf_counter()
        proc = run_group(cmd, timeout, env={**os.environ, **(env or {})}, cwd=ROOT)
        wall = time.perf_counter() - start
        print(f"[{time.monotonic() - self.started:6.0f}s] {label}: {wall:.1f} s, "
              f"{'timed out' if proc.timed_out else f'exit {proc.returncode}'}", flush=True)
        if proc.timed_out:
            raise RuntimeError(f"{label} timed out after {timeout:.0f} s (the time budget): its "
                               "process group was ended")
        if proc.returncode != 0:
            raise RuntimeError(f"{label} failed (exit {proc.returncode}): "
                               f"{(proc.stderr or proc.stdout).strip()[-1500:]}")
        return wall, proc.stdout

    def row(self, measure: str, peer: float | str | None, ours: float | str | None,
            ratio: str) -> None:
        self.table.append((measure, _fmt(peer), _fmt(ours), ratio))


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "–"
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def ratio(a: float, b: float, word: str = "") -> str:
    """a / b as "1.68x faster" (or "0.87x, slower" below one)."""
    if not b:
        return "n/a"
    value = a / b
    return f"{value:.2f}x{word}" if value >= 1 or not word else f"{value:.2f}x, slower"


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- the two sides


def poolbert_train(b: Bench, model: str, epochs: int, name: str, *extra: str) -> dict:
    """`poolbert train` as a user runs it; its files give the per-epoch numbers."""
    out = b.work / name
    cmd = [sys.executable, "-m", "poolbert", "train", "--model", model, "--data-dir",
           b.args.data_dir, "--pooling", "cls", "--num-train-epochs", str(epochs),
           "--learning-rate", "5e-5", "--batch-size", "16", "--max-length", "128", "--seed", "1",
           "--output-dir", str(out), "--quiet", *subset(b, "--max-train-samples"), *extra]
    wall, _ = b.run(cmd, f"poolbert train {name}")
    metrics = json.loads((out / "metrics.json").read_text())
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    evals = [r for r in history if r["type"] == "eval"]
    return {"wall_s": wall, "examples_per_s": metrics["train_samples_per_second"],
            "epoch_examples_per_s": [r["train_samples_per_second"] for r in evals],
            "dev_accuracy_best": metrics["eval_accuracy"],
            "dev_accuracy_last": evals[-1]["eval_accuracy"], "best_epoch": metrics["best_epoch"],
            "precision": metrics["precision"]}


def peer_train(b: Bench, model: str, epochs: int, name: str) -> dict:
    cmd = [sys.executable, str(HERE / "peer.py"), "train", "--model", model, "--data-dir",
           b.args.data_dir, "--epochs", str(epochs), "--seed", "1",
           *subset(b, "--train-samples")]
    wall, stdout = b.run(cmd, f"peer train {name}")
    return {"wall_s": wall, **last_json(stdout)}


def subset(b: Bench, flag: str) -> list[str]:
    return [flag, str(b.args.train_samples)] if b.args.train_samples else []


def grid_trials(lrs: tuple[float, ...] = GRID_LRS,
                epochs: tuple[int, ...] = GRID_EPOCHS) -> list[dict]:
    return [{"learning_rate": lr, "num_train_epochs": e} for lr in lrs for e in epochs]


def poolbert_study(b: Bench, model: str, name: str, *extra: str, env: dict | None = None,
                   lrs: tuple[float, ...] = GRID_LRS,
                   epochs: tuple[int, ...] = GRID_EPOCHS) -> dict:
    """`poolbert tune` on the grid's trials, queued in its storage before it starts."""
    import optuna
    from peer import optuna_storage

    out = b.work / name
    out.mkdir(parents=True)
    space = b.work / f"{name}-space.yaml"
    space.write_text(SPACE.format(epochs=list(epochs)))
    # poolbert's own files: study.db (SQLite), or journal.log where SQLAlchemy is missing
    storage = optuna_storage(out, "study.db", "journal.log")
    if not isinstance(storage, str):
        extra = ("--storage", "journal", *extra)
    study = optuna.create_study(storage=storage, study_name=f"{name}-cls", direction="maximize")
    trials = grid_trials(lrs, epochs)
    for params in trials:
        study.enqueue_trial(params)
    cmd = [sys.executable, "-m", "poolbert", "tune", "--poolings", "cls", "--model", model,
           "--data-dir", b.args.data_dir, "--space", str(space), "--n-trials",
           str(len(trials)), "--pruner", "none", "--select-on", "dev", "--final-seeds",
           "0", "--batch-size", "16", "--max-length", "128", "--seed", "1", "--quiet",
           "--study-name", name, "--output-dir", str(out), *subset(b, "--max-train-samples"),
           *extra]
    wall, _ = b.run(cmd, f"poolbert tune {name}", env=env)
    written = json.loads((out / "summary.json").read_text())
    summary = written["heads"]["cls"]
    trials = optuna.load_study(study_name=f"{name}-cls", storage=storage).trials
    return {"wall_s": wall, "best_value": summary["best_value"],
            "n_complete": summary["n_complete"], "pack": written["budget"].get("pack", 1),
            "epochs_run": sum(int(t.user_attrs.get("epochs_run", 0)) for t in trials),
            "params": sorted((t.params["learning_rate"], t.params["num_train_epochs"])
                             for t in trials if t.params)}


def peer_study(b: Bench, model: str) -> dict:
    cmd = [sys.executable, str(HERE / "peer.py"), "study", "--model", model, "--data-dir",
           b.args.data_dir, "--grid", ",".join(map(str, GRID_LRS)),
           "--grid-epochs", ",".join(map(str, GRID_EPOCHS)), "--seed", "1",
           *subset(b, "--train-samples")]
    wall, stdout = b.run(cmd, "peer study")
    return {"wall_s": wall, **last_json(stdout)}
