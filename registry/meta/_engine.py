"""Engines for the two supported databases, and migration to head.

Theory of operation for writes (see also ``store.py``): every write
transaction takes one database-wide write lock before it reads anything, so
writes are serial and each one validates against the latest committed state.

- SQLite already allows one writer at a time; we begin write transactions
  with ``BEGIN IMMEDIATE`` so the lock is taken up front rather than on the
  first write, where SQLite would fail a stale reader with "database is
  locked" instead of waiting (WAL mode; ``busy_timeout`` makes waiters wait).
- PostgreSQL takes ``pg_advisory_xact_lock`` as the transaction's first
  statement; READ COMMITTED then gives every later statement a snapshot
  that includes all commits made before the lock was granted.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import pathlib
import weakref
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anyio
import sqlalchemy as sa
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from oci.errors import BackendUnavailable

__all__ = [
    "WRITE_LOCK_KEY",
    "connect_engine",
    "migrate",
    "normalize_url",
    "translate_errors",
    "write_transaction",
]

# An arbitrary constant naming artifact-store's event-log lock among the
# advisory locks of a PostgreSQL database ("artstore" in ASCII, as an int8).
WRITE_LOCK_KEY = 0x6172747374_6F7265

_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgres": "postgresql+psycopg",
    "postgresql": "postgresql+psycopg",
    "postgresql+psycopg": "postgresql+psycopg",
}
_SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str) -> sa.URL:
    """Accept the sync spellings people write and pick our async drivers."""
    parsed = sa.make_url(url)
    driver = _DRIVERS.get(parsed.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported metadata database URL scheme {parsed.drivername!r}: "
            "use sqlite:///path or postgresql://user@host/db"
        )
    return parsed.set(drivername=driver)


def _display(url: sa.URL) -> str:
    return url.render_as_string(hide_password=True)


@contextlib.contextmanager
def translate_errors(url: sa.URL) -> Iterator[None]:
    """Connection-level failures become BackendUnavailable with one readable line.

    Integrity errors and programming errors are bugs, not outages, and pass.
    """
    try:
        yield
    except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, OSError) as exc:
        orig = getattr(exc, "orig", None) or exc
        reason = " ".join(str(orig).split()) or type(orig).__name__
        raise BackendUnavailable(
            f"metadata database {_display(url)} unavailable: {reason}"
        ) from exc


def connect_engine(url: sa.URL) -> AsyncEngine:
    """The shared engine; ``engine.execution_options(write=True)`` is its writer."""
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            raise ValueError("an in-memory SQLite database cannot be shared: give a file path")
        pathlib.Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        _install_sqlite_hooks(engine)
        return engine
    return create_async_engine(url, pool_pre_ping=True)


def _install_sqlite_hooks(engine: AsyncEngine) -> None:
    @sa.event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let us issue BEGIN ourselves (the driver's implicit BEGIN is DEFERRED).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in (
            "journal_mode=WAL",
            f"busy_timeout={_SQLITE_BUSY_TIMEOUT_MS}",
            "foreign_keys=ON",
            "synchronous=NORMAL",
        ):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @sa.event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: sa.Connection) -> None:
        write = conn.get_execution_options().get("write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


# One write transaction at a time per connection pool in this process. The
# database's own lock still orders processes; in-process waiters queue here
# instead: SQLite's busy handler sleeps between polls (1, 2, 5 ... 100 ms), so
# a queue of writers on it drains far slower than the lock frees, and on
# PostgreSQL each waiter would hold a pooled connection while it waits.
_writers: weakref.WeakKeyDictionary[sa.pool.Pool, anyio.Lock] = weakref.WeakKeyDictionary()


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction holding the database-wide write lock from its first statement."""
    pool = engine.sync_engine.pool
    lock = _writers.get(pool)
    if lock is None:
        lock = _writers[pool] = anyio.Lock()
    async with lock, engine.execution_options(write=True).begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
        yield conn


def _alembic_config(connection: sa.Connection) -> Config:
    config = Config()
    location = importlib.resources.files("registry.meta") / "migrations"
    config.set_main_option("script_location", str(location))
    config.attributes["connection"] = connection
    return config


async def migrate(engine: AsyncEngine) -> None:
    """Bring the schema to head; concurrent starters serialise on the write lock."""
    async with write_transaction(engine) as conn:
        await conn.run_sync(lambda sync: command.upgrade(_alembic_config(sync), "head"))
