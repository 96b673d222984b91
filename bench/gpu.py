"""Every GPU row of the README's speed table in one run: poolbert beside the Trainer recipe.

Run through `bench/gpu.sh`, which installs carried wheels and finds the model and the data.
Each measurement is its own process (whole-process wall times, own GPU memory); rows run in
order until POOLBERT_BENCH_BUDGET_S (default 450 s) is spent, and the table is printed last,
with ratios, the device and the versions. Results also go to bench/results/gpu-<device>.{md,json}
and, where $OUT is set, to $OUT.

Rows (POOLBERT_BENCH_ROWS, comma-separated; default: all but sweep and mps), in this order:
  single       embedded model, 3 epochs of RTE: `poolbert train` vs the Trainer recipe (fp32)
  study        12 trials (6 learning rates x epochs {2,3}) on all of train: `poolbert tune` with
               its default pack, and with --pack 1 (one trial at a time), vs
               `Trainer.hyperparameter_search` with the same trials; no pruning on any side
  bert-base    BertConfig() random weights, 1 epoch: examples/s, poolbert vs the Trainer recipe
  bert-study   bert-base random, 4 trials of 1 epoch: the default pack vs --pack 1
  paper-slice  bert-base random, one epoch of a pack of trials drawn from the paper space, and
               the projection of the report's 108-trial study from it
  attention    one process, warm: memory-efficient vs cuDNN attention, examples/s of epoch 2
  syncs        host-device syncs per 100 training steps (torch.cuda.set_sync_debug_mode)
  sweep        the 12-trial study with --pack 2 and 4, and --trials-per-gpu 2 and 4 (--pack 1)
  mps          --trials-per-gpu 4 under CUDA MPS (nvidia-cuda-mps-control), where it starts
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import rte_shaped  # bench/, beside this file

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_ROWS = ("single", "study", "bert-base", "bert-study", "paper-slice", "attention",
                "syncs")
GRID_LRS = (2e-5, 3e-5, 5e-5, 7e-5, 1e-4, 1.5e-4)
GRID_EPOCHS = (2, 3)
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
        """Run one process to its end; its whole wall time and stdout. Raises on failure."""
        timeout = max(10.0, self.left())
        start = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, **(env or {})}, cwd=ROOT)
        wall = time.perf_counter() - start
        print(f"[{time.monotonic() - self.started:6.0f}s] {label}: {wall:.1f} s, exit "
              f"{proc.returncode}", flush=True)
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


def row_attention(b: Bench) -> None:
    _, stdout = b.run([sys.executable, str(HERE / "gpu.py"), "--probe", "attention",
                       "--model", b.args.model, "--data-dir", b.args.data_dir,
                       *subset(b, "--train-samples")], "attention probe")
    probe = last_json(stdout)
    b.raw["attention"] = probe
    eff, cudnn = probe["efficient"], probe["cudnn"]
    b.row("warm epoch examples/s, attention: cuDNN (peer column) vs memory-efficient", cudnn,
          eff, ratio(eff, cudnn))


def row_syncs(b: Bench) -> None:
    import torch

    if not torch.cuda.is_available():
        b.notes.append("syncs: needs CUDA (torch.cuda.set_sync_debug_mode counts device-to-host "
                       "syncs), not measured here")
        return
    _, stdout = b.run([sys.executable, str(HERE / "gpu.py"), "--probe", "syncs",
                       "--model", b.args.model, "--data-dir", b.args.data_dir], "sync probe")
    probe = last_json(stdout)
    b.raw["syncs"] = probe
    b.row(f"host-device syncs per 100 training steps ({probe['steps']} steps)", None,
          100 * probe["syncs"] / probe["steps"], "; ".join(probe["where"][:3]) or "none")


def row_study(b: Bench) -> None:
    peer = peer_study(b, b.args.model)
    packed = poolbert_study(b, b.args.model, "study-pack")
    alone = poolbert_study(b, b.args.model, "study-pack1", "--pack", "1")
    b.raw["study"] = {"poolbert": packed, "poolbert_pack1": alone, "peer": peer}
    label = "12-trial study wall s (embedded model, all of RTE, same 12 trials, whole process"
    b.row(f"{label}; poolbert pack {packed['pack']})", peer["wall_s"], packed["wall_s"],
          ratio(peer["wall_s"], packed["wall_s"], " faster"))
    b.row(f"{label}; poolbert --pack 1)", peer["wall_s"], alone["wall_s"],
          ratio(peer["wall_s"], alone["wall_s"], " faster"))
    b.row(f"that study: pack {packed['pack']} (poolbert column) vs --pack 1 (peer column)",
          alone["wall_s"], packed["wall_s"], ratio(alone["wall_s"], packed["wall_s"], " faster"))
    b.row("epochs trained / best dev accuracy (peer; poolbert packed)",
          f"{peer['epochs_run']} / {peer['best_value']:.4f}",
          f"{packed['epochs_run']} / {packed['best_value']:.4f}", "")


def row_bert_study(b: Bench) -> None:
    model = bert_base_random(b)
    grid = {"lrs": (2e-5, 3e-5, 5e-5, 1e-4), "epochs": (1,)}
    packed = poolbert_study(b, model, "bb-pack", **grid)
    alone = poolbert_study(b, model, "bb-pack1", "--pack", "1", **grid)
    b.raw["bert-study"] = {"poolbert": packed, "poolbert_pack1": alone}
    b.row(f"4-trial study wall s (bert-base random, 1 epoch each): pack {packed['pack']} "
          "(poolbert column) vs --pack 1 (peer column)", alone["wall_s"], packed["wall_s"],
          ratio(alone["wall_s"], packed["wall_s"], " faster"))


def row_paper_slice(b: Bench) -> None:
    model = bert_base_random(b)
    _, stdout = b.run([sys.executable, str(HERE / "gpu.py"), "--probe", "paper-slice",
                       "--model", model, "--data-dir", b.args.data_dir,
                       *subset(b, "--train-samples")], "paper-slice probe")
    probe = last_json(stdout)
    b.raw["paper-slice"] = probe
    b.row(f"paper space, bert-base random: one epoch of a pack of {probe['members']} trials, s "
          "(train + evaluation)", None, probe["epoch_s"], f"{probe['member_epochs_per_s']:.3f} "
          "trial-epochs/s")
    for line in probe["projection"]:
        b.notes.append(line)


def row_workers(b: Bench, counts: tuple[int, ...] = (2, 4), mps: bool = False) -> None:
    base = b.raw.get("study", {}).get("poolbert_pack1")
    for k in counts:
        name = f"study-tpg{k}{'-mps' if mps else ''}"
        ours = poolbert_study(b, b.args.model, name, "--pack", "1", "--trials-per-gpu", str(k))
        b.raw[name] = ours
        b.row(f"the 12-trial study, --pack 1 --trials-per-gpu {k}{' under MPS' if mps else ''} "
              "(peer column: --trials-per-gpu 1)", base["wall_s"] if base else None,
              ours["wall_s"], ratio(base["wall_s"], ours["wall_s"], " faster") if base else "")


def row_sweep(b: Bench) -> None:
    base = b.raw.get("study", {}).get("poolbert_pack1")
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
        b.notes.append("mps: nvidia-cuda-mps-control not found; not measured")
        return
    pipes = b.work / "mps"
    env = {"CUDA_MPS_PIPE_DIRECTORY": str(pipes / "pipe"),
           "CUDA_MPS_LOG_DIRECTORY": str(pipes / "log")}
    for folder in env.values():
        Path(folder).mkdir(parents=True, exist_ok=True)
    started = subprocess.run([control, "-d"], env={**os.environ, **env}, capture_output=True,
                             text=True)
    if started.returncode != 0:
        b.notes.append(f"mps: the daemon did not start ({started.stderr.strip()[:200]})")
        return
    os.environ.update(env)  # the tune command and its workers become MPS clients
    try:
        row_workers(b, (4,), mps=True)
    finally:
        subprocess.run([control], input="quit\n", text=True, env={**os.environ, **env})
        for key in env:
            os.environ.pop(key, None)


ROWS = {"single": row_single, "study": row_study, "bert-base": row_bert_base,
        "bert-study": row_bert_study, "paper-slice": row_paper_slice, "attention": row_attention,
        "syncs": row_syncs, "sweep": row_sweep, "mps": row_mps}


# ----------------------------------------------------------------------------- probes


def probe_config(model: str, data_dir: str, **train):
    from poolbert.config import RunConfig

    config = RunConfig()
    config.model.model_name_or_path = model
    config.data.data_dir = data_dir
    config.model.pooling = "cls"
    for key, value in {"batch_size": 16, "max_length": 128, "seed": 1, **train}.items():
        setattr(config.train, key, value)
    return config.validate()


def probe_attention(args: argparse.Namespace) -> dict:
    """Two epochs per backend in one process: the second epoch is warm for both."""
    from poolbert.resources import Resources
    from poolbert.training import fit

    config = probe_config(args.model, args.data_dir, num_train_epochs=2)
    config.data.max_train_samples = args.train_samples
    config.data.max_eval_samples = args.train_samples
    resources = Resources.load(config)
    out = {}
    for backend in ("cudnn", "efficient"):
        config.train.attention = backend
        result = fit(config, resources, quiet=True)
        out[backend] = [r for r in result.history if r["type"] == "eval"][-1][
            "train_samples_per_second"]
    return out


def probe_syncs(args: argparse.Namespace) -> dict:
    """Count the synchronising CUDA calls of one training epoch on 1,600 examples."""
    import warnings

    import torch

    from poolbert.resources import Resources
    from poolbert.training import fit

    config = probe_config(args.model, args.data_dir, num_train_epochs=1)
    config.data.max_train_samples = 1600
    config.data.max_eval_samples = 16  # evaluation's own reads stay out of the count
    resources = Resources.load(config)
    fit(config, resources, quiet=True)  # warm
    where: dict[str, int] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        result = fit(config, resources, quiet=True)
        torch.cuda.set_sync_debug_mode(0)
    syncs = [w for w in caught if "synchroniz" in str(w.message).lower()]
    for w in syncs:
        key = f"{Path(w.filename).name}:{w.lineno}"
        where[key] = where.get(key, 0) + 1
    steps = sum(r["type"] == "step" for r in result.history)
    return {"steps": steps, "syncs": len(syncs),
            "where": [f"{k} x{n}" for k, n in sorted(where.items(), key=lambda kv: -kv[1])]}


def probe_paper_slice(args: argparse.Namespace) -> dict:
    """Two epochs of a pack of bert-base trials drawn from the paper space (the second is the
    pace), and the report's 108-trial study projected from that pace."""
    import optuna

    from poolbert.device import resolve_device, resolve_precision
    from poolbert.pack import Pack, default_pack_size
    from poolbert.resources import Resources
    from poolbert.tuning.space import load_space
    from poolbert.tuning.trials import trial_config

    space = load_space("paper")
    base = probe_config(args.model, args.data_dir, num_train_epochs=10)
    base.data.max_train_samples = args.train_samples
    base.data.max_eval_samples = args.train_samples  # a plumbing check stays short
    resources = Resources.load(base)
    size = sum(p.numel() for p in resources.base_encoder.parameters())
    members = default_pack_size(size, "cuda")
    device = resolve_device("auto")
    if device.type != "cuda":
        # a plumbing check: four bert-base members at max_length 256 in fp32 outgrow a 24 GB
        # machine's memory (the sizes above are for GPU memory with autocast)
        members = min(members, 2)
    pack = Pack(resources, device, resolve_precision("auto", device), 16, 1)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    heads = ["cls", "mean_max", "attention"]
    for k in range(members):  # the heads in turn, each member's settings drawn at random
        head = heads[k % 3]
        # a study per member: the heads' spaces give one name different choices
        draw = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=k)).ask()
        params = space.for_head(head).suggest(draw)
        params.pop("num_train_epochs")  # every member runs past the two measured epochs
        pack.add(k, trial_config(base, head, params))
    times = []
    for _ in range(2):
        start = time.perf_counter()
        pack.run_epoch()
        times.append(time.perf_counter() - start)
    pace = members / times[-1]  # trial-epochs per second
    return {"members": members, "epoch_s": times[-1], "first_epoch_s": times[0],
            "member_epochs_per_s": pace,
            "projection": projection(space, pace, len(resources.data.train))}


def projection(space, pace: float, rows: int) -> list[str]:
    """The report's study (48/30/30 trials, final seeds 5) at `pace` trial-epochs per second."""
    heads = [space.for_head(h) for h in ("cls", "mean_max", "attention")]
    mean_epochs = {h.head: statistics.fmean(h.params["num_train_epochs"].choices) for h in heads}
    full = sum(h.n_trials * mean_epochs[h.head] for h in heads)
    # an assumption, not a measurement: the median pruner stops half of the trials at their
    # third epoch
    pruned = sum(h.n_trials * (0.5 * 3 + 0.5 * mean_epochs[h.head]) for h in heads)
    seeds = 5 * 3 * 10  # 5 seeds per head, ~10 epochs each
    lines = [f"paper-slice projection: pace {pace:.3f} trial-epochs/s (one packed epoch of "
             f"bert-base over {rows} train rows, evaluation included)"]
    for label, count in (("no pruning", full), ("median pruner stopping half the trials at "
                                                 "epoch 3 (assumed)", pruned)):
        total = count + seeds
        lines.append(f"108 trials, {label}: {count:.0f} trial-epochs + {seeds} for the final "
                     f"seeds = {total:.0f}; {total:.0f} / {pace:.3f} = {total / pace / 60:.1f} min")
    return lines


