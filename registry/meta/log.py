"""The event log: the only code that appends events, and the reads of the log.

Theory of operation. A write (1) opens a write transaction, which takes
the database-wide write lock first (``MetadataStore.transaction``), (2)
asks the rules whether the change is allowed, raising the spec error if
not, (3) appends exactly one event with ``seq = max(seq) + 1``
(``append_event``) and (4) hands that event to the projector, all in the
one transaction.

Why a lock rather than an identity column: consumers tail the log with
``events(after=N)``. With a sequence, transaction A could draw seq 10,
transaction B seq 11, and B commit first; a consumer reading "after 10"
at that moment would see 11, move on, and never see 10. Holding one lock
from before seq is drawn until commit makes commit order equal seq order,
so the log has no gaps at any instant a reader can observe. The cost is
that metadata writes are serial; each is a handful of small statements,
and blob bytes (the heavy part of a push) never pass through here.

Timestamps come from the store's clock (this process's UTC clock unless the
store was opened with another, as tests do) but never run backwards in the
log: an event's ts is at least its predecessor's, so "the log up to time t"
is always a prefix, which is what ``tag_at`` relies on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from oci.digest import Digest
from registry.meta.events import (
    Event,
    ManifestDeleted,
    ManifestPut,
    TagDeleted,
    decode,
    encode_payload,
)
from registry.meta.records import EventRecord
from registry.meta.tables import events

__all__ = ["Clock", "append_event", "read_events", "tag_at", "utc_now"]

Clock = Callable[[], dt.datetime]
"""Where events get their time: a callable returning an aware datetime."""

_HISTORY_TYPES = (ManifestPut.TYPE, ManifestDeleted.TYPE, TagDeleted.TYPE)
_HISTORY_BATCH = 200


def utc_now() -> dt.datetime:
    """The real clock, in UTC: every store's clock unless it is given another."""
    return dt.datetime.now(dt.UTC)


async def append_event(
    conn: AsyncConnection, event: Event, actor: str, clock: Clock = utc_now
) -> EventRecord:
    """Append ``event`` as the next seq; the caller holds the write lock (see above).

    Its ``ts`` is ``clock()``, or its predecessor's if that is later.
    Returns the record written, whose ``ts`` the projector folds in.
    """
    last = (
        await conn.execute(
            sa.select(events.c.seq, events.c.ts).order_by(events.c.seq.desc()).limit(1)
        )
    ).first()
    seq = 1 if last is None else last.seq + 1
    ts = clock()
    if last is not None and last.ts > ts:
        ts = last.ts  # the clock stepped back; keep the log ordered in time
    await conn.execute(
        sa.insert(events).values(
            seq=seq,
            ts=ts,
            actor=actor,
            repository=event.repository,
            type=event.TYPE,
            payload=encode_payload(event),
        )
    )
    return EventRecord(seq, ts, actor, event.repository, event.TYPE, event)


async def read_events(
    conn: AsyncConnection,
    after: int,
    limit: int,
    repo: str | None,
    types: Sequence[str] | None,
) -> list[EventRecord]:
    """Events with seq > ``after`` in seq order, at most ``limit``; safe for tailing."""
    query = sa.select(events).where(events.c.seq > after)
    if repo is not None:
        query = query.where(events.c.repository == repo)
    if types is not None:
        query = query.where(events.c.type.in_(list(types)))
    rows = (await conn.execute(query.order_by(events.c.seq).limit(limit))).all()
    return [
        EventRecord(
            seq=row.seq,
            ts=row.ts,
            actor=row.actor,
            repository=row.repository,
            type=row.type,
            event=decode(row.type, row.payload),
        )
        for row in rows
    ]


async def tag_at(conn: AsyncConnection, repo: str, tag: str, at: dt.datetime) -> Digest | None:
    """Walk the repository's tag history backwards from ``at``.

    The newest put naming ``tag``, or deletion of ``tag``, before ``at``
    decides; except that a manifest deleted after that put (and before
    ``at``) took the tag with it, so deletions seen on the way are collected.
    """
    deleted: set[Digest] = set()
    before: int | None = None
    while True:
        query = sa.select(events.c.seq, events.c.type, events.c.payload).where(
            events.c.repository == repo,
            events.c.type.in_(_HISTORY_TYPES),
            events.c.ts <= at,
        )
        if before is not None:
            query = query.where(events.c.seq < before)
        rows = (await conn.execute(query.order_by(events.c.seq.desc()).limit(_HISTORY_BATCH))).all()
        if not rows:
            return None
        for row in rows:
            event = decode(row.type, row.payload)
            if isinstance(event, TagDeleted) and event.tag == tag:
                return None
            if isinstance(event, ManifestDeleted):
                deleted.add(event.digest)
            elif isinstance(event, ManifestPut) and tag in event.tags:
                return None if event.digest in deleted else event.digest
        before = rows[-1].seq
