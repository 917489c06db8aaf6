"""What ``verify --repair`` does about each finding (docs/verify.md, "Repair policy").

The one rule: a repair never deletes bytes that hash to their name and that
a manifest references. Within it:

- corrupt bytes (they do not hash to their sha256 name) are copied to the
  quarantine directory, re-hashed as they are copied, and only then deleted
  from the store; if the copy hashes to the name after all (a transient read
  error), nothing is deleted. A blob the metadata still records is then
  missing, and handled as such;
- a missing blob that no manifest references is forgotten: unlinked from
  every repository and its row removed (``blob.unlinked``, ``blob.deleted``),
  so ``HEAD`` answers 404 and the next push uploads it again. One that a
  manifest references, or that a legal hold covers, is left and reported:
  only a new upload of the same bytes can bring it back;
- orphaned bytes that a manifest references and that hash to their names are
  recorded again (``blob.committed`` into each referencing repository), which
  heals those references; unreferenced orphaned bytes older than the grace
  window are deleted (``blob.deleted``), younger ones are left;
- size and name mismatches and dangling references are reported only: the
  bytes or the rows are right or wrong in ways no automatic fix can tell.

Every metadata change and every deletion of bytes runs under the write lock
after re-checking its premise there, as garbage collection does (ADR-0007):
a commit of the same blob either lands first (and the repair sees the row
and stands down) or after (and ``commit_blob`` re-checks the bytes).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
from pathlib import Path

import anyio
import anyio.to_thread

from oci.digest import Digest
from registry.lifecycle._verify_scan import Finding, Scan, Stored, VerifyReport, written_at
from registry.meta import holds
from registry.meta import verify_queries as checks
from registry.meta.events import BlobCommitted, BlobDeleted, BlobUnlinked
from registry.service.registry import Registry
from storage.errors import BlobNotFound
from storage.hashing import ContentHasher

__all__ = ["repair"]


async def repair(
    registry: Registry,
    report: VerifyReport,
    scan: Scan,
    *,
    grace: dt.timedelta,
    quarantine: Path,
    actor: str,
) -> None:
    report.repaired = True
    corrupt = {f.digest: f for f in report.of("corrupt")}
    for stored in scan.corrupt:
        finding = corrupt[str(stored.info.sha256)]
        path = await _quarantine(registry, stored, quarantine)
        if path is None:
            finding.action = "left: the bytes read back intact (a transient read error?)"
            continue
        report.quarantine = str(quarantine)
        finding.repaired = True
        finding.action = f"moved to {path}"
        if stored.row is not None:  # the row stays: the blob is missing now
            missing = Finding(
                "missing",
                stored.row.sha256,
                "its corrupt bytes were quarantined",
                size=stored.row.size,
            )
            report.findings.append(missing)
    for finding in report.of("missing"):
        finding.action, finding.repaired = await _missing(registry, finding, actor)
    orphans = {str(o.info.sha256): o for o in scan.orphans if not o.corrupt}
    for finding in report.of("orphaned"):
        if finding.digest in corrupt:
            finding.action, finding.repaired = "its bytes were quarantined", True
            continue
        finding.action, finding.repaired = await _orphan(
            registry, orphans[finding.digest], grace, actor
        )
    if any(f.kind == "dangling" for f in report.findings):
        async with registry.meta.reading() as conn:
            still = {(d.digest, d.repository, d.manifest) for d in await checks.dangling(conn)}
        for finding in report.of("dangling"):
            if (finding.digest, finding.repository, finding.manifest) not in still:
                finding.action, finding.repaired = (
                    "resolved: no longer dangling after the repair",
                    True,
                )
            else:
                finding.action = "left: reported only"
    for finding in report.findings:
        if finding.action is None:
            finding.action = "left: reported only"


async def _quarantine(registry: Registry, stored: Stored, directory: Path) -> Path | None:
    """Copy the bytes out, then delete them; None (nothing deleted) if they are intact now."""
    sha256 = stored.info.sha256
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    data = directory / f"{sha256.hex}.{stamp}.data"
    await anyio.to_thread.run_sync(lambda: directory.mkdir(parents=True, exist_ok=True))
    hashes = ContentHasher()
    try:
        chunks = await registry.blobs.read(sha256)
    except BlobNotFound:
        return None
    async with await anyio.open_file(data, "xb") as out:
        async for chunk in chunks:
            await hashes.update(chunk)
            await out.write(chunk)
        await out.flush()
        await anyio.to_thread.run_sync(os.fsync, out.wrapped.fileno())
    if hashes.sha256() == sha256:
        await anyio.to_thread.run_sync(data.unlink)
        return None
    row = stored.row
    sidecar = {
        "sha256": str(sha256),
        "recorded_blake3": row.blake3 if row is not None else None,
        "recorded_size": row.size if row is not None else None,
        "stored_blake3": str(stored.info.blake3),
        "stored_size": stored.info.size,
        "actual_sha256": str(hashes.sha256()),
        "actual_blake3": str(hashes.blake3()),
        "actual_size": hashes.size,
        "quarantined_at": dt.datetime.now(dt.UTC).isoformat(),
        "storage": repr(registry.blobs),
    }
    text = json.dumps(sidecar, indent=2) + "\n"
    await anyio.Path(f"{str(data)[: -len('.data')]}.json").write_text(text)
    with contextlib.suppress(BlobNotFound):  # else deleted meanwhile: the copy is all there is
        await registry.blobs.delete(sha256)
    return data


async def _missing(registry: Registry, finding: Finding, actor: str) -> tuple[str, bool]:
    digest = Digest.parse(finding.digest)
    async with registry.meta.transaction() as tx:
        row = (await checks.blob_rows(tx.conn, [finding.digest])).get(finding.digest)
        if row is None:
            return "gone: its row was removed meanwhile", True
        try:
            await registry.blobs.stat(digest)
        except BlobNotFound:
            pass
        else:
            return "restored meanwhile: the bytes are back", True
        refs = (await checks.referencing(tx.conn, [row])).get(row.sha256, [])
        if refs:
            finding.referenced_by = refs
            return (
                f"left: {len(refs)} manifest(s) reference it; upload the same bytes again "
                "to restore it",
                False,
            )
        repositories = await checks.linking_repositories(tx.conn, row.sha256)
        for repository in repositories:
            if (await holds.protected(tx.conn, repository)).covers_blob(row.sha256):
                return f"left: a legal hold in {repository} covers it", False
        for repository in repositories:
            await tx.append_event(BlobUnlinked(repository, digest), actor)
        await tx.append_event(BlobDeleted(digest, row.size), actor)
    return (
        f"forgotten: unlinked from {len(repositories)} repositories and its row removed; "
        "the next push uploads it again",
        True,
    )


async def _orphan(
    registry: Registry, stored: Stored, grace: dt.timedelta, actor: str
) -> tuple[str, bool]:
    info, actual = stored.info, stored.actual
    sha256 = str(info.sha256)
    async with registry.meta.transaction() as tx:
        if await checks.blob_rows(tx.conn, [sha256]):
            return "recorded meanwhile (an upload finished)", True
        row = checks.BlobRow(sha256, str(info.blake3), info.size)
        refs = (await checks.referencing(tx.conn, [row])).get(sha256, [])
        if refs:
            if actual is None:
                return (
                    "left: manifests reference it; verify without --no-rehash to re-record it",
                    False,
                )
            if actual.blake3 != info.blake3:
                return "left: manifests reference it but its blake3 name is wrong", False
            repositories = sorted({ref.rpartition("@")[0] for ref in refs})
            for repository in repositories:
                event = BlobCommitted(repository, info.sha256, info.blake3, info.size)
                await tx.append_event(event, actor)
            return (
                f"re-recorded in {', '.join(repositories)}: "
                "the manifests referencing it pull again",
                True,
            )
        modified = await written_at(registry.blobs, info.sha256)
        if modified is None:
            return "gone: deleted meanwhile", True
        age = dt.datetime.now(dt.UTC).timestamp() - modified
        if age < grace.total_seconds():
            return f"left: written {age:.0f} s ago, inside the {grace} grace window", False
        try:
            await registry.blobs.delete(info.sha256)
        except BlobNotFound:
            return "gone: deleted meanwhile", True
        await tx.append_event(BlobDeleted(info.sha256, info.size), actor)
    return "deleted", True
