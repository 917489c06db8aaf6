"""ContentHasher: the two hashes and the caller's blocking work on a chunk run side by side."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable

import blake3
import pytest

from storage import hashing
from storage.hashing import PARALLEL_MIN, ContentHasher

pytestmark = pytest.mark.anyio


class _Spy:
    """A hasher that calls ``before`` ahead of each update it passes on to ``inner``."""

    def __init__(self, inner: object, before: Callable[[], object]) -> None:
        self._inner, self._before = inner, before

    def update(self, data: bytes) -> None:
        self._before()
        self._inner.update(data)  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return self._inner.hexdigest()  # type: ignore[attr-defined, no-any-return]


def _waits_for(event: threading.Event) -> Callable[[], None]:
    """An update hook that cannot finish until ``event`` is set (or 5 s pass)."""

    def wait() -> None:
        assert event.wait(5), "the blocking work did not run alongside this hash"

    return wait


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
async def test_a_large_chunk_is_written_while_both_hashes_run(
    monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """Neither hash may run before or after the write: a piece takes the slowest of the three."""
    written = threading.Event()
    new = hashing._new

    def waiting(name: str) -> object:
        hasher = new(name)
        return _Spy(hasher, _waits_for(written)) if name == algorithm else hasher

    monkeypatch.setattr(hashing, "_new", waiting)
    hashes = ContentHasher()
    data = b"w" * PARALLEL_MIN
    await hashes.update(data, written.set)
    assert hashes.size == len(data)
    assert hashes.sha256().hex == hashlib.sha256(data).hexdigest()
    assert hashes.blake3().hex == blake3.blake3(data).hexdigest()


async def test_only_small_chunks_are_hashed_on_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Up to INLINE_MAX a thread hop costs more than the hashes; past it, the loop would stall."""
    threads: list[int] = []
    new = hashing._new

    def record() -> None:
        threads.append(threading.get_ident())

    monkeypatch.setattr(hashing, "_new", lambda name: _Spy(new(name), record))
    hashes = ContentHasher()
    here = threading.get_ident()
    await hashes.update(b"s" * hashing.INLINE_MAX)
    assert threads == [here, here]
    threads.clear()
    await hashes.update(b"l" * (hashing.INLINE_MAX + 1))
    assert len(threads) == 2
    assert here not in threads
    data = b"s" * hashing.INLINE_MAX + b"l" * (hashing.INLINE_MAX + 1)
    assert hashes.sha256().hex == hashlib.sha256(data).hexdigest()
    assert hashes.blake3().hex == blake3.blake3(data).hexdigest()
