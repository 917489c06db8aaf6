"""Native uploads: one-request blobs, and committing a session under one or both digests.

The session itself is the /v2/ one (``registry.service.blobs``); the native
API only adds that a client may name the blob by sha256, by blake3 or by
both, and both must hold. The store verifies the first digest while it
commits; the second is compared with what the store computed in the same
pass, and a blob that fails it is unlinked again, so the repository never
gains a blob under a name the client did not mean.

A one-request upload (``push_blob``) is what makes many small files cheap,
so it skips everything a session is for. It stages the bytes under a fresh
id with no session row (nothing can resume or expire a request that is
still running) and appends exactly one event, ``blob.committed``, instead
of a session's three, and concurrent ones share write transactions
(``_group``). Both digests are checked before anything is recorded. A
blob the repository already links is not stored again: the body is hashed
as it streams past and compared, and nothing is written.
A failed request discards what it staged. Should the process die
mid-request, though, the staged bytes have no session row: upload expiry
(``registry.service.registry.expire_uploads``) removes staging that no
active session owns once it has been idle for the session idle time.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
from collections.abc import AsyncIterable

import anyio

from oci.digest import Digest
from oci.errors import DigestInvalid, SizeInvalid, Unsupported
from registry.meta.records import UploadRecord
from registry.native import _group
from registry.service import blobs
from registry.service.presence import stored
from registry.service.registry import Registry
from storage.base import BlobInfo
from storage.hashing import ContentHasher

__all__ = ["QueryInvalid", "commit_upload", "push_blob"]


class QueryInvalid(Unsupported):
    """a query parameter is malformed"""

    # UNSUPPORTED is the spec's code for a request the registry will not
    # serve as sent; a malformed parameter is the client's error, hence 400.
    status = 400


async def commit_upload(
    registry: Registry,
    upload: UploadRecord,
    sha256: Digest | None,
    blake3: Digest | None,
    body: AsyncIterable[bytes],
    content_range: str | None,
    content_length: str | None,
    *,
    actor: str,
) -> BlobInfo:
    first = sha256 or blake3
    if first is None:
        raise DigestInvalid("committing an upload needs sha256= or blake3= (or both)")
    info = await blobs.finish_upload(
        registry, upload, first, body, content_range, content_length, actor=actor
    )
    if blake3 is not None and info.blake3 != blake3:
        await blobs.unlink(registry, upload.repository, info.sha256, actor=actor)
        raise DigestInvalid(
            f"content has digest {info.blake3}, not {blake3}",
            detail={"expected": str(blake3), "actual": str(info.blake3)},
        )
    return info


def _announced(content_length: str | None) -> int | None:
    if content_length is None:
        return None
    if not content_length.isdigit():
        raise SizeInvalid(f"malformed Content-Length {content_length!r}")
    return int(content_length)


def _check_size(received: int, announced: int | None) -> None:
    if announced is not None and received != announced:
        raise SizeInvalid(
            f"body held {received} bytes, the request announced {announced}",
            detail={"received": received, "announced": announced},
        )


def _check(info: BlobInfo, sha256: Digest | None, blake3: Digest | None) -> None:
    for wanted, got in ((sha256, info.sha256), (blake3, info.blake3)):
        if wanted is not None and wanted != got:
            raise DigestInvalid(
                f"content has digest {got}, not {wanted}",
                detail={"expected": str(wanted), "actual": str(got)},
            )


# A re-pushed body is hashed in pieces of this size, each in worker threads.
_HASH_PIECE = 1024 * 1024


async def _hash_only(body: AsyncIterable[bytes], announced: int | None) -> BlobInfo:
    """Hash a body without storing it, off the event loop (about 0.7 ms of it per MiB).

    Body pieces of tens of KiB are gathered first, so a thread hop carries a
    MiB; a small body is hashed in place (``ContentHasher.update``).
    """
    hashes, pending = ContentHasher(), bytearray()
    async for chunk in body:
        pending += chunk
        if len(pending) >= _HASH_PIECE:
            piece, pending = pending, bytearray()
            await hashes.update(piece)
    if pending:
        await hashes.update(pending)
    _check_size(hashes.size, announced)
    return BlobInfo(hashes.sha256(), hashes.blake3(), hashes.size)


async def push_blob(
    registry: Registry,
    repo: str,
    sha256: Digest | None,
    blake3: Digest | None,
    body: AsyncIterable[bytes],
    content_length: str | None,
    *,
    actor: str,
) -> tuple[BlobInfo, bool]:
    """Store ``body`` as a blob of ``repo`` in one step; returns it and whether it is new here."""
    first = sha256 or blake3
    if first is None:
        raise DigestInvalid("a one-request upload needs sha256= or blake3= (or both)")
    announced = _announced(content_length)
    linked = await registry.meta.get_blob(repo, first)
    if linked is not None:
        # Re-pushing what the repository holds: verify, keep nothing, record nothing.
        info = await _hash_only(body, announced)
        _check(info, sha256, blake3)
        return info, False
    writer = await registry.blobs.upload(secrets.token_urlsafe(24))
    try:
        async for chunk in body:  # the store gathers small pieces itself
            await writer.write(chunk)
        _check_size(writer.offset, announced)
        info = await writer.commit(first)
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await writer.abort()
        raise
    # The second digest is checked before anything is recorded: a mismatch
    # leaves at most unreferenced bytes, which garbage collection removes.
    _check(info, sha256, blake3)
    present = functools.partial(stored, registry.blobs, info, None)
    await _group.commit(registry.writes, repo, info, actor, present)
    return info, True
