"""Waiting for new events without hammering the database.

Theory of operation. One ``LogWatcher`` per process tracks ``head``, the
highest sequence number it has seen in the log. Any number of waiters
(long-poll requests, SSE streams, the outbox publisher) block on one
``asyncio.Condition``; a single background task polls the log on their
behalf, so the database sees one cheap indexed query per interval per
process, however many clients are waiting.

The poll interval starts at ``min_interval`` after any change and doubles
while the log is idle, up to ``max_interval``. A writer in this process
calls ``notify()`` after it commits; that wakes the poll task at once, so
in-process writes reach waiters in one query, and writes from other
processes (replicas, the CLI) are picked up by the slow poll.

The log never has gaps a reader can observe (see ``registry/meta/log.py``),
so "some event has seq > x" is monotone in x: ``head`` is found by
galloping (probe after=head, head+1, head+3, head+7, ...) then bisecting,
O(log n) one-row queries even on a fresh process facing a long log.
The poll task only runs while someone waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from oci.errors import OperationalError
from registry.meta import MetadataStore

__all__ = ["LogWatcher"]

_log = logging.getLogger(__name__)


class LogWatcher:
    def __init__(
        self, store: MetadataStore, *, min_interval: float = 0.05, max_interval: float = 0.5
    ) -> None:
        self._store = store
        self._min = min_interval
        self._max = max_interval
        self._head: int | None = None
        self._changed = asyncio.Condition()
        self._wake = asyncio.Event()
        self._waiters = 0
        self._task: asyncio.Task[None] | None = None

    @property
    def head(self) -> int:
        """The highest seq seen so far (0 before the first poll); every event <= head is visible."""
        return self._head or 0

    def notify(self) -> None:
        """Tell the watcher the log may have grown (call after a write commits in this process)."""
        self._wake.set()

    async def wait_beyond(self, seq: int, within: float) -> bool:
        """Block until the log holds an event with seq > ``seq``; False after ``within`` s.

        A True answer means such an event is committed; a False one means
        nothing was seen in time. Either way the caller re-reads the log.
        """
        if self._head is not None and self._head > seq:
            return True
        self._waiters += 1
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._poll(), name="event-log-watcher")
        else:
            # A new waiter's cursor may already be behind the true head.
            self._wake.set()
        try:
            async with asyncio.timeout(within), self._changed:
                await self._changed.wait_for(lambda: self._head is not None and self._head > seq)
            return True
        except TimeoutError:
            return False
        finally:
            self._waiters -= 1

    async def latest(self) -> int:
        """The log's head as it is now, read from the log (``head`` may lag the poll)."""
        return await self._find_head(self.head)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _exists_after(self, seq: int) -> bool:
        return bool(await self._store.events(seq, 1))

    async def _find_head(self, known: int) -> int:
        """The highest seq in the log, given that every seq <= ``known`` exists."""
        if not await self._exists_after(known):
            return known
        low, step = known + 1, 1  # low: a seq known to exist
        while await self._exists_after(low + step - 1):
            low, step = low + step, step * 2
        high = low + step - 1  # nothing after high
        while low < high:
            mid = (low + high + 1) // 2
            if await self._exists_after(mid - 1):
                low = mid
            else:
                high = mid - 1
        return low

    async def _poll(self) -> None:
        interval = self._min
        while self._waiters > 0:
            self._wake.clear()
            try:
                head = await self._find_head(self.head)
            except OperationalError as exc:
                _log.warning("event log poll failed: %s", exc)
                interval = self._max
            else:
                if head != self._head:
                    self._head = head
                    interval = self._min
                    async with self._changed:
                        self._changed.notify_all()
                else:
                    interval = min(interval * 2, self._max)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
