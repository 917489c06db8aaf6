"""ContentHasher: the two hashes and the caller's blocking work on a chunk run side by side."""

from __future__ import annotations

import hashlib
import threading

import blake3
import pytest

from storage import _hashing
from storage._hashing import PARALLEL_MIN, ContentHasher

pytestmark = pytest.mark.anyio


class _WaitsFor:
    """A hasher whose update cannot finish until ``event`` is set (or 5 s pass)."""

    def __init__(self, inner: object, event: threading.Event) -> None:
        self._inner, self._event = inner, event

    def update(self, data: bytes) -> None:
        assert self._event.wait(5), "the blocking work did not run alongside this hash"
        self._inner.update(data)  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return self._inner.hexdigest()  # type: ignore[attr-defined, no-any-return]


@pytest.mark.parametrize("algorithm", ["sha256", "blake3"])
async def test_a_large_chunk_is_written_while_both_hashes_run(
    monkeypatch: pytest.MonkeyPatch, algorithm: str
) -> None:
    """Neither hash may run before or after the write: a piece takes the slowest of the three."""
    written = threading.Event()
    new = _hashing._new

    def waiting(name: str) -> object:
        hasher = new(name)
        return _WaitsFor(hasher, written) if name == algorithm else hasher

    monkeypatch.setattr(_hashing, "_new", waiting)
    hashes = ContentHasher()
    data = b"w" * PARALLEL_MIN
    await hashes.update(data, written.set)
    assert hashes.size == len(data)
    assert hashes.sha256().hex == hashlib.sha256(data).hexdigest()
    assert hashes.blake3().hex == blake3.blake3(data).hexdigest()


class _RecordsThread:
    """A hasher that notes which thread each update ran on."""

    def __init__(self, inner: object, threads: list[int]) -> None:
        self._inner, self._threads = inner, threads

    def update(self, data: bytes) -> None:
        self._threads.append(threading.get_ident())
        self._inner.update(data)  # type: ignore[attr-defined]

    def hexdigest(self) -> str:
        return self._inner.hexdigest()  # type: ignore[attr-defined, no-any-return]


async def test_only_small_chunks_are_hashed_on_the_callers_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Up to INLINE_MAX a thread hop costs more than the hashes; past it, the loop would stall."""
    threads: list[int] = []
    new = _hashing._new
    monkeypatch.setattr(_hashing, "_new", lambda name: _RecordsThread(new(name), threads))
    hashes = ContentHasher()
    here = threading.get_ident()
    await hashes.update(b"s" * _hashing.INLINE_MAX)
    assert threads == [here, here]
    threads.clear()
    await hashes.update(b"l" * (_hashing.INLINE_MAX + 1))
    assert len(threads) == 2
    assert here not in threads
    data = b"s" * _hashing.INLINE_MAX + b"l" * (_hashing.INLINE_MAX + 1)
    assert hashes.sha256().hex == hashlib.sha256(data).hexdigest()
    assert hashes.blake3().hex == blake3.blake3(data).hexdigest()
