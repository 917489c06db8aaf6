"""A clock the tests move by hand, for ``MetadataStore.open(url, clock=...)``."""

from __future__ import annotations

import datetime as dt

__all__ = ["ManualClock"]


class ManualClock:
    """Stands still until told to move (either way); starts at the real time."""

    def __init__(self, start: dt.datetime | None = None) -> None:
        self.now = dt.datetime.now(dt.UTC) if start is None else start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, by: dt.timedelta) -> dt.datetime:
        """Move the clock by ``by`` (negative: backwards, as a stepped clock does)."""
        self.now += by
        return self.now
