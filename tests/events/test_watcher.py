"""The watcher: one cheap poll per process however many wait, and an instant wake-up."""

from __future__ import annotations

import asyncio
import time
import typing
from collections.abc import Sequence

import pytest

from registry.events.watcher import LogWatcher
from registry.meta import EventRecord, MetadataStore
from registry.rules import Rules
from registry.service.writes import Writes
from tests.meta._content import blob
from tests.meta.conftest import UrlFactory

pytestmark = pytest.mark.anyio


class CountingStore(MetadataStore):
    """The real store, counting how often the log is queried."""

    queries = 0

    async def events(
        self, after: int, limit: int, repo: str | None = None, types: Sequence[str] | None = None
    ) -> list[EventRecord]:
        self.queries += 1
        return await super().events(after, limit, repo, types)


async def commit(store: MetadataStore, n: int) -> None:
    await Writes(store, Rules()).commit_blob("w/w", blob(f"blob {n}".encode()), actor="t")


async def test_head_is_found_in_a_long_log_with_few_queries(make_url: UrlFactory) -> None:
    store = typing.cast(CountingStore, await CountingStore.open(make_url()))
    watcher = LogWatcher(store)
    try:
        for n in range(37):
            await commit(store, n)
        store.queries = 0
        assert await watcher.wait_beyond(0, within=5)
        assert watcher.head == 37
        assert store.queries <= 2 * (37).bit_length() + 2
        assert not await watcher.wait_beyond(37, within=0.2)
    finally:
        await watcher.close()
        await store.close()


async def test_many_waiters_share_one_backing_off_poll(make_url: UrlFactory) -> None:
    store = typing.cast(CountingStore, await CountingStore.open(make_url()))
    watcher = LogWatcher(store, min_interval=0.05, max_interval=0.5)
    try:
        await commit(store, 0)
        assert await watcher.wait_beyond(0, within=5)
        store.queries = 0
        results = await asyncio.gather(*(watcher.wait_beyond(1, within=1.5) for _ in range(20)))
        assert results == [False] * 20
        # 0.05 + 0.1 + 0.2 + 0.4 + 0.5 + 0.5 > 1.5 s: about six polls, not twenty per interval.
        assert store.queries <= 8
    finally:
        await watcher.close()
        await store.close()


async def test_notify_wakes_waiters_without_waiting_for_the_slow_poll(
    make_url: UrlFactory,
) -> None:
    store = await MetadataStore.open(make_url())
    watcher = LogWatcher(store, min_interval=5, max_interval=5)
    try:
        waiter = asyncio.create_task(watcher.wait_beyond(0, within=10))
        await asyncio.sleep(0.2)  # the first poll has run and found nothing
        started = time.monotonic()
        await commit(store, 0)
        watcher.notify()
        assert await waiter
        assert time.monotonic() - started < 1
    finally:
        await watcher.close()
        await store.close()
