"""The three passes of the scrub (``registry.lifecycle.verify``) and what they report.

The theory of operation is in ``verify.py``; here are the report's types,
shared with the repair (``_verify_repair.py``), and the ``Scan`` that fills
the report, pass by pass.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import anyio

from oci.digest import Digest
from registry.meta import verify_queries as checks
from registry.service.registry import Registry
from storage.base import BlobInfo, BlobStore
from storage.errors import BlobNotFound
from storage.hashing import ContentHasher

__all__ = [
    "DEFAULT_GRACE",
    "Finding",
    "FindingKind",
    "Scan",
    "Stored",
    "VerifyProgress",
    "VerifyReport",
    "written_at",
]

FindingKind = Literal[
    "corrupt", "missing", "orphaned", "size_mismatch", "name_mismatch", "dangling"
]

# Orphaned bytes younger than this are left alone by a repair: they may be an
# upload whose storage commit landed and whose metadata commit is on its way.
DEFAULT_GRACE = dt.timedelta(hours=1)
_BATCH = 256
_ROW_PAGE = 1000


@dataclass(frozen=True, slots=True)
class VerifyProgress:
    """Where the storage pass stands; the totals are the metadata's (orphans come on top)."""

    blobs: int
    bytes: int
    total_blobs: int
    total_bytes: int


@dataclass(slots=True)
class Finding:
    """One problem: what, which blob (its sha256, or the digest a reference names), and why."""

    kind: FindingKind
    digest: str
    detail: str
    size: int | None = None
    # Dangling references: the repository and the manifest ("" for a bare link).
    repository: str | None = None
    manifest: str | None = None
    # Missing, corrupt or orphaned blobs: "repository@digest" of manifests referencing them.
    referenced_by: list[str] = field(default_factory=list)
    # Orphaned bytes: seconds since they were written, when the store can tell.
    age_seconds: float | None = None
    # What --repair did, or why it left the finding alone; ``repaired`` if it is gone now.
    action: str | None = None
    repaired: bool = False

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v not in (None, [])}


@dataclass(slots=True)
class VerifyReport:
    blobs_recorded: int = 0  # rows in the blobs view when the scan began
    blobs_stored: int = 0  # blobs the storage listed
    blobs_hashed: int = 0
    bytes_hashed: int = 0
    rehashed: bool = True
    repaired: bool = False
    quarantine: str | None = None  # where corrupt bytes were moved, when any were
    seconds: float = 0.0
    findings: list[Finding] = field(default_factory=list)

    def of(self, kind: FindingKind) -> list[Finding]:
        return [f for f in self.findings if f.kind == kind]

    @property
    def ok(self) -> bool:
        """Nothing found at all."""
        return not self.findings

    @property
    def unrepaired(self) -> list[Finding]:
        return [f for f in self.findings if not f.repaired]

    def counts(self) -> dict[str, int]:
        kinds: tuple[FindingKind, ...] = (
            "corrupt", "missing", "orphaned", "size_mismatch", "name_mismatch", "dangling"
        )  # fmt: skip
        return {kind: len(self.of(kind)) for kind in kinds}

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "blobs_recorded": self.blobs_recorded,
            "blobs_stored": self.blobs_stored,
            "blobs_hashed": self.blobs_hashed,
            "bytes_hashed": self.bytes_hashed,
            "rehashed": self.rehashed,
            "repaired": self.repaired,
            "quarantine": self.quarantine,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "unrepaired": len(self.unrepaired),
            "findings": [f.to_json() for f in self.findings],
        }


@dataclass(slots=True)
class Stored:
    """A blob pass 1 saw: the store's view of it, its row and what its bytes hash to."""

    info: BlobInfo
    row: checks.BlobRow | None
    actual: BlobInfo | None = None  # None: not re-hashed (or vanished while read)
    corrupt: bool = False


async def rehash(registry: Registry, sha256: Digest) -> BlobInfo | None:
    """What the bytes stored under ``sha256`` hash to; None if they are gone."""
    hashes = ContentHasher()
    try:
        async for chunk in await registry.blobs.read(sha256):
            await hashes.update(chunk)
    except BlobNotFound:
        return None
    return BlobInfo(hashes.sha256(), hashes.blake3(), hashes.size)


async def run_limited(calls: Iterable[Callable[[], Awaitable[None]]], jobs: int) -> None:
    """Await ``calls`` with at most ``jobs`` at once; re-raise the first error, unwrapped."""
    pending = list(calls)
    errors: list[Exception] = []

    async def worker() -> None:
        while pending and not errors:
            call = pending.pop()
            try:
                await call()
            except Exception as exc:  # re-raised below, not as an ExceptionGroup
                errors.append(exc)

    async with anyio.create_task_group() as group:
        for _ in range(max(1, min(jobs, len(pending)))):
            group.start_soon(worker)
    if errors:
        raise errors[0]


class Scan:
    def __init__(
        self,
        registry: Registry,
        report: VerifyReport,
        progress: Callable[[VerifyProgress], object] | None,
        jobs: int,
    ) -> None:
        self.registry = registry
        self.report = report
        self.progress = progress
        self.jobs = jobs
        self.seen: set[bytes] = set()
        self.orphans: list[Stored] = []
        self.corrupt: list[Stored] = []
        self.total_bytes = 0
        self.done_bytes = 0
        self.done_blobs = 0

    def _tick(self, size: int) -> None:
        self.done_blobs += 1
        self.done_bytes += size
        if self.progress is not None:
            self.progress(
                VerifyProgress(
                    self.done_blobs,
                    self.done_bytes,
                    max(self.report.blobs_recorded, self.done_blobs),
                    max(self.total_bytes, self.done_bytes),
                )
            )

    async def storage(self) -> None:
        batch: list[BlobInfo] = []
        async for info in self.registry.blobs.list():
            batch.append(info)
            if len(batch) >= _BATCH:
                await self._batch(batch)
                batch = []
        if batch:
            await self._batch(batch)

    async def _batch(self, infos: list[BlobInfo]) -> None:
        async with self.registry.meta.reading() as conn:
            rows = await checks.blob_rows(conn, [str(i.sha256) for i in infos])
        calls = [functools.partial(self.check, i, rows.get(str(i.sha256))) for i in infos]
        await run_limited(calls, self.jobs)

    async def check(self, info: BlobInfo, row: checks.BlobRow | None) -> None:
        """Compare one stored blob with its row and, when asked, with its own bytes."""
        stored = Stored(info, row)
        if self.report.rehashed:
            stored.actual = await rehash(self.registry, info.sha256)
            if stored.actual is None:  # deleted since it was listed: pass 2 decides
                return
            self.report.blobs_hashed += 1
            self.report.bytes_hashed += stored.actual.size
        self.report.blobs_stored += 1
        self.seen.add(bytes.fromhex(info.sha256.hex))
        self._tick(info.size)
        actual = stored.actual
        if actual is not None and actual.sha256 != info.sha256:
            stored.corrupt = True
            self.corrupt.append(stored)
            expected = row.size if row is not None else info.size
            self.report.findings.append(
                Finding(
                    "corrupt",
                    str(info.sha256),
                    f"bytes hash to {actual.sha256} ({actual.size} bytes, "
                    f"{expected} expected), not to their name",
                    size=actual.size,
                )
            )
        if row is None:
            self.orphans.append(stored)
            return
        if stored.corrupt:
            return
        if row.size != info.size:
            self.report.findings.append(
                Finding(
                    "size_mismatch",
                    row.sha256,
                    f"storage holds {info.size} bytes, metadata records {row.size}",
                    size=info.size,
                )
            )
        names = {str(info.blake3)} | ({str(actual.blake3)} if actual is not None else set())
        if names != {row.blake3}:
            hashed = f", the bytes hash to {actual.blake3}" if actual is not None else ""
            self.report.findings.append(
                Finding(
                    "name_mismatch",
                    row.sha256,
                    f"metadata records {row.blake3}, storage names it {info.blake3}{hashed}",
                    size=info.size,
                )
            )

    async def metadata(self) -> None:
        """Rows whose bytes pass 1 did not see: gone, or committed after the walk passed."""
        meta = self.registry.meta
        after = ""
        while True:
            async with meta.reading() as conn:
                page = await checks.blob_page(conn, after, _ROW_PAGE)
            if not page:
                return
            after = page[-1].sha256
            for row in page:
                if bytes.fromhex(row.sha256.partition(":")[2]) in self.seen:
                    continue
                digest = Digest.parse(row.sha256)
                try:
                    info = await self.registry.blobs.stat(digest)
                except BlobNotFound:
                    await self._missing(digest)
                    continue
                await self.check(info, row)

    async def _missing(self, digest: Digest) -> None:
        async with self.registry.meta.transaction() as tx:  # GC deletes under this lock
            row = (await checks.blob_rows(tx.conn, [str(digest)])).get(str(digest))
            if row is None:
                return  # garbage collection took it meanwhile
            try:
                await self.registry.blobs.stat(digest)
            except BlobNotFound:
                pass
            else:
                return  # committed again meanwhile
            refs = await checks.referencing(tx.conn, [row])
        self.report.findings.append(
            Finding(
                "missing",
                row.sha256,
                "metadata records the blob but the storage has no bytes for it",
                size=row.size,
                referenced_by=refs.get(row.sha256, []),
            )
        )

    async def settle_orphans(self) -> None:
        """Drop candidates whose row appeared since; date and report the rest."""
        if not self.orphans:
            return
        async with self.registry.meta.reading() as conn:
            rows = await checks.blob_rows(conn, [str(o.info.sha256) for o in self.orphans])
            self.orphans = [o for o in self.orphans if str(o.info.sha256) not in rows]
            refs = await checks.referencing(
                conn,
                [checks.BlobRow(str(o.info.sha256), str(o.info.blake3), o.info.size)
                 for o in self.orphans],
            )  # fmt: skip
        now = dt.datetime.now(dt.UTC).timestamp()
        kept = []
        for orphan in self.orphans:
            modified = await written_at(self.registry.blobs, orphan.info.sha256)
            if modified is None:
                continue  # deleted since it was listed (garbage collection's sweep)
            kept.append(orphan)
            sha256 = str(orphan.info.sha256)
            self.report.findings.append(
                Finding(
                    "orphaned",
                    sha256,
                    "the storage holds bytes that no metadata row records",
                    size=orphan.info.size,
                    referenced_by=refs.get(sha256, []),
                    age_seconds=max(0.0, now - modified),
                )
            )
        self.orphans = kept

    async def references(self) -> None:
        async with self.registry.meta.reading() as conn:
            found = await checks.dangling(conn)
        self.report.findings.extend(
            Finding("dangling", d.digest, d.detail, repository=d.repository, manifest=d.manifest)
            for d in found
        )


async def written_at(store: BlobStore, sha256: Digest) -> float | None:
    """When the bytes were written (epoch seconds); None if they are gone."""
    try:
        return await store.modified(sha256)
    except BlobNotFound:
        return None
