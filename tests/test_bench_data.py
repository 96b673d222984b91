"""bench/rte_shaped.py: the pairs bench/gpu.sh times where a machine has no RTE."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from poolbert.config import DataConfig
from poolbert.data import load_data

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))
import rte_shaped  # noqa: E402  (bench/ is scripts, not a package)


def test_rte_shaped_pairs_load_as_rte_with_its_sizes_labels_and_lengths(tmp_path):
    folder = rte_shaped.write(tmp_path / "rte")
    data = load_data(DataConfig(task="rte", data_dir=str(folder)))
    assert (len(data.train), len(data.validation)) == (rte_shaped.TRAIN_ROWS,
                                                       rte_shaped.VALIDATION_ROWS)
    assert data.train.labels.mean() == 0.5  # balanced, as RTE's train is
    # one word per token plus the full stop: the median lengths are RTE's (in tokens)
    for texts, quantiles in ((data.train.texts_a, rte_shaped.PREMISE_QUANTILES),
                             (data.train.texts_b, rte_shaped.HYPOTHESIS_QUANTILES)):
        tokens = np.array([len(t.split()) + 1 for t in texts])
        assert abs(np.median(tokens) - quantiles[10]) <= 1
        assert tokens.min() >= min(quantiles[0], 2) and tokens.max() <= quantiles[-1]


def test_rte_shaped_pairs_are_the_same_for_the_same_seed(tmp_path):
    a = rte_shaped.write(tmp_path / "a", seed=0)
    b = rte_shaped.write(tmp_path / "b", seed=0)
    c = rte_shaped.write(tmp_path / "c", seed=1)
    assert (a / "train.parquet").read_bytes() == (b / "train.parquet").read_bytes()
    assert (a / "train.parquet").read_bytes() != (c / "train.parquet").read_bytes()
