"""A registry with N blobs in M manifests, a fraction of it garbage, built fast for the GC bench.

Seeding 100,000 blobs through HTTP would take longer than the benchmark it
prepares, so the state is written directly, in the forms the registry itself
reads:

- metadata: events appended through ``MetadataStore.transaction()`` in
  batches of a few thousand (one transaction each), projected by the
  registry's own projector, so the views are exactly what pushes would
  have produced;
- bytes: the filesystem driver's documented key layout (storage/filesystem.py),
  written without fsync (a benchmark's scratch directory needs no
  durability). Blobs are 64 bytes: GC cost is per blob and per row, not per
  byte.

Shape: ``manifests`` images of ``blobs // manifests`` blobs each (a config and
layers, all distinct), spread over 100 repositories, each tagged once. Every
fifth image is garbage: deleted (``manifest.deleted``) so its blobs are
released; for half of those the links are already gone too
(``blob.unlinked``), as after an earlier GC run. On top, 1% of ``blobs``
orphaned byte files (no row), dated a day back. A full GC run (grace
passed) therefore removes 20% of the blobs: half of them after removing their
links in the same run.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from oci.digest import Digest
from registry.meta import MetadataStore, tables
from registry.meta.events import (
    BlobCommitted,
    BlobUnlinked,
    Event,
    ManifestDeleted,
    ManifestPut,
    ManifestReference,
)

__all__ = ["Shape", "copy_metadata", "live_tags", "seed_blobs", "seed_metadata"]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"
_REPOSITORIES = 100
_BATCH = 2000  # events per transaction
_ORPHAN_AGE = 86400.0


@dataclass(frozen=True)
class Shape:
    blobs: int
    manifests: int

    @property
    def per_manifest(self) -> int:
        return max(2, self.blobs // self.manifests)

    @property
    def orphans(self) -> int:
        return max(1, self.blobs // 100)

    def garbage(self, m: int) -> bool:
        return m % 5 == 0

    def unlinked(self, m: int) -> bool:
        """Garbage whose links an earlier run already removed."""
        return m % 10 == 0

    def repository(self, m: int) -> str:
        return f"bench/r{m % _REPOSITORIES:03d}"

    @property
    def expected_blobs_deleted(self) -> int:
        return sum(1 for m in range(self.manifests) if self.garbage(m)) * self.per_manifest

    @property
    def expected_links_removed(self) -> int:
        return (
            sum(1 for m in range(self.manifests) if self.garbage(m) and not self.unlinked(m))
            * self.per_manifest
        )


def _content(index: int) -> bytes:
    return hashlib.sha512(f"gc bench blob {index}".encode()).digest()[:64]


def _names(data: bytes) -> tuple[Digest, Digest]:
    return Digest.compute(data), Digest.compute(data, "blake3")


def _write_blob(root: Path, data: bytes, sha256: Digest, blake3: Digest) -> Path:
    """One blob in the filesystem driver's layout (storage/filesystem.py's key tree)."""
    directory = root / "blobs" / "sha256" / sha256.hex[:2] / sha256.hex
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "digests").write_text(f"{blake3}\n")
    alias = root / "blobs" / "blake3" / blake3.hex[:2] / blake3.hex
    alias.parent.mkdir(parents=True, exist_ok=True)
    alias.write_text(f"{sha256}\n")
    data_path = directory / "data"
    data_path.write_bytes(data)  # last: ``data`` appearing is the commit point
    return data_path


def seed_blobs(root: Path, shape: Shape) -> float:
    """Every image blob and the orphans, as files; returns the seconds taken."""
    started = time.perf_counter()
    (root / "uploads").mkdir(parents=True, exist_ok=True)
    for index in range(shape.manifests * shape.per_manifest):
        data = _content(index)
        _write_blob(root, data, *_names(data))
    old = time.time() - _ORPHAN_AGE
    for index in range(shape.orphans):
        data = _content(-1 - index)
        path = _write_blob(root, data, *_names(data))
        os.utime(path, (old, old))
    return time.perf_counter() - started


def _manifest(blobs: list[tuple[Digest, int]]) -> bytes:
    config, *layers = blobs
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": _CONFIG, "digest": str(config[0]), "size": config[1]},
        "layers": [{"mediaType": _LAYER, "digest": str(d), "size": s} for d, s in layers],
    }
    return json.dumps(document, separators=(",", ":")).encode()


def _events(shape: Shape) -> Iterator[Event]:
    per = shape.per_manifest
    for m in range(shape.manifests):
        repo = shape.repository(m)
        blobs: list[tuple[Digest, int]] = []
        for index in range(m * per, (m + 1) * per):
            data = _content(index)
            sha256, blake3 = _names(data)
            blobs.append((sha256, len(data)))
            yield BlobCommitted(repo, sha256, blake3, len(data))
        body = _manifest(blobs)
        digest = Digest.compute(body)
        references = (
            ManifestReference("config", blobs[0][0]),
            *(ManifestReference("layer", d) for d, _ in blobs[1:]),
        )
        yield ManifestPut(
            repository=repo,
            digest=digest,
            media_type=OCI_MANIFEST,
            body=body,
            tags=(f"v{m}",),
            artifact_type=None,
            subject=None,
            annotations={},
            references=references,
        )
        if shape.garbage(m):
            yield ManifestDeleted(repo, digest)
            if shape.unlinked(m):
                for sha256, _ in blobs:
                    yield BlobUnlinked(repo, sha256)


async def seed_metadata(url: str, shape: Shape) -> tuple[int, float]:
    """Append the shape's events to a fresh database; returns (events, seconds)."""
    started = time.perf_counter()
    meta = await MetadataStore.open(url)
    count = 0
    try:
        events = _events(shape)
        while True:
            batch = [event for _, event in zip(range(_BATCH), events, strict=False)]
            if not batch:
                break
            async with meta.transaction() as tx:
                for event in batch:
                    await tx.append_event(event, "bench-seed")
            count += len(batch)
    finally:
        await meta.close()
    return count, time.perf_counter() - started


async def copy_metadata(source_url: str, target_url: str) -> tuple[int, float]:
    """Copy every metadata row (log and views) into a fresh database; returns (rows, seconds).

    Seeding PostgreSQL event by event would take as long again as SQLite;
    the rows the projector wrote there are the same rows on any backend, so
    they are copied in bulk, parents first, and the planner's statistics
    refreshed, as they would be on a database that grew to this size.
    """
    started = time.perf_counter()
    source, target = await MetadataStore.open(source_url), await MetadataStore.open(target_url)
    rows = 0
    try:
        async with source.reading() as read, target.transaction() as tx:
            for table in tables.metadata.sorted_tables:
                result = await read.execute(sa.select(table))
                while batch := result.fetchmany(_BATCH):
                    await tx.conn.execute(sa.insert(table), [dict(r._mapping) for r in batch])
                    rows += len(batch)
        if target.dialect == "postgresql":
            async with target.reading() as conn:
                await conn.execute(sa.text("ANALYZE"))
                await conn.commit()
    finally:
        await source.close()
        await target.close()
    return rows, time.perf_counter() - started


def live_tags(shape: Shape) -> list[tuple[str, str]]:
    """(repository, tag) of every image GC must keep: what the load loop pulls."""
    return [(shape.repository(m), f"v{m}") for m in range(shape.manifests) if not shape.garbage(m)]
