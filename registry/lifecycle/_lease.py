"""The garbage-collection lease: at most one collector at a time across all replicas.

Correctness never rests on this lease: every sweep step re-checks under the
metadata write lock (ADR-0007), so two collectors running at once would only
repeat each other's work. The lease keeps N replicas with a schedule from
scanning the same database and bucket N times over.

- PostgreSQL: a session-level advisory lock (``pg_try_advisory_lock``) on a
  connection held for the run. The server drops it when the session ends,
  so a collector that crashes or loses its connection releases it at once;
  there is no expiry to tune and no row to clean up. (Behind a pooler in
  transaction mode, such as PgBouncer's, session locks do not work: point
  the collector at the database directly.)
- SQLite: an exclusive ``flock`` on ``<database>.gc-lock`` beside the
  database file, which the kernel releases when the process ends. SQLite is
  a one-machine database, so a local lock covers every process that can
  open it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import AsyncIterator, Iterator

import anyio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from registry.meta import MetadataStore

__all__ = ["GC_LEASE_KEY", "GcRunning", "gc_lease"]

# "agc" in ASCII; the lock's second half is the schema's hash, so registries
# sharing one database in separate schemas collect independently. The
# two-key form lives apart from the event log's one-key write lock.
GC_LEASE_KEY = 0x616763


class GcRunning(Exception):
    """Another garbage collection holds the lease; try again when it is done."""

    def __init__(self) -> None:
        super().__init__("another garbage collection is running")


@contextlib.asynccontextmanager
async def gc_lease(meta: MetadataStore) -> AsyncIterator[None]:
    """Hold the lease for the body; GcRunning at once if another collector has it."""
    if meta.dialect == "postgresql":
        async with meta.reading() as conn, _advisory(conn):
            yield
    else:
        async with meta.reading() as conn:
            database = conn.engine.url.database
        with _flock(f"{database}.gc-lock"):
            yield


@contextlib.asynccontextmanager
async def _advisory(conn: AsyncConnection) -> AsyncIterator[None]:
    key = (GC_LEASE_KEY, sa.func.hashtext(sa.func.current_schema()))
    got = (await conn.execute(sa.select(sa.func.pg_try_advisory_lock(*key)))).scalar()
    await conn.commit()  # a session lock outlives the transaction; do not sit idle in one
    if not got:
        raise GcRunning
    try:
        yield
    finally:
        # The connection goes back to the pool, so the lock must go first; if
        # unlocking fails, drop the connection and the session (and lock) with it.
        with anyio.CancelScope(shield=True):
            try:
                await conn.execute(sa.select(sa.func.pg_advisory_unlock(*key)))
                await conn.commit()
            except Exception:
                await conn.invalidate()
                raise


@contextlib.contextmanager
def _flock(path: str) -> Iterator[None]:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise GcRunning from None
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock
