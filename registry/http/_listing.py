"""Rendered tag lists, reused while their repository's event log stands still.

A tags list of a large repository costs a scan of its tags and a JSON
rendering of all of them, yet CI systems poll the same list over and over
while it rarely changes. Every change to a repository's tags is an event of
that repository (store.py: every write appends exactly one event), so the
seq of its newest event, one indexed lookup, says whether a list rendered
earlier still holds:

- the seq is read *before* the tags, so a list is filed under a seq no newer
  than the state it shows; if the seq is unchanged later, no event of the
  repository has committed since, so the state has not changed either
  (events commit in seq order, under the write lock);
- the seq comes from the shared database, so a change made through any
  replica is seen by the next request here, exactly as an uncached read
  would see it. Nothing expires on a timer; nothing stale is served.

Per process and bounded: at most ``entries`` lists of at most ``max_body``
bytes each, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

__all__ = ["TagListCache", "TagListKey"]

# (repository, n, last): one page of one repository's tags.
TagListKey = tuple[str, int | None, str | None]


@dataclass(frozen=True, slots=True)
class _Entry:
    seq: int
    body: bytes
    link: str | None


class TagListCache:
    def __init__(self, entries: int = 64, max_body: int = 1 << 20) -> None:
        self.entries = entries
        self.max_body = max_body
        self._lists: OrderedDict[TagListKey, _Entry] = OrderedDict()

    def get(self, key: TagListKey, seq: int) -> tuple[bytes, str | None] | None:
        """The body and ``Link`` rendered for ``key`` when the repository stood at ``seq``."""
        entry = self._lists.get(key)
        if entry is None or entry.seq != seq:
            return None
        self._lists.move_to_end(key)
        return entry.body, entry.link

    def put(self, key: TagListKey, seq: int, body: bytes, link: str | None) -> None:
        """File a list rendered from a read that began after ``seq`` was read."""
        if len(body) > self.max_body:
            return
        self._lists[key] = _Entry(seq, body, link)
        self._lists.move_to_end(key)
        while len(self._lists) > self.entries:
            self._lists.popitem(last=False)
