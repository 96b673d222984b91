"""bench/gpu.py's in-process measurements, each run as its own process by a row:

    python bench/gpu_probes.py attention|syncs|paper-slice --model DIR --data-dir DIR
    python bench/gpu_probes.py make-bert-base --model DIR --target DIR

Prints one JSON line, the probe's numbers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch

from poolbert.config import RunConfig
from poolbert.resources import Resources
from poolbert.training import fit

SYNC_SAMPLES = 1600  # training rows of a sync count: 100 steps of batch 16


def probe_config(model: str, data_dir: str, **train) -> RunConfig:
    config = RunConfig()
    config.model.model_name_or_path = model
    config.data.data_dir = data_dir
    config.model.pooling = "cls"
    for key, value in {"batch_size": 16, "max_length": 128, "seed": 1, **train}.items():
        setattr(config.train, key, value)
    return config.validate()


def default_pack(resources: Resources) -> int:
    """The pack `poolbert tune` picks on CUDA for this encoder's size."""
    from poolbert.pack import default_pack_size

    size = sum(p.numel() for p in resources.base_encoder.parameters())
    return default_pack_size(size, "cuda")


def probe_attention(args: argparse.Namespace) -> dict:
    """Two epochs per backend in one process: the second epoch is warm for both."""
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


@contextlib.contextmanager
def counting_syncs() -> Iterator[dict[str, int]]:
    """Synchronising CUDA calls made inside the block, by the source line that made them
    (torch.cuda.set_sync_debug_mode warns at each)."""
    where: dict[str, int] = {}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            yield where
        finally:
            torch.cuda.set_sync_debug_mode(0)
    for w in caught:
        if "synchroniz" in str(w.message).lower():
            key = f"{Path(w.filename).name}:{w.lineno}"
            where[key] = where.get(key, 0) + 1


def ranked(where: dict[str, int]) -> list[str]:
    return [f"{k} x{n}" for k, n in sorted(where.items(), key=lambda kv: -kv[1])]


def probe_syncs(args: argparse.Namespace) -> dict:
    """Synchronising CUDA calls of one training epoch of `fit()` on 1,600 examples, and of one
    epoch of a pack (poolbert tune's default size for the model) on the same rows; then the
    aten ops and host copies of one packed step (bench/pack_ops.py) for 1 and K members."""
    config = probe_config(args.model, args.data_dir, num_train_epochs=1)
    config.data.max_train_samples = SYNC_SAMPLES
    config.data.max_eval_samples = 16  # evaluation's own reads stay out of the count
    resources = Resources.load(config)
    fit(config, resources, quiet=True)  # warm
    with counting_syncs() as where:
        result = fit(config, resources, quiet=True)
    steps = sum(r["type"] == "step" for r in result.history)
    out = {"steps": steps, "syncs": sum(where.values()), "where": ranked(where),
           "pack": pack_syncs(config, resources)}
    try:  # the CPU proxy's counts, on the device: a failure here keeps the sync counts
        import pack_ops

        found = pack_ops.count_packs(resources, config, torch.device("cuda"),
                                     (1, out["pack"]["members"]))
        out["pack_ops"] = {k: found[k] for k in ("ops_per_step", "host_copies_per_step",
                                                 "view_ops_per_step", "ops_ratio")}
    except Exception as exc:  # noqa: BLE001
        out["pack_ops"] = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
    return out


def pack_syncs(config: RunConfig, resources: Resources) -> dict:
    """Synchronising CUDA calls of one warm epoch of a pack, per packed step."""
    import pack_ops

    from poolbert.device import resolve_device, resolve_precision
    from poolbert.pack import Pack

    device = resolve_device("cuda")
    k = default_pack(resources)
    pack = Pack(resources, device, resolve_precision("auto", device), 16, 1)
    for j, member in enumerate(pack_ops.member_configs(config, k)):
        member.train.num_train_epochs = 3  # nobody is done after the two epochs below
        pack.add(j, member)
    pack.run_epoch()  # warm
    with counting_syncs() as where:
        pack.run_epoch()
    steps = len(pack.members[0].batches)
    return {"members": k, "steps": steps, "syncs": sum(where.values()), "where": ranked(where)}


def probe_paper_slice(args: argparse.Namespace) -> dict:
    """Two epochs of a pack of bert-base trials drawn from the paper space (the second is the
    pace), and the report's 108-trial study projected from that pace."""
    import optuna

    from poolbert.device import resolve_device, resolve_precision
    from poolbert.pack import Pack
    from poolbert.tuning.space import load_space
    from poolbert.tuning.trials import trial_config

    space = load_space("paper")
    base = probe_config(args.model, args.data_dir, num_train_epochs=10)
    base.data.max_train_samples = args.train_samples
    base.data.max_eval_samples = args.train_samples  # a plumbing check stays short
    resources = Resources.load(base)
    members = default_pack(resources)
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


def make_bert_base(args: argparse.Namespace) -> dict:
    import model_dirs

    model_dirs.bert_base_random(Path(args.target), args.model)
    return {"saved": args.target}


PROBES = {"attention": probe_attention, "syncs": probe_syncs, "paper-slice": probe_paper_slice,
          "make-bert-base": make_bert_base}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("probe", choices=PROBES)
    p.add_argument("--model", required=True)
    p.add_argument("--data-dir")
    p.add_argument("--train-samples", type=int)
    p.add_argument("--target")
    args = p.parse_args(argv)
    print(json.dumps(PROBES[args.probe](args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
