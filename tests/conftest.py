"""Shared fixtures."""

import os
import uuid
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


@pytest.fixture
def postgres_url():
    """A fresh database on the server of $POOLBERT_TEST_POSTGRES (.ci/start-postgres), dropped
    afterwards (since PostgreSQL 15 a plain role may not create tables in another database's
    public schema); skipped where the variable is not set."""
    url = os.environ.get("POOLBERT_TEST_POSTGRES")
    if not url:
        pytest.skip("needs $POOLBERT_TEST_POSTGRES, a PostgreSQL URL (.ci/start-postgres)")
    psycopg2 = pytest.importorskip("psycopg2")
    name = f"poolbert_test_{uuid.uuid4().hex[:10]}"
    admin = psycopg2.connect(url)
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE {name}")
    try:
        yield url.rsplit("/", 1)[0] + "/" + name
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        admin.close()
