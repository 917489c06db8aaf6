"""Recording manifest pulls without writing on the pull path.

Retention's ``expire_not_pulled_after`` needs to know when a manifest was
last pulled, but a database write per GET would put the metadata write lock
(store.py) on the hottest read path. So a GET only adds (repository, digest)
to an in-memory set here (``note``: no I/O, no await); ``run``, a task of the
server's lifespan, flushes the set every ``interval`` seconds as one
write transaction appending one ``manifest.pulled`` event per entry. A
manifest pulled a thousand times in an interval costs one event; one pulled
once costs one event too, at most ``interval`` late.

Per process: with N server processes a manifest may be recorded up to N
times per interval, which is harmless (``pulled_at`` is a maximum). The set
is bounded (``limit`` entries): when it fills up, the flush runs early rather
than dropping pulls; only if the database cannot keep up are new entries
dropped (counted in ``dropped``, logged). A graceful shutdown flushes what is
pending; a crash loses at most one interval's pulls, which can only make a
manifest look less recently pulled by that interval.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from typing import Protocol

import anyio

from oci.errors import RegistryError

__all__ = ["PULL_ACTOR", "PullRecorder", "PullWriter"]

log = logging.getLogger("artifact_store")

PULL_ACTOR = "system"
_SHUTDOWN_FLUSH_SECONDS = 10.0


class PullWriter(Protocol):
    """What the recorder writes through: ``registry.service.writes.Writes``."""

    async def record_pulls(self, pulled: Iterable[tuple[str, str]], *, actor: str) -> int: ...


class PullRecorder:
    def __init__(self, interval: float, *, limit: int = 100_000) -> None:
        if not interval > 0 or math.isinf(interval):
            raise ValueError("the pull recording interval must be a positive number of seconds")
        self.interval = interval
        self.limit = limit
        self.dropped = 0
        self._pending: dict[tuple[str, str], None] = {}  # an insertion-ordered set
        self._full: anyio.Event | None = None

    @property
    def pending(self) -> int:
        return len(self._pending)

    def note(self, repository: str, digest: str) -> None:
        """Remember one pull (called on the request path: constant time, no I/O)."""
        key = (repository, digest)
        if key in self._pending:
            return
        if len(self._pending) >= self.limit:
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("pull recorder full: %d pull(s) not recorded", self.dropped)
            return
        self._pending[key] = None
        if len(self._pending) >= self.limit and self._full is not None:
            self._full.set()

    async def flush(self, writes: PullWriter) -> int:
        """Append the pending pulls as events now; returns how many were recorded."""
        batch, self._pending = self._pending, {}
        if not batch:
            return 0
        try:
            return await writes.record_pulls(list(batch), actor=PULL_ACTOR)
        except BaseException:
            # Keep them for the next flush (newer notes first in line for the space).
            for key in batch:
                if len(self._pending) >= self.limit:
                    break
                self._pending.setdefault(key, None)
            raise

    async def run(self, writes: PullWriter) -> None:
        """Flush every ``interval`` seconds (sooner when full) until cancelled, then once more."""
        try:
            while True:
                self._full = anyio.Event()
                with anyio.move_on_after(self.interval):
                    await self._full.wait()
                try:
                    await self.flush(writes)
                except RegistryError as exc:
                    log.warning("recording pulls failed (kept for the next try): %s", exc)
        finally:
            with anyio.move_on_after(_SHUTDOWN_FLUSH_SECONDS, shield=True):
                try:
                    await self.flush(writes)
                except RegistryError as exc:
                    log.warning("recording pulls at shutdown failed: %s", exc)
