"""Online garbage collection: reclaim what nothing references, while the registry serves.

Theory of operation (ADR-0007 has the why). One run takes the GC lease
(``_lease``: one collector at a time across replicas) and then:

0. **retention**: the retention policies' plan is applied (tags and
   manifests they expire are deleted, as ordinary ``tag.deleted`` /
   ``manifest.deleted`` events with actor ``gc``; a dry run only plans).
   What a deleted manifest referenced is *released*: its links' grace
   windows restart, so their bytes go in a later run, never in this one.
1. **links**: a (repository, blob) link that no config or layer reference
   of that repository names (by sha256, sha512 or blake3), linked longer
   ago than the grace window and not covered by a legal hold, is removed
   (``blob.unlinked``, actor ``gc``). Children of an index and referrers are
   manifests with references of their own, so their blobs are named.
2. **blobs**: a blob no repository links, untouched for the grace window
   (unlinking touches it, so this is a later run's work), loses its bytes
   and then its row (``blob.deleted``), in one locked transaction.
3. **orphans**: bytes in storage with no row, written before the grace
   window (a storage commit whose metadata commit never came, a storage
   delete cut short), are deleted.

Marking is implicit: the roots (tags, manifests retention keeps, held
content, links within their grace window) are whatever the views hold, and
a sweep only takes what the views say nothing holds, re-checked under the
metadata write lock. Upload sessions' staged bytes are not blobs and are
never looked at (upload expiry removes them).

A run can stop anywhere (crash, cancel, outage): every change it made is
committed with its event, and bytes it deleted whose commit failed leave a
row the next run deletes; bytes whose row went and whose delete did not
are orphans, collected next time.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio

from oci.errors import RegistryError
from registry.lifecycle import _gc_sweep as sweep
from registry.lifecycle import retention
from registry.lifecycle._lease import GcRunning, gc_lease
from registry.service.registry import Registry

__all__ = [
    "DEFAULT_GRACE",
    "PHASES",
    "GcProgress",
    "GcReport",
    "GcRunning",
    "PhaseReport",
    "collect",
    "run_scheduled",
]

log = logging.getLogger("artifact_store")

Phase = Literal["retention", "links", "blobs", "orphans"]
PHASES: tuple[Phase, ...] = ("retention", "links", "blobs", "orphans")
DEFAULT_GRACE = dt.timedelta(hours=1)
# Links re-checked per locked transaction: short enough that pushes waiting
# for the write lock barely notice, long enough to amortise the transaction.
_LOCKED_BATCH = 64


@dataclass(slots=True)
class PhaseReport:
    """What one phase looked at and removed (in a dry run: would remove)."""

    phase: Phase
    scanned: int = 0
    removed: int = 0
    bytes_freed: int = 0
    seconds: float = 0.0


@dataclass(frozen=True, slots=True)
class GcProgress:
    """Where a phase stands; ``total`` is None when it is not known up front."""

    phase: Phase
    scanned: int
    total: int | None
    removed: int
    bytes_freed: int


@dataclass(slots=True)
class GcReport:
    dry_run: bool
    cutoff: dt.datetime
    tags_deleted: int = 0  # by retention (its manifests are phases["retention"].removed)
    phases: dict[Phase, PhaseReport] = field(
        default_factory=lambda: {name: PhaseReport(name) for name in PHASES}
    )

    @property
    def manifests_deleted(self) -> int:
        return self.phases["retention"].removed

    @property
    def links_removed(self) -> int:
        return self.phases["links"].removed

    @property
    def blobs_deleted(self) -> int:
        return self.phases["blobs"].removed

    @property
    def orphans_removed(self) -> int:
        return self.phases["orphans"].removed

    @property
    def bytes_freed(self) -> int:
        return self.phases["blobs"].bytes_freed + self.phases["orphans"].bytes_freed

    @property
    def durations(self) -> dict[Phase, float]:
        return {name: report.seconds for name, report in self.phases.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "dry_run": self.dry_run,
            "cutoff": self.cutoff.isoformat(),
            "tags_deleted": self.tags_deleted,
            "manifests_deleted": self.manifests_deleted,
            "links_removed": self.links_removed,
            "blobs_deleted": self.blobs_deleted,
            "orphans_removed": self.orphans_removed,
            "bytes_freed": self.bytes_freed,
            "phases": {
                name: {
                    "scanned": p.scanned,
                    "removed": p.removed,
                    "bytes_freed": p.bytes_freed,
                    "seconds": round(p.seconds, 6),
                }
                for name, p in self.phases.items()
            },
        }


ProgressCallback = Callable[[GcProgress], None]
Tell = Callable[[PhaseReport, int | None], None]


async def collect(
    registry: Registry,
    *,
    dry_run: bool = False,
    grace: dt.timedelta = DEFAULT_GRACE,
    now: dt.datetime | None = None,
    progress: ProgressCallback | None = None,
) -> GcReport:
    """One garbage collection run; GcRunning if another holds the lease.

    ``now`` (default: the clock) minus ``grace`` is the cutoff: links, blobs
    and stored bytes younger than it are kept. A dry run takes no lease and
    changes nothing; its counts are what a run would remove now.
    """
    if grace < dt.timedelta(0):
        raise ValueError("the grace window cannot be negative")
    now = dt.datetime.now(dt.UTC) if now is None else now
    report = GcReport(dry_run=dry_run, cutoff=now - grace)
    if dry_run:
        await _run(registry, report, now, progress)
        return report
    async with gc_lease(registry.meta):
        await _run(registry, report, now, progress)
    log.info(
        "gc: %d manifest(s) expired, %d link(s) removed, %d blob(s) and %d orphan(s) deleted, "
        "%d bytes freed",
        report.manifests_deleted,
        report.links_removed,
        report.blobs_deleted,
        report.orphans_removed,
        report.bytes_freed,
    )
    return report


async def _run(
    registry: Registry, report: GcReport, now: dt.datetime, progress: ProgressCallback | None
) -> None:
    def tell(phase: PhaseReport, total: int | None) -> None:
        if progress is not None:
            progress(
                GcProgress(phase.phase, phase.scanned, total, phase.removed, phase.bytes_freed)
            )

    for name, step in (
        ("retention", _retention),
        ("links", _links),
        ("blobs", _blobs),
        ("orphans", _orphans),
    ):
        phase = report.phases[name]  # type: ignore[index]
        started = time.monotonic()
        await step(registry, report, phase, now, tell)
        phase.seconds = time.monotonic() - started


async def _retention(
    registry: Registry, report: GcReport, phase: PhaseReport, now: dt.datetime, tell: Tell
) -> None:
    plan = await retention.plan(registry, now=now)
    phase.scanned = len(plan.deletions)
    if report.dry_run:
        done = list(plan.deletions)
    else:
        done = (await retention.apply(registry, plan, actor=sweep.ACTOR)).deleted
    phase.removed = sum(1 for item in done if item.kind == "manifest")
    report.tags_deleted = sum(1 for item in done if item.kind == "tag")
    tell(phase, phase.scanned)


async def _links(
    registry: Registry, report: GcReport, phase: PhaseReport, now: dt.datetime, tell: Tell
) -> None:
    meta = registry.meta
    total = await sweep.count_links(meta, report.cutoff)
    tell(phase, total)
    async for scanned, candidates in sweep.scan_links(meta, report.cutoff):
        if report.dry_run:
            phase.removed += len(candidates)
        else:
            for start in range(0, len(candidates), _LOCKED_BATCH):
                batch = candidates[start : start + _LOCKED_BATCH]
                phase.removed += await sweep.remove_links(meta, batch, report.cutoff)
        phase.scanned += scanned
        tell(phase, max(total, phase.scanned))


async def _blobs(
    registry: Registry, report: GcReport, phase: PhaseReport, now: dt.datetime, tell: Tell
) -> None:
    meta = registry.meta
    total = await sweep.count_unlinked(meta, report.cutoff)
    tell(phase, total)
    batch: list[sweep.BlobCandidate] = []

    async def flush() -> None:
        for freed in await sweep.sweep_blobs(meta, registry.blobs, batch, report.cutoff):
            if freed is not None:
                phase.removed += 1
                phase.bytes_freed += freed
        batch.clear()

    async for candidate in sweep.scan_blobs(meta, report.cutoff):
        phase.scanned += 1
        if report.dry_run:
            if not await sweep.held(meta, candidate):
                phase.removed += 1
                phase.bytes_freed += candidate.size
        else:
            batch.append(candidate)
            if len(batch) == _LOCKED_BATCH:
                await flush()
        tell(phase, max(total, phase.scanned))
    if batch:
        await flush()
        tell(phase, max(total, phase.scanned))


async def _orphans(
    registry: Registry, report: GcReport, phase: PhaseReport, now: dt.datetime, tell: Tell
) -> None:
    meta, store = registry.meta, registry.blobs
    tell(phase, None)
    async for scanned, orphans in sweep.scan_orphans(meta, store, report.cutoff):
        phase.scanned += scanned
        for info in orphans:
            if report.dry_run or await sweep.delete_orphan(meta, store, info):
                phase.removed += 1
                phase.bytes_freed += info.size
        tell(phase, None)


async def run_scheduled(registry: Registry) -> None:
    """The server's GC schedule: a run every ``gc_interval_seconds`` (0: never).

    Every replica may run the schedule; the lease lets one collect at a
    time and the others skip their turn. A failed run is logged and the
    schedule goes on.
    """
    interval = registry.settings.lifecycle.gc_interval_seconds
    if interval <= 0:
        return
    grace = dt.timedelta(seconds=registry.settings.lifecycle.gc_grace_seconds)
    while True:
        # Jitter, so replicas started together do not all wake at once.
        await anyio.sleep(interval * random.uniform(0.9, 1.1))
        try:
            await collect(registry, grace=grace)
        except GcRunning:
            log.debug("gc: another process is collecting; skipping this turn")
        except RegistryError as exc:
            log.warning("gc failed: %s", exc)
        except Exception:  # a bug in a run must not take the server down with it
            log.exception("gc failed")
