"""MetadataStore: the engine, its transactions, and the read queries behind one async API.

A write goes through ``transaction()``: under the write lock, the caller
asks the rules (``registry.rules``), then ``Transaction.append_event``
appends the event to the log (``log.py``, whose docstring tells why one
global write lock) and projects it into the views (``projector.py``), all
in the one transaction. Nothing else writes the log or the views.

Reads answer from the views, except ``tag_at`` and ``events``, which read
the log. The reads a pull makes most try SQLite's inline path first
(``_sqlite_reads.py``); each is one statement either way.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from oci.digest import Digest
from oci.manifest import Descriptor
from registry.meta import log, projector, queries
from registry.meta._sqlite_reads import SqliteReads, TransientRead
from registry.meta.engine import (
    connect_engine,
    dispose,
    migrate,
    normalize_url,
    translate_errors,
    write_transaction,
)
from registry.meta.events import Event
from registry.meta.records import (
    BlobRecord,
    EventRecord,
    HoldRecord,
    ManifestRecord,
    UploadRecord,
)
from registry.meta.tables import VIEWS

__all__ = ["MetadataStore", "Transaction"]

_REPLAY_BATCH = 500


class Transaction:
    """One write transaction under the write lock.

    ``conn`` is for the checks a write makes first (the rules, the
    queries); ``append_event`` records an event and projects it.
    """

    def __init__(self, conn: AsyncConnection, clock: log.Clock = log.utc_now) -> None:
        self.conn = conn
        self._clock = clock

    async def append_event(self, event: Event, actor: str) -> int:
        """Append ``event`` to the log and fold it into the views; returns its seq."""
        record = await log.append_event(self.conn, event, actor, self._clock)
        await projector.apply(self.conn, event, record.ts, actor)
        return record.seq


class MetadataStore:
    """The metadata database; ``clock`` stamps the events it appends (default: real UTC)."""

    def __init__(self, engine: AsyncEngine, url: sa.URL, clock: log.Clock = log.utc_now) -> None:
        self._engine = engine
        self._url = url
        self._clock = clock
        # The hot reads on SQLite skip the async engine (_sqlite_reads.py).
        self._fast = SqliteReads(str(url.database)) if url.get_backend_name() == "sqlite" else None

    @property
    def dialect(self) -> str:
        return self._engine.dialect.name

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[Transaction]:
        """The one way to write: check (the rules), then ``append_event``, then commit."""
        with self._translate():
            async with write_transaction(self._engine) as conn:
                yield Transaction(conn, self._clock)

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[AsyncConnection]:
        """A read-only connection to the views, for scans through ``registry.meta`` queries."""
        with self._translate():
            async with self._engine.connect() as conn:
                yield conn

    @classmethod
    async def open(cls, url: str, clock: log.Clock = log.utc_now) -> MetadataStore:
        """Connect and migrate to head; an unreachable database is BackendUnavailable.

        ``clock`` gives the appended events their time (tests move it by hand).
        """
        parsed = normalize_url(url)
        engine = connect_engine(parsed)
        try:
            with translate_errors(parsed):
                await migrate(engine)
        except BaseException:
            await dispose(engine)
            raise
        return cls(engine, parsed, clock)

    async def close(self) -> None:
        if self._fast is not None:
            self._fast.close()
        await dispose(self._engine)

    async def check(self) -> None:
        async with self.reading() as conn:
            await conn.execute(sa.select(sa.literal(1)))

    def _translate(self) -> contextlib.AbstractContextManager[None]:
        return translate_errors(self._url)

    async def rebuild_views(self) -> int:
        """Empty every view and replay the whole log; returns the events replayed.

        Runs in one transaction under the write lock: writers wait, readers
        keep seeing the old views until it commits.
        """
        replayed = 0
        async with self.transaction() as tx:
            for table in VIEWS:
                await tx.conn.execute(sa.delete(table))
            after = 0
            while batch := await log.read_events(tx.conn, after, _REPLAY_BATCH, None, None):
                for record in batch:
                    await projector.apply(tx.conn, record.event, record.ts, record.actor)
                after = batch[-1].seq
                replayed += len(batch)
        return replayed

    # -- reads: from the views, except tag_at and events ----------------------

    async def get_upload(self, repo: str, upload_id: str) -> UploadRecord | None:
        """The upload if it is active and belongs to ``repo``; ended uploads read as None."""
        async with self.reading() as conn:
            upload = await queries.upload_row(conn, upload_id)
        if upload is None or upload.repository != repo or upload.state != "active":
            return None
        return upload

    async def get_manifest(self, repo: str, reference: str) -> ManifestRecord | None:
        """By digest (``algorithm:hex``) or by tag."""
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.manifest(repo, reference)
        async with self.reading() as conn:
            return await queries.manifest_by_reference(conn, repo, reference)

    async def get_blob(self, repo: str, digest: Digest) -> BlobRecord | None:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.blob(repo, digest)
        async with self.reading() as conn:
            return await queries.linked_blob(conn, repo, digest)

    async def list_tags(self, repo: str, n: int | None, last: str | None) -> list[str]:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.tags(repo, n, last)
        async with self.reading() as conn:
            return await queries.list_tags(conn, repo, n, last)

    async def repository_seq(self, repo: str) -> int:
        """The seq of ``repo``'s newest event (0: none); it moves with every change to ``repo``."""
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.repository_seq(repo)
        async with self.reading() as conn:
            return await queries.repository_seq(conn, repo)

    async def repository_exists(self, repo: str) -> bool:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.repository_exists(repo)
        async with self.reading() as conn:
            return await queries.repository_exists(conn, repo)

    async def catalog(self, n: int | None, last: str | None) -> list[str]:
        if self._fast is not None:
            with contextlib.suppress(TransientRead):
                return self._fast.catalog(n, last)
        async with self.reading() as conn:
            return await queries.catalog(conn, n, last)

    async def referrers(
        self, repo: str, subject: Digest, artifact_type: str | None
    ) -> list[Descriptor]:
        async with self.reading() as conn:
            return await queries.referrers(conn, repo, subject, artifact_type)

    async def tag_at(self, repo: str, tag: str, at: dt.datetime) -> Digest | None:
        """What ``repo:tag`` pointed to at ``at`` (naive means UTC), read from the log."""
        if at.tzinfo is None:
            at = at.replace(tzinfo=dt.UTC)
        async with self.reading() as conn:
            return await log.tag_at(conn, repo, tag, at)

    async def events(
        self,
        after: int,
        limit: int,
        repo: str | None = None,
        types: Sequence[str] | None = None,
    ) -> list[EventRecord]:
        """Events with seq > ``after`` in seq order; safe for tailing (no gaps ever appear)."""
        async with self.reading() as conn:
            return await log.read_events(conn, after, limit, repo, types)

    async def expired_uploads(self, idle: dt.timedelta) -> list[UploadRecord]:
        """Active uploads untouched for longer than ``idle``, oldest first."""
        cutoff = self._clock() - idle
        async with self.reading() as conn:
            return await queries.expired_uploads(conn, cutoff)

    async def active_upload_ids(self, ids: Sequence[str]) -> set[str]:
        """Which of ``ids`` name an active upload session."""
        async with self.reading() as conn:
            return await queries.active_uploads(conn, ids)

    async def list_holds(self, repo: str | None = None) -> list[HoldRecord]:
        async with self.reading() as conn:
            return await queries.list_holds(conn, repo)
