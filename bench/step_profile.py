"""bench/bench.py's step-profile row: where a training step's time goes, fp32 against bf16.

Per precision, in its own process (`python bench/step_profile.py SPEC_JSON`): poolbert's own
training steps (training.Steps, --profile-steps batches of RTE train rows, `--pooling cls`), one
epoch to warm up, one timed, one under torch.profiler. The self CPU time of every operator is
summed into kinds (matmul, casts and copies, dropout, element-wise, ...) and into the step's
phases (forward, backward, optimiser step), per step. The profiler adds its own overhead; the
timed epoch gives the step's real length.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import defaultdict

from precision import PRECISIONS, cpu_bf16

# an operator's kind: the first whose pattern is in its name (order matters: "aten::addmm" is
# a matmul, not an add; "layer_norm" is no reduction)
KINDS = (
    ("matmul", ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm", "mkldnn")),
    ("casts and copies", ("aten::copy_", "aten::_to_copy", "aten::clone", "aten::contiguous")),
    ("dropout", ("bernoulli", "dropout")),
    ("softmax", ("softmax",)),
    ("layer norm", ("layer_norm",)),
    ("gelu", ("gelu",)),
    ("optimiser", ("adam", "lerp_", "addcdiv_", "addcmul_")),
    ("reductions", ("aten::sum", "norm", "aten::all", "aten::mean", "aten::max")),
    ("element-wise", ("aten::mul", "aten::add", "aten::div", "aten::sub", "aten::where",
                      "aten::fill_", "aten::sqrt", "aten::zero_", "isneginf", "aten::masked_fill")),
)


def kind_of(name: str) -> str:
    return next((kind for kind, patterns in KINDS if any(p in name for p in patterns)), "other")


def profile_row(args: argparse.Namespace, path: str) -> tuple[dict, str]:
    found = {}
    for precision in PRECISIONS:
        spec = {"model": path, "data_dir": args.data_dir, "precision": precision,
                "steps": args.profile_steps, "batch_size": args.batch_size,
                "max_length": args.max_length}
        proc = subprocess.run([sys.executable, __file__, json.dumps(spec)], capture_output=True,
                              text=True)
        if proc.returncode != 0:
            raise SystemExit(f"bench: step profile {precision} failed:\n{proc.stderr[-3000:]}")
        found[precision] = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"row": "step-profile", **found}, profile_table(args, found)


def profile_steps(spec: dict) -> dict:
    import torch
    import transformers
    from torch.profiler import ProfilerActivity, profile

    from poolbert.config import RunConfig
    from poolbert.resources import Resources
    from poolbert.tracking import History
    from poolbert.training import Steps

    config = RunConfig()
    config.data.data_dir = spec["data_dir"]
    config.data.max_train_samples = spec["steps"] * spec["batch_size"]
    config.model.model_name_or_path = spec["model"]
    config.train.batch_size, config.train.max_length = spec["batch_size"], spec["max_length"]
    config.train.precision = spec["precision"]
    resources = Resources.load(config.validate())
    transformers.set_seed(0)
    device = torch.device("cpu")
    model = resources.fresh_model(config, device)
    enc = resources.cache.get(resources.data.train, spec["max_length"])
    steps = Steps(model, config, resources, enc, device, spec["precision"], History(None))
    steps.run_epoch(1, quiet=True)  # warm-up: the allocator, oneDNN's kernels
    seconds = steps.run_epoch(2, quiet=True)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps.run_epoch(3, quiet=True)
    n = spec["steps"]
    kinds: dict[str, float] = defaultdict(float)
    ops: dict[str, float] = defaultdict(float)
    for event in prof.key_averages():
        kinds[kind_of(event.key)] += event.self_cpu_time_total / 1e3 / n
        ops[event.key] += event.self_cpu_time_total / 1e3 / n
    return {"step_ms": seconds * 1e3 / n, "examples_per_s": n * spec["batch_size"] / seconds,
            "phases_ms": phases(prof.events(), n), "kinds_ms": dict(kinds),
            "top_ops_ms": dict(sorted(ops.items(), key=lambda kv: -kv[1])[:15]),
            "threads": torch.get_num_threads()}


def phases(events, n: int) -> dict[str, float]:
    """Per step, ms of the outermost events: the optimiser's own (torch names them
    Optimizer.step#..., zero_grad#...), the autograd engine's (backward), and the rest: the
    forward pass, the loss, batch collation and gradient clipping."""
    out: dict[str, float] = defaultdict(float)
    for event in events:
        if event.cpu_parent is not None:
            continue
        name = event.name
        phase = ("optimiser step" if name.startswith("Optimizer.") else
                 "backward" if name.startswith("autograd::engine") else
                 "forward, loss, clipping, collation")
        out[phase] += event.cpu_time_total / 1e3 / n
    return dict(out)


def profile_table(args: argparse.Namespace, found: dict) -> str:
    fp32, bf16 = found["fp32"], found["bf16"]
    head = (f"### A training step on this CPU, fp32 and bf16 ({cpu_bf16()}; "
            f"{fp32['threads']} threads)\n\n{args.profile_steps} steps of batch {args.batch_size} "
            f"(RTE train rows, max length {args.max_length}, `cls`), torch.profiler's self CPU "
            "time per step; the step's own length from an unprofiled epoch.\n\n")
    lines = ["| per step | fp32 ms | fp32 % | bf16 ms | bf16 % |", "| --- |" + " ---: |" * 4,
             f"| whole step (unprofiled) | {fp32['step_ms']:.0f} | | {bf16['step_ms']:.0f} | |"]
    for group in ("phases_ms", "kinds_ms"):
        total = {p: sum(found[p][group].values()) for p in PRECISIONS}
        names = sorted(set(fp32[group]) | set(bf16[group]), key=lambda k: -bf16[group].get(k, 0))
        for name in names:
            cells = [f"{found[p][group].get(name, 0):.0f} | "
                     f"{found[p][group].get(name, 0) / total[p]:.0%}" for p in PRECISIONS]
            label = name if group == "phases_ms" else f"kind: {name}"
            lines.append(f"| {label} | {' | '.join(cells)} |")
    top = ["", "Largest operators (self CPU ms per step): fp32 "
           + ", ".join(f"{k} {v:.0f}" for k, v in list(fp32["top_ops_ms"].items())[:8])
           + "; bf16 " + ", ".join(f"{k} {v:.0f}" for k, v in
                                   list(bf16["top_ops_ms"].items())[:8]) + "."]
    return head + "\n".join(lines + top) + "\n"


if __name__ == "__main__":
    print(json.dumps(profile_steps(json.loads(sys.argv[1]))))
