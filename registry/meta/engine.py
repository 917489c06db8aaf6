"""Engines for the two supported databases, and migration to head.

Theory of operation for writes (see also ``log.py``): every write
transaction takes one database-wide write lock before it reads anything, so
writes are serial and each one validates against the latest committed state.

- SQLite already allows one writer at a time; we begin write transactions
  with ``BEGIN IMMEDIATE`` so the lock is taken up front rather than on the
  first write, where SQLite would fail a stale reader with "database is
  locked" instead of waiting (WAL mode; ``busy_timeout`` makes waiters wait).
- PostgreSQL takes ``pg_advisory_xact_lock`` as the transaction's first
  statement; READ COMMITTED then gives every later statement a snapshot
  that includes all commits made before the lock was granted.

On SQLite, write transactions run on their own engine, whose statements run
inline on the event loop (``_InlineSQLiteDialect``); reads keep the
aiosqlite engine, whose statements each go to its thread and back.
"""

from __future__ import annotations

import contextlib
import importlib.resources
import pathlib
import sqlite3
import weakref
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import anyio.to_thread
import sqlalchemy as sa
import sqlalchemy.exc
from alembic import command
from alembic.config import Config
from sqlalchemy.dialects import registry as dialects
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.util import await_

from oci.errors import BackendUnavailable

__all__ = [
    "WRITE_LOCK_KEY",
    "connect_engine",
    "dispose",
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
    """The shared engine; ``write_transaction(engine)`` is its writer."""
    if url.get_backend_name() == "sqlite":
        database = url.database
        if not database or database == ":memory:":
            raise ValueError("an in-memory SQLite database cannot be shared: give a file path")
        pathlib.Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url)
        _install_sqlite_hooks(engine)

        @sa.event.listens_for(engine.sync_engine, "begin")
        def _on_begin(conn: sa.Connection) -> None:
            # A snapshot for a read of several statements; writes take the inline
            # engine of ``write_transaction``, which begins IMMEDIATE.
            conn.exec_driver_sql("BEGIN")

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


class _InlineSQLiteDialect(SQLiteDialect_pysqlite):
    """The stdlib ``sqlite3`` under SQLAlchemy's asyncio API, statements run where called.

    For write transactions on SQLite. Through aiosqlite each statement costs
    about four hand-offs to the driver's thread and back (cursor, execute,
    fetch, close), and a manifest PUT makes about ten statements: 9.2 ms per
    PUT, of which SQLite itself took 2.3 ms (docs/PERFORMANCE.md). Here a
    statement runs inline, as the hot reads do (``_sqlite_reads.py``), which
    is safe for the same reason: inside a write transaction that holds
    SQLite's write lock, in WAL mode, no statement waits for another
    connection. The two steps that may wait go to a worker thread: BEGIN
    IMMEDIATE (for the lock, held by another process for up to
    ``busy_timeout``) and COMMIT (which may checkpoint the WAL into the
    database file and fsync it).

    The connection is used from the loop's thread and a worker thread in
    turn, never at once, hence ``check_same_thread=False``.
    """

    is_async = True  # statements go through greenlet_spawn; the two waits are awaited
    supports_statement_cache = True

    def do_begin(self, dbapi_connection: Any) -> None:
        await_(anyio.to_thread.run_sync(dbapi_connection.execute, "BEGIN IMMEDIATE"))

    def do_commit(self, dbapi_connection: Any) -> None:
        await_(anyio.to_thread.run_sync(dbapi_connection.commit))

    # AsyncConnection.execute checks that a statement awaited something (to catch
    # a sync driver used by mistake): an await of nothing, which does not
    # suspend, says this one ran inline on purpose.
    def do_execute(self, cursor: Any, statement: Any, parameters: Any, context: Any = None) -> None:
        super().do_execute(cursor, statement, parameters, context)  # type: ignore[no-untyped-call]
        await_(_inline())

    def do_execute_no_params(self, cursor: Any, statement: Any, context: Any = None) -> None:
        super().do_execute_no_params(cursor, statement, context)  # type: ignore[no-untyped-call]
        await_(_inline())

    def do_executemany(
        self, cursor: Any, statement: Any, parameters: Any, context: Any = None
    ) -> None:
        super().do_executemany(cursor, statement, parameters, context)  # type: ignore[no-untyped-call]
        await_(_inline())


async def _inline() -> None:
    """Nothing to wait for (see ``_InlineSQLiteDialect``)."""


class _InlineCursor(sqlite3.Cursor):
    """A ``sqlite3`` cursor as SQLAlchemy's asyncio results expect one: they close an
    async driver's cursor with an awaited soft close, which for this one is nothing."""

    async def _async_soft_close(self) -> None:
        return None


class _InlineConnection(sqlite3.Connection):
    def cursor(self, factory: Any = _InlineCursor) -> Any:
        return super().cursor(factory)


dialects.register("sqlite.artifact_store_inline", __name__, "_InlineSQLiteDialect")


@dataclass
class _Writer:
    """How one engine's writes are made in this process: one at a time, and on SQLite
    through an inline engine (None: through the engine itself, which this must not
    reference: it would keep the weak key below alive)."""

    lock: anyio.Lock
    inline: AsyncEngine | None = None


# One write transaction at a time per connection pool in this process. The
# database's own lock still orders processes; in-process waiters queue here
# instead: SQLite's busy handler sleeps between polls (1, 2, 5 ... 100 ms), so
# a queue of writers on it drains far slower than the lock frees, and on
# PostgreSQL each waiter would hold a pooled connection while it waits.
_writers: weakref.WeakKeyDictionary[sa.pool.Pool, _Writer] = weakref.WeakKeyDictionary()


def _writer(engine: AsyncEngine) -> _Writer:
    pool = engine.sync_engine.pool
    writer = _writers.get(pool)
    if writer is None:
        if engine.dialect.name == "sqlite":
            # One connection: the lock above lets one write transaction in at a time.
            inline = create_async_engine(
                engine.url.set(drivername="sqlite+artifact_store_inline"),
                poolclass=sa.pool.AsyncAdaptedQueuePool,
                pool_size=1,
                connect_args={"check_same_thread": False, "factory": _InlineConnection},
            )
            _install_sqlite_hooks(inline)
            writer = _Writer(anyio.Lock(), inline)
            weakref.finalize(pool, inline.sync_engine.dispose)
        else:
            writer = _Writer(anyio.Lock())
        _writers[pool] = writer
    return writer


@contextlib.asynccontextmanager
async def write_transaction(engine: AsyncEngine) -> AsyncIterator[AsyncConnection]:
    """A transaction holding the database-wide write lock from its first statement."""
    writer = _writer(engine)
    through = engine if writer.inline is None else writer.inline
    async with writer.lock, through.begin() as conn:
        if engine.dialect.name == "postgresql":
            await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(WRITE_LOCK_KEY)))
        yield conn


async def dispose(engine: AsyncEngine) -> None:
    """Close ``engine``'s connections, and its writer's."""
    writer = _writers.pop(engine.sync_engine.pool, None)
    if writer is not None and writer.inline is not None:
        await writer.inline.dispose()
    await engine.dispose()


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
