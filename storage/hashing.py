"""sha256 and blake3 of one byte stream, in one pass, off the event loop (but for small chunks).

Strategy: hashing runs at a few GB/s, so a 1 MiB chunk costs the event loop
~0.5 ms per hash if done inline; everything runs in worker threads instead.
hashlib and blake3 release the GIL while they hash, so for a large chunk the
two hashes and the driver's own blocking work for the chunk (the file
write) run in three threads at once: a piece takes as long as the slowest
of the three rather than blake3 and the write one after the other (on the
benchmark machine that moved a 1 GiB push from 167-188 to 198-202 MiB/s,
docs/PERFORMANCE.md). A small chunk would spend more on the extra thread
hops than it saves, so it goes in one thread with everything, and one of
at most 64 KiB with nothing else to do is hashed in place. Chunks are
passed as they came: no slicing, no joining, no copies.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from typing import Any, Protocol, cast

import anyio.to_thread

from oci.digest import Digest, new_hasher
from storage._tasks import concurrently

__all__ = ["INLINE_MAX", "PARALLEL_MIN", "Buffer", "ContentHasher", "hash_stream"]

# Below this a chunk is hashed in a single worker thread.
PARALLEL_MIN = 256 * 1024
# Up to this, with nothing else to run, a chunk is hashed where the caller is:
# both hashes take about 75 us for 64 KiB, less than a thread hop and back.
INLINE_MAX = 64 * 1024

Buffer = bytes | bytearray | memoryview


class _Hasher(Protocol):
    """``oci.digest.Hasher``, which hashlib and blake3 also honour for any buffer."""

    def update(self, data: Buffer, /) -> object: ...
    def hexdigest(self) -> str: ...


def _new(algorithm: str) -> _Hasher:
    return cast(_Hasher, new_hasher(algorithm))


class ContentHasher:
    """The running sha256 and blake3 of a stream, and how many bytes it has seen."""

    __slots__ = ("_blake3", "_sha256", "size")

    def __init__(self) -> None:
        self._sha256 = _new("sha256")
        self._blake3 = _new("blake3")
        self.size = 0

    async def update(self, data: Buffer, then: Callable[[], Any] | None = None) -> None:
        """Hash ``data``; run the blocking ``then`` (e.g. writing ``data``) alongside, in parallel.

        On error the hash state is undefined and the hasher must be thrown away.
        """

        if len(data) <= INLINE_MAX and then is None:
            self._sha256.update(data)
            self._blake3.update(data)
        elif len(data) < PARALLEL_MIN:

            def everything() -> None:
                self._sha256.update(data)
                self._blake3.update(data)
                if then is not None:
                    then()

            await anyio.to_thread.run_sync(everything)
        else:
            calls = [lambda: self._sha256.update(data), lambda: self._blake3.update(data)]
            if then is not None:
                calls.append(then)
            await concurrently(*calls)
        self.size += len(data)

    async def update_tail(self, buffer: bytearray, start: int) -> None:
        """Hash ``buffer[start:]`` in place, without a copy (nothing when it is empty).

        The buffer must not be resized until this returns (a resize while the
        region is exported raises BufferError).
        """
        if start < len(buffer):
            with memoryview(buffer)[start:] as tail:
                await self.update(tail)

    def sha256(self) -> Digest:
        return Digest("sha256", self._sha256.hexdigest())

    def blake3(self) -> Digest:
        return Digest("blake3", self._blake3.hexdigest())


async def hash_stream(chunks: AsyncIterable[Buffer], algorithm: str) -> Digest:
    """One digest of a stream, hashed in worker threads (sha512 at commit, verify)."""
    hasher = _new(algorithm)
    async for chunk in chunks:
        await anyio.to_thread.run_sync(hasher.update, chunk)
    return Digest(algorithm, hasher.hexdigest())
