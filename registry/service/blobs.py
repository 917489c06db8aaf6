"""Blob operations: upload sessions, monolithic pushes, mounts, reads, unlinks.

Upload sessions are one mechanism for /v2/ and the native API: the session
row lives in metadata (so any process can find it), the staged bytes in the
blob store, and the hash state in whichever process wrote last (the store
re-hashes the staged prefix when another process picks the session up).
A blob is recorded in metadata only after the store committed it, so
metadata never names bytes that are not there.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import functools
import secrets
from collections.abc import AsyncIterable

import anyio

from oci.digest import Digest
from oci.errors import BlobUnknown, BlobUploadUnknown, DigestInvalid, SizeInvalid
from registry.meta.records import BlobRecord, UploadRecord
from registry.service.presence import stored
from registry.service.registry import Registry
from registry.service.upload import plan_chunk
from storage.base import BlobInfo, BlobWriter

__all__ = [
    "append",
    "cancel_upload",
    "finish_upload",
    "get_upload",
    "mount",
    "new_upload",
    "push_monolithic",
    "require_blob",
    "store_blob",
    "unlink",
    "upload_status",
]


async def new_upload(registry: Registry, repo: str, *, actor: str) -> str:
    """Open a session: a metadata row only; the store stages bytes when the first chunk comes."""
    upload_id = secrets.token_urlsafe(24)
    await registry.writes.start_upload(repo, upload_id, actor=actor)
    return upload_id


async def get_upload(
    registry: Registry, repo: str, upload_id: str, *, opened_by: str | None
) -> UploadRecord:
    """The active session ``upload_id`` of ``repo``, if ``opened_by`` opened it.

    ``opened_by`` None lets any caller use any session (auth off, or an
    admin). A session another principal opened reads as unknown, the answer
    for a session that does not exist, so its id is not confirmed to others.
    """
    upload = await registry.meta.get_upload(repo, upload_id)
    if upload is None or (opened_by is not None and upload.opened_by != opened_by):
        raise BlobUploadUnknown(
            f"upload {upload_id[:80]!r} is unknown to repository {repo}",
            detail={"upload": upload_id[:80]},
        )
    return upload


async def _record_staged(
    registry: Registry, upload: UploadRecord, staged: int, *, actor: str
) -> UploadRecord:
    """``upload`` with its offset the ``staged`` size, recorded afresh if the two differ.

    The staged bytes are the truth. They can run ahead of the recorded
    offset (the process died while a chunk arrived, after some of it was
    staged and before its offset was recorded) or, after a power loss on a
    store that lost what it had not yet synced, fall behind it. Either way
    the ``Range`` of a 416 and of a status request then tells the client
    where to resume.
    """
    if staged == upload.offset:
        return upload
    await registry.writes.progress_upload(upload.id, staged, actor=actor)
    return dataclasses.replace(upload, offset=staged)


async def upload_status(
    registry: Registry, repo: str, upload_id: str, *, opened_by: str | None, actor: str
) -> UploadRecord:
    """The session (``get_upload``), its offset what is staged."""
    upload = await get_upload(registry, repo, upload_id, opened_by=opened_by)
    staged = await registry.blobs.staged_size(upload.id)
    return await _record_staged(registry, upload, staged, actor=actor)


async def _open(registry: Registry, upload: UploadRecord, *, actor: str) -> BlobWriter:
    """The session's writer, with the recorded offset brought to the staged bytes."""
    writer = await registry.blobs.upload(upload.id)
    try:
        await _record_staged(registry, upload, writer.offset, actor=actor)
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await writer.close()
        raise
    return writer


async def _discard_chunk(registry: Registry, writer: BlobWriter, start: int) -> None:
    """After a failed chunk: close ``writer``, then cut the staged bytes back to ``start``.

    A chunk is kept whole or not at all. A body that ends short of its
    ``Content-Length`` (the client went away), one longer or shorter than
    announced, or a write that failed leaves the session where the chunk
    began, so the recorded offset stays right and the client resumes from
    there. If the close or the cut fails, what is staged is unknown: the
    next writer's ``_open`` brings the recorded offset to the staged bytes.
    """
    with contextlib.suppress(Exception):
        await writer.close()
    if writer.offset != start:
        with contextlib.suppress(Exception):
            await registry.blobs.truncate_upload(writer.upload_id, start)


async def _write_chunk(
    registry: Registry, writer: BlobWriter, body: AsyncIterable[bytes], announced: int | None
) -> None:
    """Stream ``body`` into ``writer``; on failure the chunk is dropped (``_discard_chunk``).

    A client that asks for the upload's status (GET, ``Range``) after a
    failed chunk resumes from where that chunk began:
    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-a-blob-in-chunks
    On success the caller records the offset (PATCH) or ends the session with
    the commit (PUT), so a push costs no extra metadata write.
    """
    start = writer.offset
    try:
        async for chunk in body:  # the store gathers small pieces itself
            await writer.write(chunk)
        received = writer.offset - start
        if announced is not None and received != announced:
            raise SizeInvalid(
                f"chunk held {received} bytes, the request announced {announced}",
                detail={"received": received, "announced": announced},
            )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await _discard_chunk(registry, writer, start)
        raise


