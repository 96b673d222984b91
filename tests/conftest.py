"""Shared fixtures."""

from pathlib import Path

import pytest
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def rte_dir() -> Path:
    """The local GLUE RTE parquet files (../shared/data/glue/rte); skipped where absent."""
    path = (REPO_ROOT / ".." / "shared" / "data" / "glue" / "rte").resolve()
    if not path.is_dir():
        pytest.skip("needs ../shared/data/glue/rte")
    return path


@pytest.fixture(autouse=True)
def one_torch_thread():
    """Tiny models on 2 shared cores: one torch thread is several times faster than two fighting."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
