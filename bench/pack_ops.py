"""Aten operations per packed training step: a CPU proxy for a GPU's kernel launches.

A small packed step on a GPU waits on the host launching kernels, one or more per aten
operation, so the operations one `Pack._step` dispatches (forward, backward and the optimiser
update of all K members) stand for its launch cost. A pack that fuses its members well does
about as many operations for K members as for one; operations that grow with K are per-member
Python loops. Counted with a TorchDispatchMode, which sees every aten call below autograd
(the backward's too), on whatever device the step runs.

Host copies are the step's tensors made from host data: `lift_fresh` of a CPU tensor (what
`torch.tensor(python_values)` dispatches; on a GPU device that tensor is copied over) and
`scalar_tensor` (a Python number made a tensor), plus `_to_copy`/`copy_` from a CPU tensor to
another device (only on a GPU: on a CPU nothing crosses a device). The batch's own transfer
(`to_device`, one copy per batch field, the same for every K since the members' rows are
joined on the host first) is a no-op on the CPU and so is not in the CPU counts.

    python bench/bench.py --rows pack-ops            # bench/results/cpu-pack-ops.json
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from poolbert.config import RunConfig
from poolbert.data import train_batches
from poolbert.device import attention_kernels
from poolbert.losses import StepLog
from poolbert.pack import EpochOutcome, Pack
from poolbert.resources import Resources

HERE = Path(__file__).resolve().parent
KS = (1, 2, 4, 8)
MAX_LENGTH, BATCH_SIZE = 64, 16  # the counts do not depend on sizes: small keeps K=8 cheap
TARGET_RATIO = 1.25  # ops of a pack of 8 over a pack of 1 that a fused step should stay under
ATEN = torch.ops.aten


class OpCounter(TorchDispatchMode):
    """Counts every aten operation dispatched inside the block, and those that bring host data
    to the step (see the module's docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self.ops: Counter[str] = Counter()
        self.host: Counter[str] = Counter()
        self.views = 0  # metadata-only operations (no kernel on a device)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = func.overloadpacket.__name__
        self.ops[name] += 1
        if func.is_view or func is ATEN.detach.default:
            self.views += 1
        if is_host_copy(func, args, kwargs):
            self.host[name] += 1
        return func(*args, **kwargs)


def is_host_copy(func, args: tuple, kwargs: dict) -> bool:
    """Whether this call brings host data into the step (a host-to-device copy on a GPU)."""
    if func is ATEN.scalar_tensor.default:
        return True
    if func is ATEN.lift_fresh.default:  # torch.tensor(values): counted once, where it is made
        return args[0].device.type == "cpu"
    if func is ATEN._to_copy.default:
        target = kwargs.get("device")
        return (args[0].device.type == "cpu" and target is not None
                and torch.device(target).type != "cpu")
    if func is ATEN.copy_.default:
        return args[1].device.type == "cpu" and args[0].device.type != "cpu"
    return False


def member_configs(base: RunConfig, k: int) -> list[RunConfig]:
    """k members of one study: the base run with its own learning rate and seed each."""
    configs = []
    for j in range(k):
        config = copy.deepcopy(base)
        config.train.learning_rate = base.train.learning_rate * (1 + 0.25 * j)
        config.train.seed = base.train.seed + j
        configs.append(config.validate())
    return configs


def count_pack(resources: Resources, base: RunConfig, k: int, device: torch.device,
               steps: int = 2) -> dict[str, Any]:
    """Operations of one packed step of k members, the mean over `steps` steps after a warm
    one (the first step makes each head's optimiser state)."""
    t = base.train
    pack = Pack(resources, device, "fp32", t.batch_size, 1, t.attention)
    for j, config in enumerate(member_configs(base, k)):
        pack.add(j, config)
    for m in pack.members:
        m.batches = train_batches(m.train_enc, t.batch_size, m.config.train.seed, 1,
                                  m.config.train.group_by_length)
    n_batches = len(pack.members[0].batches)
    if n_batches < steps + 1:
        raise ValueError(f"{steps + 1} batches are needed, the data gives {n_batches}")
    log = StepLog([m.history for m in pack.members])
    outcomes: list[EpochOutcome] = []
    pack._train_mode(True)
    with attention_kernels(pack.attention, device):
        pack._step(0, 1, n_batches, log, outcomes)  # warm: the optimisers' state is made
        counter = OpCounter()
        with counter:
            for i in range(1, steps + 1):
                if not pack._step(i, i + 1, n_batches, log, outcomes):
                    raise RuntimeError(f"a pack of {k} ran out of memory on {device}")
    return {"ops": sum(counter.ops.values()) / steps, "host": sum(counter.host.values()) / steps,
            "views": counter.views / steps,
            "by_op": {n: c / steps for n, c in counter.ops.items()},
            "host_by_op": {n: c / steps for n, c in counter.host.items()}}


def count_packs(resources: Resources, base: RunConfig, device: torch.device,
                ks: tuple[int, ...] = KS, steps: int = 2) -> dict[str, Any]:
    """Per-step counts for packs of each size in `ks`, and the operations that grow with K."""
    found = {k: count_pack(resources, base, k, device, steps) for k in ks}
    first, last = found[ks[0]], found[ks[-1]]
    growth = {n: last["by_op"].get(n, 0) - first["by_op"].get(n, 0)
              for n in set(first["by_op"]) | set(last["by_op"])}
    return {
        "ops_per_step": {str(k): v["ops"] for k, v in found.items()},
        "host_copies_per_step": {str(k): v["host"] for k, v in found.items()},
        "view_ops_per_step": {str(k): v["views"] for k, v in found.items()},
        "ops_ratio": {f"{k}/{ks[0]}": found[k]["ops"] / first["ops"] for k in ks},
        "non_view_ops_ratio": {f"{k}/{ks[0]}": (found[k]["ops"] - found[k]["views"])
                               / (first["ops"] - first["views"]) for k in ks},
        "host_copies_by_op": {str(k): v["host_by_op"] for k, v in found.items()},
        f"ops_growing_most_from_{ks[0]}_to_{ks[-1]}": dict(
            sorted(((n, g) for n, g in growth.items() if g > 0), key=lambda x: -x[1])[:20]),
    }


# ----------------------------------------------------------------------------- the row


def base_config(model: str, data_dir: str, device: str) -> RunConfig:
    config = RunConfig()
    config.model.model_name_or_path = model
    config.model.pooling = "cls"
    config.data.data_dir = data_dir
    config.train.max_length, config.train.batch_size = MAX_LENGTH, BATCH_SIZE
    config.train.learning_rate, config.train.seed, config.train.device = 5e-5, 1, device
    return config.validate()


def model_and_data(args: argparse.Namespace, work: Path, notes: list[str]) -> tuple[str, str]:
    """The embedded model and RTE, or stand-ins of their shapes where they are missing."""
    import model_dirs
    import rte_shaped

    data = Path(args.data_dir)
    if not (data / "train.parquet").is_file():
        data = rte_shaped.write(work / "rte-shaped")
        notes.append(f"no RTE in {args.data_dir}: pairs of RTE's sizes and lengths stood in "
                     "(bench/rte_shaped.py)")
    try:
        from poolbert.encoder import resolve_model_path

        model = resolve_model_path(args.model)
        problem = model_dirs.model_problem(model) if Path(model).is_dir() else None
    except ImportError as exc:
        problem = f"{args.model}: {exc}"
    if problem:
        model = str(model_dirs.stand_in(work / "stand-in", data / "train.parquet"))
        notes.append(f"{problem}: a random model of the embedded model's shape stood in")
    return model, str(data)


def run_row(args: argparse.Namespace) -> dict[str, Any]:
    """Count, print the counts and their ratio, write bench/results/<device>-pack-ops.json."""
    import torch

    notes = ["ops: every aten operation one Pack._step dispatches (forward, backward, the "
             "optimiser update of all members), counted with a TorchDispatchMode; the mean of 2 "
             "steps after a warm one, members with the cls head, fp32, batch "
             f"{BATCH_SIZE}, max_length {MAX_LENGTH}",
             "host copies: lift_fresh of a CPU tensor (torch.tensor of Python values), "
             "scalar_tensor (a Python number made a tensor), and _to_copy/copy_ from a CPU "
             "tensor to another device (none on a CPU); the batch's own transfer (one copy per "
             "batch field, the same for every K) is a no-op on a CPU and is not counted here",
             "view ops: metadata-only operations among the ops (no kernel on a GPU)",
             "the update: row_adamw over the pack's (K, N) rows, every member's encoder and "
             "head together, the same passes on a CPU and on CUDA"]
    with tempfile.TemporaryDirectory() as tmp:
        model, data = model_and_data(args, Path(tmp), notes)
        base = base_config(model, data, args.device)
        torch.manual_seed(0)
        resources = Resources.load(base)
        found = count_packs(resources, base, torch.device(args.device))
    ratio = found["ops_ratio"][f"{KS[-1]}/{KS[0]}"]
    result = {**found, "model": args.model, "device": args.device,
              "target_ops_ratio": TARGET_RATIO, "notes": notes}
    for k in KS:
        print(f"pack of {k}: {found['ops_per_step'][str(k)]:.0f} aten ops per step, "
              f"{found['host_copies_per_step'][str(k)]:.1f} host copies")
    print(f"ops per step, pack of {KS[-1]} / pack of {KS[0]}: {ratio:.2f} "
          f"(target after fusing: <= {TARGET_RATIO}); without view ops: "
          f"{found['non_view_ops_ratio'][f'{KS[-1]}/{KS[0]}']:.2f}")
    out = HERE / "results" / f"{args.name or args.device + '-pack-ops'}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return result
