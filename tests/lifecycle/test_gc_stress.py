"""Online GC under load: nothing referenced is ever lost, nothing unreferenced outlives its grace.

Served registry processes (one on SQLite + a data directory; two replicas on
PostgreSQL + SeaweedFS) take a concurrent workload from several clients
(``_stress``): images sharing layers, indexes, signatures, re-tags, tag and
manifest deletions, uploads left behind, blobs uploaded before their
manifests with pauses, chunked uploads split across replicas, mounts across
repositories. Meanwhile ``artifact-store gc`` runs again and again in other
processes with a short grace window, the servers run their own schedule
(so collectors contend for the lease), and legal holds are placed.

Then the clients stop, and three more runs (in the test's process), a grace
window apart, finish what retention and GC had started (an expired
manifest's links go one run later, their bytes one run after that). After
that, exactly:

- every tag the clients still own points where they left it and pulls
  completely (every manifest, child and blob, digests verified); so do
  held manifests and the signatures of surviving subjects;
- every link is named by a manifest of its repository or held, every blob
  is linked or held, and the bucket or directory holds exactly the blobs
  the metadata names, each readable.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import httpx
import psycopg
import pytest
import sqlalchemy as sa
from psycopg import sql

from bench.servers import artifact_store_command
from oci.digest import Digest
from oci.errors import ManifestUnknown
from registry.config import load_settings
from registry.lifecycle import _gc_sweep as sweep
from registry.lifecycle.gc import GcRunning, collect
from registry.meta import MetadataStore, gc_queries
from registry.meta.tables import blobs as blob_rows
from registry.meta.tables import events, manifest_references, repository_blobs
from registry.rules import Rules
from registry.service.registry import Registry
from registry.service.writes import Writes
from storage.base import BlobStore
from storage.errors import BlobNotFound
from storage.filesystem import FsBlobStore
from storage.s3 import S3BlobStore
from tests._s3 import with_prefix
from tests.http._oci import Blob
from tests.lifecycle._stress import Ledger, Stress, pull_completely
from tests.meta.conftest import PG_ADMIN_URL, postgres_admin
from tests.scaleout._cluster import started

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

GRACE = 5.0  # seconds: GC's grace window and retention's untagged grace
CLIENTS = 6
LOAD_SECONDS = 30.0
MAX_ROUNDS = 8  # grace windows for a deletion's cascade to finish
GC_PAUSE = 0.5  # between the GC command's runs


@dataclass
class Deployment:
    servers: list[str]
    store_args: list[str]  # the gc command's --database-url/--storage-url or --data-dir
    database_url: str
    store: BlobStore
    config: Path


def _config(path: Path) -> Path:
    path.write_text(
        f"gc_interval_seconds = {GRACE / 2}\n"
        f"gc_grace_seconds = {GRACE}\n"
        "[[retention.rules]]\n"
        'name = "stress"\n'
        'repository = "stress/**"\n'
        f'untagged_grace = "{int(GRACE)}s"\n'
    )
    return path


@pytest.fixture
def sqlite_fs(tmp_path: Path) -> Iterator[Deployment]:
    data = tmp_path / "data"
    config = _config(tmp_path / "config.toml")
    flags = ("--config", str(config))
    with started(tmp_path, f"sqlite:///{data / 'meta.db'}", str(data / "blobs"), flags) as servers:
        yield Deployment(
            [s.url for s in servers],
            ["--data-dir", str(data)],
            f"sqlite:///{data / 'meta.db'}",
            FsBlobStore(data / "blobs"),
            config,
        )


@pytest.fixture
def postgres_s3(tmp_path: Path, s3_url: str) -> Iterator[Deployment]:
    admin = postgres_admin()
    name = f"artifact_store_gc_stress_{secrets.token_hex(6)}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    info = psycopg.conninfo.conninfo_to_dict(PG_ADMIN_URL)
    database = (
        f"postgresql://{info.get('user', 'postgres')}@{info.get('host', '127.0.0.1')}:"
        f"{info.get('port', 5432)}/{name}"
    )
    bucket = with_prefix(s3_url, f"gc-stress-{uuid.uuid4().hex[:12]}")
    config = _config(tmp_path / "config.toml")
    flags = ("--config", str(config))
    try:
        with started(tmp_path, database, bucket, flags, flags) as servers:
            yield Deployment(
                [s.url for s in servers],
                ["--database-url", database, "--storage-url", bucket],
                database,
                S3BlobStore.from_url(bucket),
                config,
            )
    finally:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
        admin.close()


async def _gc(deployment: Deployment) -> dict[str, Any] | None:
    """One run of the command; None when another collector held the lease."""
    argv = [*artifact_store_command(), "gc", "--json", "--grace", f"{GRACE}",
            "--config", str(deployment.config), *deployment.store_args]  # fmt: skip
    done = await anyio.run_process(argv, check=False)
    if done.returncode == 3:
        return None
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    report: dict[str, Any] = json.loads(done.stdout)
    return report


async def _gc_loop(deployment: Deployment, until: float, reports: list[dict[str, Any]]) -> None:
    while time.monotonic() < until:
        report = await _gc(deployment)
        if report is not None:
            reports.append(report)
        await anyio.sleep(GC_PAUSE)


async def _holds(writes: Writes, ledger: Ledger, until: float) -> None:
    """Every few seconds, hold a manifest some client still has tagged."""
    while time.monotonic() < until and len(ledger.held) < 6:
        await anyio.sleep(3)
        if not ledger.tags:
            continue
        (repo, _tag), digest = sorted(ledger.tags.items())[secrets.randbelow(len(ledger.tags))]
        try:
            await writes.place_hold(repo, digest, "stress test", actor="test")
        except ManifestUnknown:
            continue  # deleted meanwhile
        ledger.held.add((repo, digest))


@pytest.fixture(params=["sqlite_fs", pytest.param("postgres_s3", marks=pytest.mark.postgres)])
def deployment(request: pytest.FixtureRequest) -> Deployment:
    chosen: Deployment = request.getfixturevalue(request.param)
    return chosen


@pytest.fixture
async def meta(deployment: Deployment) -> AsyncIterator[MetadataStore]:
    store = await MetadataStore.open(deployment.database_url)
    try:
        yield store
    finally:
        await store.close()


async def test_gc_under_load_never_loses_a_referenced_blob(
    deployment: Deployment, meta: MetadataStore
) -> None:
    ledger = Ledger()
    pool = [Blob(secrets.token_bytes(size)) for size in (512, 1024, 4096, 8192, 16384, 65536) * 2]
    stress = Stress(deployment.servers, ledger, GRACE, pool)
    reports: list[dict[str, Any]] = []
    until = time.monotonic() + LOAD_SECONDS
    async with anyio.create_task_group() as group:
        for cid in range(CLIENTS):
            group.start_soon(stress.client, cid, until)
        group.start_soon(_gc_loop, deployment, until, reports)
        group.start_soon(_holds, Writes(meta, Rules()), ledger, until)

    assert not ledger.failures, "\n".join([str(dict(ledger.counts)), *ledger.failures[:20]])
    # Retention's deletions, then their links, then their bytes: here, in-process.
    settings = load_settings(config_file=str(deployment.config))
    registry = Registry(meta, deployment.store, settings)
    # A deletion releases what it referenced with a fresh grace window (ADR-0007),
    # so an index, its manifests, their links and their blobs go one window after
    # another. Collect until a whole window passes in which no one (this loop or a
    # server's scheduled run) changed anything: then GC has converged.
    for _ in range(MAX_ROUNDS):
        before = await _last_seq(meta)
        await anyio.sleep(GRACE + 0.5)
        while True:
            try:
                report = await collect(registry, grace=dt.timedelta(seconds=GRACE))
                break
            except GcRunning:  # a server's scheduled run holds the lease
                await anyio.sleep(0.2)
        removed = report.manifests_deleted + report.links_removed + report.blobs_deleted
        if removed + report.orphans_removed == 0 and await _last_seq(meta) == before:
            break
    else:
        pytest.fail(f"GC had not converged after {MAX_ROUNDS} rounds")

    async with httpx.AsyncClient(timeout=60) as http:
        problems: list[str] = []
        base = deployment.servers[-1]
        for (repo, tag), digest in sorted(ledger.tags.items()):
            problems += await pull_completely(http, base, repo, tag)
            got = await http.head(f"{base}/v2/{repo}/manifests/{tag}")
            if got.headers.get("Docker-Content-Digest") != digest:
                problems.append(
                    f"{repo}:{tag} points at {got.headers.get('Docker-Content-Digest')}"
                )
        for repo, digest in sorted(ledger.held):
            problems += await pull_completely(http, base, repo, digest)
        live = set(ledger.tags.values())
        for (repo, subject), referrers in sorted(ledger.referrers.items()):
            if subject not in live:
                continue
            for referrer in sorted(referrers):
                problems += await pull_completely(http, base, repo, referrer)
        assert not problems, "\n".join(problems[:30])

    await _assert_no_garbage_and_nothing_missing(meta, deployment.store)
    # GC really worked while the clients did: in the command's runs and the servers' own.
    async with meta.reading() as conn:
        query = (
            sa.select(events.c.type, sa.func.count())
            .where(events.c.actor == "gc")
            .group_by(events.c.type)
        )
        done = {row[0]: int(row[1]) for row in (await conn.execute(query)).all()}
    for kind in ("manifest.deleted", "blob.unlinked", "blob.deleted"):
        assert done.get(kind, 0) > 0, done
    assert ledger.counts["push"] >= 10, ledger.counts  # the load did run
    print(f"\n{dict(ledger.counts)}\ncommand runs: {len(reports)}, collected by gc: {done}")


async def _last_seq(meta: MetadataStore) -> int:
    async with meta.reading() as conn:
        return int((await conn.execute(sa.select(sa.func.max(events.c.seq)))).scalar() or 0)


async def _assert_no_garbage_and_nothing_missing(meta: MetadataStore, store: BlobStore) -> None:
    anytime = dt.datetime.now(dt.UTC) + dt.timedelta(days=1)  # any age at all
    async with meta.reading() as conn:
        links = [
            sweep.LinkCandidate(repository, sha256)
            for repository, sha256 in await gc_queries.unreferenced_links(conn, anytime)
        ]
        unreferenced = await sweep._unheld(conn, links)
        assert not unreferenced, f"unreferenced links survived: {unreferenced[:10]}"
        rows = {str(r) for r in (await conn.execute(sa.select(blob_rows.c.sha256))).scalars()}
        dangling = (
            await conn.execute(
                sa.select(manifest_references.c.repository, manifest_references.c.referenced_digest)
                .where(manifest_references.c.kind.in_(("config", "layer")))
                .where(
                    ~sa.select(sa.literal(1))
                    .select_from(
                        repository_blobs.join(
                            blob_rows, blob_rows.c.sha256 == repository_blobs.c.sha256
                        )
                    )
                    .where(
                        repository_blobs.c.repository == manifest_references.c.repository,
                        sa.or_(
                            blob_rows.c.sha256 == manifest_references.c.referenced_digest,
                            blob_rows.c.blake3 == manifest_references.c.referenced_digest,
                            blob_rows.c.sha512 == manifest_references.c.referenced_digest,
                        ),
                    )
                    .exists()
                )
            )
        ).all()
        assert not dangling, f"manifests name blobs their repository lost: {dangling[:10]}"
    unlinked = [c async for c in sweep.scan_blobs(meta, anytime) if not await sweep.held(meta, c)]
    assert not unlinked, f"unlinked blobs survived: {unlinked[:10]}"
    stored = {str(info.sha256) async for info in store.list()}
    assert stored == rows, (
        f"{len(stored - rows)} stored blobs have no row, {len(rows - stored)} rows no bytes"
    )
    for sha256 in sorted(rows):
        try:
            await store.stat(Digest.parse(sha256))
        except BlobNotFound:
            pytest.fail(f"blob {sha256} lost its bytes")
