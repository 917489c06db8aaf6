"""``GET /api/v1/events``: the log as a long-poll JSON feed and as Server-Sent Events.

Both forms share one cursor rule. ``head`` (from the watcher) is read
before the log is queried, and the log never shows gaps, so when a query
returns fewer than ``limit`` events every event up to ``head`` has been
considered: the cursor may move to ``max(last returned seq, head)`` even
when a repository or type filter matched nothing. That keeps a filtered
client from re-scanning the same unmatched events on every poll.

- JSON (default): ``{"events": [...], "next": N}``; with ``wait=S`` an
  empty answer is held up to S seconds (at most 60) until a matching event
  is committed. Resume with ``after=next``. ``after=end`` starts at the
  log's current head: only events committed from now on (``tail -f``).
- SSE (``Accept: text/event-stream``): ``id:`` is the event's seq, so a
  reconnecting EventSource resumes from ``Last-Event-ID``
  (https://html.spec.whatwg.org/multipage/server-sent-events.html#the-last-event-id-header);
  a comment line is sent every 15 s of silence to keep proxies from
  closing the connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from oci.errors import PaginationNumberInvalid, Unsupported
from oci.reference import validate_repository
from registry.events import EventSource, event_bytes, event_view
from registry.meta import EVENT_TYPES, EventRecord

__all__ = ["EventQueryInvalid", "EventTypeUnknown", "routes"]

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_WAIT = 60.0
KEEPALIVE = 15.0


class EventQueryInvalid(PaginationNumberInvalid):
    """``after``, ``limit`` or ``wait`` is not a number in range"""


class EventTypeUnknown(Unsupported):
    """the ``type`` filter names no event type (UNSUPPORTED: an invalid set of parameters)"""

    status = 400


@dataclass(frozen=True, slots=True)
class _Query:
    after: int | None  # None: the head of the log when the request is served
    limit: int
    wait: float
    repository: str | None
    types: tuple[str, ...] | None


def _number(request: Request, name: str, default: float, low: float, high: float) -> float:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    try:
        value = float(raw) if name == "wait" else int(raw)
    except ValueError:
        raise EventQueryInvalid(f"{name} must be a number", detail={name: raw}) from None
    if value < low or value != value:  # NaN compares unequal to itself
        raise EventQueryInvalid(f"{name} must be at least {low:g}", detail={name: raw})
    return min(value, high)


def _parse(request: Request) -> _Query:
    end = request.query_params.get("after") == "end"
    after: int | None = None if end else int(_number(request, "after", 0, 0, float("inf")))
    last_event_id = request.headers.get("last-event-id")
    if last_event_id is not None:
        # A reconnecting EventSource sends the id of the last event it saw.
        if not last_event_id.isdecimal():
            raise EventQueryInvalid("Last-Event-ID must be an event seq")
        after = max(after or 0, int(last_event_id))
    repository = request.query_params.get("repository")
    if repository is not None:
        validate_repository(repository)
    types = tuple(request.query_params.getlist("type")) or None
    for name in types or ():
        if name not in EVENT_TYPES:
            raise EventTypeUnknown(
                f"unknown event type {name!r}", detail={"known": sorted(EVENT_TYPES)}
            )
    return _Query(
        after=after,
        limit=int(_number(request, "limit", DEFAULT_LIMIT, 1, MAX_LIMIT)),
        wait=_number(request, "wait", 0.0, 0, MAX_WAIT),
        repository=repository,
        types=types,
    )


async def _read(source: EventSource, query: _Query, after: int) -> tuple[list[EventRecord], int]:
    """One page after ``after`` and the cursor to resume from (see the module docstring)."""
    head = source.watcher.head
    records = await source.store.events(after, query.limit, query.repository, query.types)
    cursor = records[-1].seq if records else after
    if len(records) < query.limit:
        cursor = max(cursor, head)
    return records, cursor


async def _start(source: EventSource, query: _Query) -> int:
    return await source.watcher.latest() if query.after is None else query.after


async def _long_poll(source: EventSource, query: _Query) -> Response:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + query.wait
    records, cursor = await _read(source, query, await _start(source, query))
    while not records and (remaining := deadline - loop.time()) > 0:
        if await source.watcher.wait_beyond(cursor, within=remaining):
            records, cursor = await _read(source, query, cursor)
    body = {"events": [event_view(record) for record in records], "next": cursor}
    return JSONResponse(body, headers={"Cache-Control": "no-store"})


async def _sse(source: EventSource, query: _Query) -> AsyncIterator[bytes]:
    cursor = await _start(source, query)
    # Tell the client how long to wait before reconnecting (milliseconds).
    yield b"retry: 2000\n\n"
    while True:
        records, cursor = await _read(source, query, cursor)
        for record in records:
            yield b"id: %d\nevent: %s\ndata: %s\n\n" % (
                record.seq,
                record.type.encode(),
                event_bytes(record),
            )
        if len(records) < query.limit and not await source.watcher.wait_beyond(
            cursor, within=KEEPALIVE
        ):
            yield b": keep-alive\n\n"


def routes(lookup: Callable[[Request], EventSource]) -> list[Route]:
    """The events routes; ``lookup`` finds the EventSource the app holds (its AppState)."""

    async def events(request: Request) -> Response:
        query = _parse(request)
        source = lookup(request)
        if "text/event-stream" in request.headers.get("accept", ""):
            return StreamingResponse(
                _sse(source, query),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
            )
        return await _long_poll(source, query)

    return [Route("/api/v1/events", events, methods=["GET"])]
