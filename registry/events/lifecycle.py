"""Wiring the event stream into a server process: one watcher, the publisher, write wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from registry.events.publisher import OutboxPublisher, PublisherSettings
from registry.events.watcher import LogWatcher
from registry.meta import MetadataStore

__all__ = ["EventSource", "WriteNotifier", "running_events"]

_log = logging.getLogger(__name__)

_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class EventSource:
    """What the events endpoint reads: the store and this process's (shared) watcher."""

    store: MetadataStore
    watcher: LogWatcher


@contextlib.asynccontextmanager
async def running_events(
    store: MetadataStore, nats_url: str | None, subject_prefix: str
) -> AsyncIterator[EventSource]:
    """The process's EventSource; with ``nats_url`` also the outbox publisher in the background.

    Without NATS nothing is started beyond the watcher: the HTTP stream is
    the fallback and needs no configuration.
    """
    watcher = LogWatcher(store)
    task: asyncio.Task[None] | None = None
    if nats_url:
        settings = PublisherSettings(nats_url=nats_url, subject_prefix=subject_prefix)
        task = asyncio.create_task(OutboxPublisher(store, settings, watcher).run(), name="outbox")
        task.add_done_callback(_report)
    try:
        yield EventSource(store, watcher)
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await watcher.close()


def _report(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        _log.error("event outbox publisher stopped: %s", task.exception())


class WriteNotifier:
    """ASGI middleware: after any request that may have written, wake this process's watcher.

    The metadata store has no commit hook, and every write reaches it
    through a request, so the edge is the one place that sees them all.
    A spurious wake-up costs one indexed query. ``source`` finds the app's
    EventSource when a request ends (None before the lifespan made one).
    """

    def __init__(self, app: ASGIApp, source: Callable[[], EventSource | None]) -> None:
        self._app = app
        self._source = source

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._app(scope, receive, send)
        finally:
            if scope["type"] == "http" and scope["method"] not in _READ_METHODS:
                source = self._source()
                if source is not None:
                    source.watcher.notify()
