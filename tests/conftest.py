"""Shared fixtures."""

from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def rte_dir() -> Path:
    """The local GLUE RTE parquet files (../shared/data/glue/rte); skipped where absent."""
    path = (REPO_ROOT / ".." / "shared" / "data" / "glue" / "rte").resolve()
    if not path.is_dir():
        pytest.skip("needs ../shared/data/glue/rte")
    return path
