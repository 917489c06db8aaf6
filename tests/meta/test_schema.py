from __future__ import annotations

import secrets
from collections.abc import AsyncIterator
from typing import Any

import pytest
import sqlalchemy as sa
import sqlalchemy.exc
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oci.errors import BackendUnavailable
from registry.meta import MetadataStore
from registry.meta.engine import normalize_url
from registry.meta.tables import metadata
from registry.rules import Rules
from registry.service.writes import Writes

from .conftest import PG_ADMIN_URL, UrlFactory, postgres_admin

pytestmark = pytest.mark.anyio


@pytest.fixture
async def migrated(make_url: UrlFactory) -> AsyncIterator[tuple[MetadataStore, AsyncEngine]]:
    """A migrated store and a separate raw engine on the same database."""
    url = make_url()
    store = await MetadataStore.open(url)
    engine = create_async_engine(normalize_url(url))
    try:
        yield store, engine
    finally:
        await engine.dispose()
        await store.close()


async def test_migrations_build_exactly_the_declared_tables(
    migrated: tuple[MetadataStore, AsyncEngine],
) -> None:
    _, engine = migrated

    def diff(connection: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        return list(compare_metadata(context, metadata))

    async with engine.connect() as conn:
        assert await conn.run_sync(diff) == []


async def test_reopening_keeps_the_log_and_migrates_nothing(make_url: UrlFactory) -> None:
    url = make_url()
    store = await MetadataStore.open(url)
    writes = Writes(store, Rules())
    await writes.start_upload("r", "u1", actor="alice")
    await store.close()
    store = await MetadataStore.open(url)
    try:
        assert [record.type for record in await store.events(0, 10)] == ["upload.started"]
    finally:
        await store.close()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE events SET actor = 'mallory'",
        "DELETE FROM events",
        "DELETE FROM events WHERE seq = 1",
    ],
)
async def test_the_database_refuses_to_rewrite_history(
    migrated: tuple[MetadataStore, AsyncEngine], statement: str
) -> None:
    store, engine = migrated
    writes = Writes(store, Rules())
    await writes.start_upload("r", "u1", actor="alice")
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text(statement))
    [record] = await store.events(0, 10)
    assert (record.seq, record.actor) == (1, "alice")


async def test_truncate_is_refused_on_postgresql(
    migrated: tuple[MetadataStore, AsyncEngine],
) -> None:
    store, engine = migrated
    writes = Writes(store, Rules())
    if engine.dialect.name != "postgresql":
        # SQLite has no TRUNCATE statement; DELETE is covered above.
        assert engine.dialect.name == "sqlite"
        return
    await writes.start_upload("r", "u1", actor="alice")
    with pytest.raises(sqlalchemy.exc.DatabaseError, match="append-only"):
        async with engine.begin() as conn:
            await conn.execute(sa.text("TRUNCATE events"))
    assert len(await store.events(0, 10)) == 1


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("sqlite:///a/b.db", "sqlite+aiosqlite:///a/b.db"),
        ("sqlite+aiosqlite:////abs/b.db", "sqlite+aiosqlite:////abs/b.db"),
        ("postgresql://u@h:5432/d", "postgresql+psycopg://u@h:5432/d"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
    ],
)
def test_url_forms_normalise_to_async_drivers(given: str, expected: str) -> None:
    assert normalize_url(given).render_as_string() == expected


@pytest.mark.parametrize("url", ["mysql://u@h/d", "sqlite://", "sqlite:///:memory:"])
async def test_unsupported_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"unsupported|in-memory"):
        await MetadataStore.open(url)


async def test_unreachable_database_is_backend_unavailable_in_one_line() -> None:
    # Port 1 on loopback: nothing listens there, so the connect is refused at once.
    with pytest.raises(BackendUnavailable) as caught:
        await MetadataStore.open("postgresql://postgres:hunter2@127.0.0.1:1/nowhere")
    message = str(caught.value)
    assert "\n" not in message
    assert "127.0.0.1:1/nowhere" in message
    assert "hunter2" not in message


async def test_check_passes_on_a_live_store(store: MetadataStore) -> None:
    await store.check()


@pytest.mark.postgres
async def test_check_reports_a_dropped_database() -> None:
    admin = postgres_admin()
    name = f"artifact_store_test_{secrets.token_hex(6)}"
    admin.execute(f'CREATE DATABASE "{name}"')
    try:
        server = normalize_url(PG_ADMIN_URL).set(database=name)
        store = await MetadataStore.open(server.render_as_string(hide_password=False))
        try:
            await store.check()
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
            with pytest.raises(BackendUnavailable, match=f"{name} unavailable"):
                await store.check()
        finally:
            await store.close()
    finally:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.close()