async def append(
    registry: Registry,
    upload: UploadRecord,
    body: AsyncIterable[bytes],
    content_range: str | None,
    content_length: str | None,
    *,
    actor: str,
) -> int:
    """Append a chunk; returns the new offset. A wrong start is 416 and changes nothing."""
    writer = await _open(registry, upload, actor=actor)
    try:
        plan = plan_chunk(writer.offset, content_range, content_length)
        start = writer.offset
        await _write_chunk(registry, writer, body, plan.length)
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await writer.close()  # the chunk's own error is the one to report
        raise
    await writer.close()  # the chunk is durable before its offset is recorded and acknowledged
    if writer.offset != start:
        await registry.writes.progress_upload(upload.id, writer.offset, actor=actor)
    return writer.offset


async def finish_upload(
    registry: Registry,
    upload: UploadRecord,
    digest: Digest,
    body: AsyncIterable[bytes],
    content_range: str | None,
    content_length: str | None,
    *,
    actor: str,
) -> BlobInfo:
    """Append the final chunk (if any), verify the digest, commit and link the blob."""
    writer = await _open(registry, upload, actor=actor)
    try:
        plan = plan_chunk(writer.offset, content_range, content_length)
        await _write_chunk(registry, writer, body, plan.length)
        try:
            info = await writer.commit(digest)
        except DigestInvalid:
            # The store discarded the bytes; the session is over.
            await registry.writes.end_upload(upload.id, "cancelled", actor=actor)
            raise
    except BaseException:
        with contextlib.suppress(Exception):
            await writer.close()
        raise
    sha512 = digest if digest.algorithm == "sha512" else None
    # The bytes are checked under the write lock if the blob is new (GC race: ADR-0007).
    present = functools.partial(stored, registry.blobs, info, sha512)
    await registry.writes.commit_blob(
        upload.repository, info, actor=actor, sha512=sha512, present=present
    )
    await registry.writes.end_upload(upload.id, "completed", actor=actor)
    return info


async def push_monolithic(
    registry: Registry,
    repo: str,
    digest: Digest,
    body: AsyncIterable[bytes],
    content_length: str | None,
    *,
    actor: str,
) -> BlobInfo:
    upload_id = await new_upload(registry, repo, actor=actor)
    # The row just written, without reading it back: a push is on the hot path.
    now = dt.datetime.now(dt.UTC)
    upload = UploadRecord(upload_id, repo, now, now, 0, "active", actor)
    try:
        return await finish_upload(
            registry, upload, digest, body, None, content_length, actor=actor
        )
    except BaseException:
        await cancel_upload(registry, upload, actor=actor, missing_ok=True)
        raise


async def store_blob(
    registry: Registry,
    repo: str,
    body: AsyncIterable[bytes],
    digest: Digest | None = None,
    *,
    actor: str,
) -> BlobInfo:
    """Store ``body`` as a blob of ``repo`` in one step; the store hashes it as it streams.

    For a caller in the same process, which needs no session to resume: the
    bytes are staged under a fresh id with no session row and one
    ``blob.committed`` event is appended. With ``digest`` (sha256, blake3 or
    sha512) the store verifies it while committing; a mismatch raises
    DigestInvalid and keeps nothing. Staging a dead process left behind is
    removed by upload expiry (``expire_uploads``), as for native one-request
    uploads.
    """
    writer = await registry.blobs.upload(secrets.token_urlsafe(24))
    try:
        async for chunk in body:  # the store gathers small pieces itself
            await writer.write(chunk)
        info = await writer.commit(digest)
    except BaseException:
        with anyio.CancelScope(shield=True), contextlib.suppress(Exception):
            await writer.abort()
        raise
    sha512 = digest if digest is not None and digest.algorithm == "sha512" else None
    # The bytes are checked under the write lock if the blob is new (GC race: ADR-0007).
    present = functools.partial(stored, registry.blobs, info, sha512)
    await registry.writes.commit_blob(repo, info, actor=actor, sha512=sha512, present=present)
    return info


async def cancel_upload(
    registry: Registry, upload: UploadRecord, *, actor: str, missing_ok: bool = False
) -> None:
    await registry.blobs.discard_upload(upload.id)
    if await registry.meta.get_upload(upload.repository, upload.id) is None:
        if missing_ok:
            return
        raise BlobUploadUnknown(f"upload {upload.id!r} is over")
    await registry.writes.end_upload(upload.id, "cancelled", actor=actor)


async def mount(
    registry: Registry, repo: str, digest: Digest, from_repo: str, *, actor: str
) -> BlobRecord | None:
    """Link a blob from another repository; None when ``from_repo`` does not hold it."""
    if from_repo == repo:
        return await registry.meta.get_blob(repo, digest)
    return await registry.writes.mount_blob(repo, digest, from_repo, actor=actor)


async def require_blob(registry: Registry, repo: str, digest: Digest) -> BlobRecord:
    blob = await registry.meta.get_blob(repo, digest)
    if blob is None:
        raise BlobUnknown(
            f"blob {digest} is unknown to repository {repo}", detail={"digest": str(digest)}
        )
    return blob


async def unlink(registry: Registry, repo: str, digest: Digest, *, actor: str) -> None:
    await registry.writes.unlink_blob(repo, digest, actor=actor)
