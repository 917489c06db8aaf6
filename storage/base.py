"""The data plane's contract: a content-addressed blob store with resumable uploads.

Every driver (memory, filesystem, S3) implements ``BlobStore`` and hands out
``BlobWriter``s; the registry codes against these two protocols only. The
shared test suite in ``storage.testing`` holds each driver to the guarantees
written here. What a docstring calls *undefined* may differ between drivers
and callers must not rely on it.

Names. A blob's key is the sha256 digest of its bytes. Its blake3 digest is
computed in the same pass and resolves to the same bytes; a sha512 digest
resolves too once a commit was asked to verify one (ADR-0001). Digests passed
in are ``oci.digest.Digest`` values, so their syntax is already valid.

Upload ids are chosen by the caller (the registry mints them). A driver
accepts only ``UPLOAD_ID`` and answers ``UploadNotFound`` for anything else:
ids become file names and object keys, so ``..`` or ``/`` must never reach one.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Protocol

from oci.digest import Digest
from storage.errors import UploadNotFound

__all__ = ["UPLOAD_ID", "BlobInfo", "BlobStore", "BlobWriter", "check_range", "check_upload_id"]

UPLOAD_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True, slots=True)
class BlobInfo:
    """What the store knows of a committed blob: both of its names and its size."""

    sha256: Digest
    blake3: Digest
    size: int


def check_upload_id(upload_id: str) -> str:
    """``upload_id`` if it matches ``UPLOAD_ID``; UploadNotFound otherwise."""
    if not isinstance(upload_id, str) or not UPLOAD_ID.fullmatch(upload_id):
        raise UploadNotFound(
            f"invalid upload id {str(upload_id)[:140]!r}", detail={"upload": str(upload_id)[:140]}
        )
    return upload_id


def check_range(size: int, offset: int, length: int | None) -> int:
    """The number of bytes a read of ``offset``/``length`` returns from a blob of ``size``.

    A length running past the end is cut at the end (HTTP ranges behave the same);
    an offset outside ``[0, size]`` or a negative length is the caller's bug, so
    ValueError rather than a spec error: the HTTP edge checks client ranges
    against ``stat`` before it reads.
    """
    if offset < 0 or offset > size or (length is not None and length < 0):
        raise ValueError(f"range offset={offset} length={length} outside a blob of {size} bytes")
    return size - offset if length is None else min(length, size - offset)


class BlobWriter(Protocol):
    """One open handle on an upload session's staged bytes.

    A writer belongs to one task. Two writers open on the same upload id at the
    same time (in one process or several) is undefined: the control plane
    serialises the requests of one session. After ``commit``, ``close`` or
    ``abort`` returned, ``write`` and ``commit`` raise UploadNotFound.
    """

    upload_id: str
    offset: int
    """Bytes accepted so far, counting from the start of the session (not of this writer)."""

    async def write(self, chunk: bytes) -> None:
        """Append ``chunk`` at ``offset`` and feed it to the sha256 and blake3 hashers.

        Guaranteed: ``offset`` grows by ``len(chunk)``; the bytes are hashed
        once, as they pass, never read back. Undefined: whether the bytes are
        visible to another writer before ``close`` returns. Chunks may be of
        any size: drivers gather small ones (request-body pieces of tens of
        KiB) into pieces of megabytes before hashing and storing them, so
        callers need not. ``chunk`` must not be mutated while the call runs.
        If ``write`` raises, the writer is unusable; ``close`` then keeps
        whatever reached the backend and a later ``upload`` re-hashes it.
        """
        ...

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        """Make the staged bytes a blob, verified against ``expected``, and end the session.

        ``expected`` may be sha256, blake3 or sha512; the bytes are hashed by
        the store, never trusted from the caller. Guaranteed: the blob appears
        atomically with all of its names (a reader sees either no blob or the
        whole of it, by sha256 and by blake3, and by sha512 when that was
        ``expected``); on return it is durable. On mismatch DigestMismatch is
        raised and nothing is kept: not the blob, not the staged bytes.
        Committing bytes that are already stored succeeds, keeps one copy and
        records any new alias. The upload session is gone afterwards either
        way. Undefined: the outcome of a commit racing ``delete`` of the same
        blob (the control plane does not let garbage collection race commits).
        """
        ...

    async def close(self) -> None:
        """Release the writer and keep the staged bytes for a later ``upload(upload_id)``.

        Guaranteed: every byte ``write`` accepted is staged and durable, and
        this process remembers the hash state so resuming needs no re-read.
        Idempotent; a no-op after ``commit`` or ``abort``.
        """
        ...

    async def abort(self) -> None:
        """Release the writer and discard the session's staged bytes.

        Guaranteed: afterwards ``list_uploads`` does not show the session and
        ``upload(upload_id)`` starts from offset 0. Idempotent; safe after ``commit``.
        """
        ...


class BlobStore(Protocol):
    """A content-addressed store of immutable blobs, written through upload sessions."""

    async def upload(self, upload_id: str) -> BlobWriter:
        """Open, creating it if absent, the session ``upload_id``, positioned at its end.

        Guaranteed: the writer's ``offset`` equals the bytes staged so far and
        its hashers cover exactly those bytes. This process's cached hash state
        is used when it matches the staged size; otherwise (another process or
        replica wrote the bytes) the staged bytes are re-hashed first, streaming,
        so resuming costs one read of what is staged. An id outside
        ``UPLOAD_ID`` raises UploadNotFound and touches nothing. A new session
        shows in ``list_uploads`` even before its first byte.
        """
        ...

    async def stat(self, digest: Digest) -> BlobInfo:
        """The blob named by ``digest``: its sha256, a blake3 or a recorded sha512 alias.

        Raises BlobNotFound when no committed blob has that name; a sha512
        resolves only if some commit verified it. Never returns a partially
        written blob.
        """
        ...

    async def read(
        self, digest: Digest, offset: int = 0, length: int | None = None
    ) -> AsyncIterator[bytes]:
        """Stream ``length`` bytes (to the end when None) of the blob from ``offset``.

        Eager: BlobNotFound and ValueError (see ``check_range``) are raised by
        this call, before any byte, so a caller can still choose its response
        status. Guaranteed: the chunks concatenate to exactly the requested
        range of the committed content; memory stays bounded by one chunk.
        Undefined: the chunk sizes, and what a read in progress sees when the
        blob is deleted under it (it may finish or raise BlobNotFound).
        """
        ...

    async def modified(self, digest: Digest) -> float:
        """When the blob's bytes were written, in seconds since the epoch; BlobNotFound if none.

        Lets a sweeper leave young bytes alone: bytes a commit just stored
        may not be recorded by the control plane yet. Guaranteed: not before
        the commit that stored them began. Undefined: whether committing bytes
        that were already stored moves it forward.
        """
        ...

    async def delete(self, digest: Digest) -> None:
        """Remove the blob and all of its names; BlobNotFound if there is none.

        Guaranteed: the blob stops being visible under every name at once, as
        far as readers that start afterwards can tell.
        """
        ...

    def list(self) -> AsyncIterator[BlobInfo]:
        """Every committed blob once, in no particular order.

        Undefined: whether blobs committed or deleted while the iteration
        runs are included.
        """
        ...

    async def discard_upload(self, upload_id: str) -> None:
        """Remove the staged bytes of ``upload_id``; no error if there are none.

        Used to expire idle sessions; an invalid id is simply absent. Undefined
        while a writer of that session is open.
        """
        ...

    async def truncate_upload(self, upload_id: str, size: int) -> None:
        """Cut the staged bytes of ``upload_id`` back to their first ``size``.

        Guaranteed: afterwards ``staged_size`` is at most ``size`` and the next
        ``upload(upload_id)`` starts there with the hashes of what is left; no
        error when fewer bytes (or none) are staged, or the id is invalid.
        Used to drop a chunk that did not arrive whole. Undefined while a
        writer of that session is open.
        """
        ...

    async def staged_size(self, upload_id: str) -> int:
        """How many bytes ``upload_id`` has staged: 0 when none, or when the id is invalid.

        Guaranteed: once a writer's ``close`` returned, the offset the next
        ``upload(upload_id)`` starts at. Undefined while a writer of that
        session is open.
        """
        ...

    def list_uploads(self) -> AsyncIterator[tuple[str, int, float]]:
        """``(upload_id, staged size, mtime)`` of every session, in no particular order.

        The mtime (seconds since the epoch) is when the session last changed,
        so a sweeper can expire the idle ones with ``discard_upload``.
        Undefined: the size shown for a session whose writer is still open.
        """
        ...

    async def redirect_url(self, digest: Digest, expires_in: float) -> str | None:
        """A URL from which a client may GET the blob for ``expires_in`` seconds, or None.

        None means the store cannot serve clients directly (filesystem, memory)
        and the registry proxies the bytes. BlobNotFound if there is no blob.
        """
        ...

    async def check(self) -> None:
        """Health: return only if the store can be written now; StorageUnavailable otherwise."""
        ...