PROBES = {"attention": probe_attention, "syncs": probe_syncs, "paper-slice": probe_paper_slice}


# ----------------------------------------------------------------------------- setup, report


def bert_base_random(b: Bench) -> str:
    """BertConfig() with random weights (seed 0) and a WordPiece tokenizer, saved once."""
    target = b.work / "bert-base-random"
    if not target.exists():
        subprocess.run([sys.executable, str(HERE / "gpu.py"), "--probe", "make-bert-base",
                        "--model", b.args.model, "--data-dir", b.args.data_dir,
                        "--target", str(target)], check=True, cwd=ROOT)
    return str(target)


def stand_in_model(b: Bench) -> str:
    """Where no embedded model was found (no .carry, no package): its shape (6 layers, hidden
    384, 12 heads) with random weights (seed 0) and a WordPiece vocabulary learnt from the
    data's train split, so the speed rows still compare like with like; accuracy is then
    chance."""
    import pandas as pd
    import torch
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    target = b.work / "minilm-shaped-random"
    target.mkdir(parents=True)
    train = pd.read_parquet(Path(b.args.data_dir) / "train.parquet")
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator([*train["sentence1"], *train["sentence2"]], vocab_size=30522)
    wordpiece.save_model(str(target))
    BertTokenizerFast(vocab_file=str(target / "vocab.txt")).save_pretrained(target)
    torch.manual_seed(0)
    BertModel(BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12,
                         intermediate_size=1536)).save_pretrained(target)
    b.notes.append("no embedded model was found (set POOLBERT_MODEL_DIR, or carry .carry/"
                   "minilm-f16): its shape with random weights and a vocabulary learnt from the "
                   "train split stood in, so speed ratios hold and dev accuracies are chance")
    return str(target)


