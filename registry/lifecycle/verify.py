"""Scrub: re-hash every stored blob and check the metadata against the storage.

Theory of operation. ``verify`` makes three passes and changes nothing:

1. Storage. ``BlobStore.list()`` is walked in batches; each batch's rows
   are fetched from the ``blobs`` view in one query. Every stored blob is
   re-hashed (sha256 and blake3 in one streaming read, in worker threads:
   ``storage.hashing.ContentHasher``), so memory stays at one chunk per
   blob in flight whatever the blob sizes. Bytes that do not hash to their
   sha256 name are *corrupt*; bytes with no row are *orphaned*; a stored size
   or blake3 name that differs from the row is a *size* or *name mismatch*.
   The sha256 of every blob seen is kept (32 bytes each) for pass 2.
2. Metadata. The ``blobs`` view is walked in sha256 order; a row whose blob
   pass 1 did not see is stat'ed, and one with no bytes is confirmed
   *missing* under the write lock, where garbage collection deletes bytes
   and rows together (``registry.lifecycle._gc_sweep``), so a blob GC is taking
   away at that moment is not mistaken for a lost one.
3. References. Anti-joins find *dangling* references: blob links naming no
   blob, config/layer references to blobs their repository does not hold,
   and index children that are not in the repository.

The store keeps serving meanwhile. A blob committed while the walk runs may
be seen by neither pass (``list`` leaves that undefined) and is simply not
checked; an orphan candidate is re-checked against the view at the end, so
an upload whose bytes landed before its row is not reported.

``repair=True`` then applies the policy in ``_verify_repair`` (docs/verify.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import anyio

from registry.lifecycle import _verify_repair
from registry.lifecycle._verify_scan import (
    DEFAULT_GRACE,
    Finding,
    FindingKind,
    Scan,
    VerifyProgress,
    VerifyReport,
)
from registry.meta import verify_queries
from registry.service.registry import Registry

__all__ = [
    "DEFAULT_GRACE",
    "Finding",
    "FindingKind",
    "VerifyProgress",
    "VerifyReport",
    "verify",
]


async def verify(
    registry: Registry,
    *,
    repair: bool = False,
    progress: Callable[[VerifyProgress], object] | None = None,
    rehash: bool = True,
    grace: dt.timedelta = DEFAULT_GRACE,
    quarantine: Path | None = None,
    jobs: int = 4,
    actor: str = "verify",
) -> VerifyReport:
    """Check every blob and reference; with ``repair``, apply the repair policy.

    ``quarantine`` is the directory corrupt bytes are moved to (default:
    ``<data-dir>/quarantine``); ``grace`` protects young orphaned bytes;
    ``jobs`` blobs are re-hashed at once.
    """
    started = anyio.current_time()
    report = VerifyReport(rehashed=rehash)
    async with registry.meta.reading() as conn:
        report.blobs_recorded, total_bytes = await verify_queries.totals(conn)
    scan = Scan(registry, report, progress, jobs)
    scan.total_bytes = total_bytes
    await scan.storage()
    await scan.metadata()
    await scan.settle_orphans()
    await scan.references()
    if repair:
        data_dir = await anyio.Path(registry.settings.data_dir).absolute()
        where = quarantine or Path(data_dir) / "quarantine"
        await _verify_repair.repair(
            registry, report, scan, grace=grace, quarantine=where, actor=actor
        )
    report.findings.sort(key=lambda f: (f.kind, f.digest, f.repository or "", f.manifest or ""))
    report.seconds = anyio.current_time() - started
    return report


def summary_lines(report: VerifyReport) -> list[str]:
    """The human summary the CLI prints."""
    counts = report.counts()
    lines = [
        f"checked {report.blobs_stored} stored blobs against {report.blobs_recorded} recorded"
        + (
            f"; re-hashed {report.blobs_hashed} ({report.bytes_hashed} bytes)"
            if report.rehashed
            else "; sizes and names only (--no-rehash)"
        )
        + f" in {report.seconds:.1f} s",
        ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in counts.items()),
    ]
    if report.repaired:
        fixed = sum(1 for f in report.findings if f.repaired)
        lines.append(f"repaired {fixed}, left {len(report.unrepaired)}")
    return lines
