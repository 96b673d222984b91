"""bench/pack_ops.py: aten operations per packed training step, counted on the CPU."""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from helpers import tiny_bert_dir, tiny_glue_dir

from poolbert.training import Resources

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import pack_ops  # noqa: E402  (bench/ is scripts, not a package)


def test_pack_ops_counts_the_ops_and_host_copies_of_packed_steps(tmp_path):
    base = pack_ops.base_config(str(tiny_bert_dir(tmp_path / "model")),
                                str(tiny_glue_dir(tmp_path / "data", 48, 8)), "cpu")
    resources = Resources.load(base)
    found = pack_ops.count_packs(resources, base, torch.device("cpu"), ks=(1, 2), steps=1)
    ops, host = found["ops_per_step"], found["host_copies_per_step"]
    assert ops["1"] > 100  # an encoder's forward and backward and AdamW: hundreds of ops
    assert ops["2"] >= ops["1"]
    # Pack._column makes its per-member columns with torch.tensor(list): host data every step
    assert host["1"] > 0 and host["2"] >= host["1"]
    assert found["host_copies_by_op"]["1"].get("lift_fresh", 0) > 0
    assert found["ops_ratio"]["2/1"] == ops["2"] / ops["1"]


def test_a_copy_from_the_host_counts_once_and_a_device_op_not_at_all():
    counter = pack_ops.OpCounter()
    weights = torch.randn(3)
    with counter:
        column = torch.tensor([1.0, 2.0, 3.0])  # host data made a tensor
        weights.mul(column).sum()
    assert sum(counter.host.values()) == 1
    assert counter.ops["mul"] == 1 and counter.ops["sum"] == 1
