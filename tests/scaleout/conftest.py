"""Two ``artifact-store serve`` processes on one PostgreSQL database and one bucket.

The bucket is the S3 driver tests' SeaweedFS (``tests/_s3.py``; set
``ARTIFACT_STORE_TEST_S3_URL`` to use MinIO or Ceph RGW instead); the database
is created fresh for this module's servers and dropped afterwards. PostgreSQL
must be reachable: these tests fail, never skip, without it.
"""

from __future__ import annotations

import re
import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from tests._s3 import with_prefix
from tests.meta.conftest import PG_ADMIN_URL, postgres_admin
from tests.scaleout._cluster import Server, started


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped when the module's servers are gone."""
    admin = postgres_admin()
    name = f"artifact_store_scaleout_{secrets.token_hex(6)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    server = (
        f"{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:{info.get('port', 5432)}"
    )
    try:
        yield f"postgresql://{server}/{name}"
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


@pytest.fixture(scope="module")
def bucket_url(s3_url: str) -> str:
    """A key prefix of the module's own in the shared bucket."""
    return with_prefix(s3_url, f"scaleout-{uuid.uuid4().hex[:12]}")


@pytest.fixture(scope="module")
def pair(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, bucket_url: str
) -> Iterator[tuple[Server, Server]]:
    """Replicas A and B: same database, same bucket, blob redirects off (the default)."""
    with started(tmp_path_factory.mktemp("pair"), database_url, bucket_url, (), ()) as (a, b):
        yield a, b


@pytest.fixture
def repo(request: pytest.FixtureRequest) -> str:
    """A repository of the test's own, so tests sharing the pair never meet."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    return f"scaleout/{slug[:60]}-{secrets.token_hex(3)}"
