"""Copy every blob from one blob store to another: filesystem <-> S3, S3 -> S3.

Theory of operation. The copy is a migration tool an operator runs while the
registry keeps serving from the source, so it must be safe to stop at any
point and to run again:

1. ``plan_copy`` lists the source once. What is committed after the listing
   is left for the next run; a blob deleted since (garbage collection) is
   counted as vanished, not as a failure.
2. Each blob is looked up at the destination first (``stat``); one already
   there under the same sha256 *and* blake3 is skipped, so a second run only
   copies what the first did not.
3. Otherwise its bytes stream from ``source.read`` into a destination upload
   session named ``copy-<sha256 hex>``. The name is fixed per blob, so a copy
   interrupted mid-blob resumes where its staged bytes end (the destination
   re-hashes them) instead of starting over.
4. ``commit(expected=sha256)`` makes the destination hash the bytes itself
   and keep nothing on mismatch; the blake3 it computed in the same pass must
   equal the source's. Neither digest is ever taken on trust from the source.

Only one copy may run against a destination at a time: two writers on one
session are undefined (storage/base.py). Blobs never sit in memory whole: one
chunk per job is in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import anyio
import anyio.abc

from oci.digest import Digest
from oci.errors import DigestInvalid, RegistryError
from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound

__all__ = ["CopyOutcome", "CopyPlan", "CopyReport", "copy_blobs", "plan_copy"]

DEFAULT_JOBS = 4


class CopyOutcome(StrEnum):
    COPIED = "copied"
    SKIPPED = "skipped"  # already at the destination with both digests equal
    VANISHED = "vanished"  # deleted from the source after it was listed
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class CopyPlan:
    """The source's blobs as listed when the copy started."""

    blobs: tuple[BlobInfo, ...]

    @property
    def total_bytes(self) -> int:
        return sum(info.size for info in self.blobs)


@dataclass(slots=True)
class CopyReport:
    copied: int = 0
    skipped: int = 0
    vanished: int = 0
    bytes_copied: int = 0
    failed: list[tuple[Digest, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


async def plan_copy(source: BlobStore) -> CopyPlan:
    """One listing of the source; sizes let a progress bar show a total."""
    return CopyPlan(tuple([info async for info in source.list()]))


def upload_id_for(digest: Digest) -> str:
    """The destination session of one blob's copy: stable, so a rerun resumes it."""
    return f"copy-{digest.hex}"


async def _present(dest: BlobStore, info: BlobInfo) -> bool:
    try:
        found = await dest.stat(info.sha256)
    except BlobNotFound:
        return False
    if found.blake3 != info.blake3 or found.size != info.size:
        raise DigestInvalid(
            f"destination holds {info.sha256} with blake3 {found.blake3} and size "
            f"{found.size}; the source says {info.blake3} and {info.size}"
        )
    return True


async def _copy_one(
    source: BlobStore, dest: BlobStore, info: BlobInfo, advance: Callable[[int], object]
) -> CopyOutcome:
    if await _present(dest, info):
        advance(info.size)
        return CopyOutcome.SKIPPED
    writer = await dest.upload(upload_id_for(info.sha256))
    try:
        resumed = writer.offset
        if resumed > info.size:  # not this blob's bytes: start over
            await writer.abort()
            writer = await dest.upload(upload_id_for(info.sha256))
            resumed = 0
        advance(resumed)
        try:
            chunks = await source.read(info.sha256, resumed)
        except BlobNotFound:
            await writer.abort()
            advance(info.size - resumed)
            return CopyOutcome.VANISHED
        async for chunk in chunks:
            await writer.write(chunk)
            advance(len(chunk))
        # Hashed by the destination as the bytes arrived; mismatch keeps nothing.
        committed = await writer.commit(info.sha256)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await writer.close()  # keep what is staged: the next run resumes it
        raise
    if committed.blake3 != info.blake3:
        raise DigestInvalid(
            f"{info.sha256}: the destination computed blake3 {committed.blake3}, "
            f"the source records {info.blake3}"
        )
    return CopyOutcome.COPIED


async def copy_blobs(
    source: BlobStore,
    dest: BlobStore,
    plan: CopyPlan,
    *,
    jobs: int = DEFAULT_JOBS,
    advance: Callable[[int], object] = lambda n: None,
    done: Callable[[BlobInfo, CopyOutcome], object] = lambda info, outcome: None,
) -> CopyReport:
    """Copy ``plan``'s blobs with ``jobs`` concurrent streams.

    ``advance(n)`` is called as bytes are accounted for (copied, found staged or
    skipped), ``done`` once per blob. A blob that fails is reported and the copy
    goes on; anything but a registry error (a bug) stops it.
    """
    if jobs < 1:
        raise ValueError("jobs must be at least 1")
    report = CopyReport()
    send, receive = anyio.create_memory_object_stream[BlobInfo](jobs)

    async def worker(queue: anyio.abc.ObjectReceiveStream[BlobInfo]) -> None:
        async with queue:
            async for info in queue:
                try:
                    outcome = await _copy_one(source, dest, info, advance)
                except RegistryError as exc:
                    report.failed.append((info.sha256, exc.message))
                    outcome = CopyOutcome.FAILED
                if outcome is CopyOutcome.COPIED:
                    report.copied += 1
                    report.bytes_copied += info.size
                elif outcome is CopyOutcome.SKIPPED:
                    report.skipped += 1
                elif outcome is CopyOutcome.VANISHED:
                    report.vanished += 1
                done(info, outcome)

    async with anyio.create_task_group() as tasks:
        async with receive:
            for _ in range(jobs):
                tasks.start_soon(worker, receive.clone())
        async with send:
            for info in plan.blobs:
                await send.send(info)
    return report