def make_bert_base(args: argparse.Namespace) -> dict:
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    torch.manual_seed(0)
    BertModel(BertConfig()).save_pretrained(args.target)
    # bert-base-uncased's vocabulary is the embedded model's (30522 WordPiece); a stand-in's
    # vocabulary (stand_in_model) is as large
    AutoTokenizer.from_pretrained(args.model).save_pretrained(args.target)
    return {"saved": args.target}


def machine() -> dict:
    import torch
    import transformers

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "cpu_count": os.cpu_count()}
    try:
        import optuna

        info["optuna"] = optuna.__version__
    except ImportError:
        info["optuna"] = "not installed"
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def report(b: Bench) -> str:
    info = machine()
    lines = [f"Device: {info.get('gpu', 'no GPU')}; {info['cpu_count']} CPU cores; python "
             f"{info['python']}, torch {info['torch']}, transformers {info['transformers']}, "
             f"optuna {info['optuna']}. Wall time of this bench: "
             f"{time.monotonic() - b.started:.0f} s.", "",
             "| measure | peer | poolbert | poolbert vs peer |", "| --- | ---: | ---: | ---: |"]
    lines += [f"| {m} | {p} | {o} | {r} |" for m, p, o, r in b.table]
    lines += [""] + [f"- {note}" for note in b.notes]
    text = "\n".join(lines) + "\n"
    name = "gpu-" + "".join(c if c.isalnum() else "-" for c in info.get("gpu", "none")).lower()
    results = HERE / "results"
    results.mkdir(exist_ok=True)
    payload = json.dumps({"machine": info, "rows": b.raw, "table": b.table, "notes": b.notes},
                         indent=2)
    targets = [results] + ([Path(os.environ["OUT"])] if os.environ.get("OUT") else [])
    for folder in targets:
        (folder / f"{name}.md").write_text(text)
        (folder / f"{name}.json").write_text(payload + "\n")
    return text


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", help="the embedded model's folder (float16 is fine); none: a "
                   "random stand-in of its shape")
    p.add_argument("--data-dir", help="RTE parquet folder; none: pairs of RTE's sizes and "
                   "lengths with random words and labels (bench/rte_shaped.py; speed only)")
    p.add_argument("--rows", default=os.environ.get("POOLBERT_BENCH_ROWS", ",".join(DEFAULT_ROWS)))
    p.add_argument("--train-samples", type=int,
                   default=int(os.environ.get("POOLBERT_BENCH_TRAIN_SAMPLES", "0")) or None,
                   help="a fixed subset of train for a quick check of the plumbing (default all)")
    p.add_argument("--budget", type=float,
                   default=float(os.environ.get("POOLBERT_BENCH_BUDGET_S", "450")),
                   help="seconds; rows that would start later are skipped")
    p.add_argument("--probe", choices=[*PROBES, "make-bert-base"], help=argparse.SUPPRESS)
    p.add_argument("--target", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe == "make-bert-base":
        make_bert_base(args)
        return 0
    if args.probe:
        print(json.dumps(PROBES[args.probe](args)))
        return 0
    b = Bench(args)
    try:
        if not args.data_dir:
            args.data_dir = str(rte_shaped.write(b.work / "rte-shaped"))
            b.notes.append("no RTE data was found (set POOLBERT_DATA_DIR): pairs of RTE's sizes "
                           "and token lengths with made-up words and random labels stood in "
                           "(bench/rte_shaped.py), so speed ratios hold and accuracies are chance")
        if not args.model:
            args.model = stand_in_model(b)
        for name in [r.strip() for r in args.rows.split(",") if r.strip()]:
            if name not in ROWS:
                b.notes.append(f"{name}: no such row (rows: {', '.join(ROWS)})")
                continue
            if b.left() < 20:
                b.notes.append(f"{name}: skipped, the time budget ({args.budget:.0f} s) is spent")
                continue
            try:
                ROWS[name](b)
            except Exception as exc:  # noqa: BLE001  (one row failing must not lose the others)
                b.notes.append(f"{name}: {type(exc).__name__}: {str(exc).strip()[:1500]}")
    finally:
        print(report(b))
        shutil.rmtree(b.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
