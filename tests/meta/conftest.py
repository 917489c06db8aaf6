"""Every metadata test runs twice: on SQLite and on PostgreSQL.

PostgreSQL is the production store, so its tests must run wherever the
suite runs: if the server cannot be reached they fail with the reason,
they are never skipped. Each store gets a database of its own
(``artifact_store_test_<random>``), dropped when the session ends, so
concurrent runs on one server never see each other's rows.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator, Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from registry.meta import MetadataStore
from registry.rules import Rules
from registry.service.writes import Writes

PG_ADMIN_URL = os.environ.get(
    "ARTIFACT_STORE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/test"
)

UrlFactory = Callable[[], str]


def postgres_admin() -> psycopg.Connection[tuple[object, ...]]:
    try:
        return psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        reason = " ".join(str(exc).split())
    pytest.fail(
        f"PostgreSQL at {PG_ADMIN_URL} is unreachable ({reason}); the metadata tests "
        "must run on PostgreSQL too: start it (.ci/run does) or set "
        "ARTIFACT_STORE_TEST_POSTGRES",
        pytrace=False,
    )


@pytest.fixture(
    scope="session",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def make_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[UrlFactory]:
    """A factory of URLs, each naming a fresh, empty database of the parametrised backend."""
    if request.param == "sqlite":
        root = tmp_path_factory.mktemp("meta")
        counter = iter(range(1_000_000))
        yield lambda: f"sqlite:///{root}/meta-{next(counter)}.db"
        return

    admin = postgres_admin()
    database = f"artifact_store_test_{secrets.token_hex(6)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    base = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    server = (
        f"{base.get('user', 'postgres')}@{base.get('host', '127.0.0.1')}:{base.get('port', 5432)}"
    )
    owner = psycopg.connect(f"postgresql://{server}/{database}", autocommit=True)
    counter = iter(range(1_000_000))

    def fresh() -> str:
        # A schema per store is much cheaper than a database per store; the
        # store finds its schema through search_path.
        schema = f"store_{next(counter)}"
        owner.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        return f"postgresql://{server}/{database}?options=-csearch_path%3D{schema}"

    try:
        yield fresh
    finally:
        owner.close()
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )
        admin.close()


@pytest.fixture
async def store(make_url: UrlFactory) -> AsyncIterator[MetadataStore]:
    opened = await MetadataStore.open(make_url())
    try:
        yield opened
    finally:
        await opened.close()


@pytest.fixture
def writes(store: MetadataStore) -> Writes:
    """The write path over ``store``, with no immutable tags configured."""
    return Writes(store, Rules())
