"""Online garbage collection: what it removes, what it keeps, and its races, one by one.

An in-process registry (the real routes, services and ``MetadataStore`` over
``httpx.ASGITransport``) on SQLite and on PostgreSQL metadata, with the
filesystem driver, and with the S3 driver against SeaweedFS. Time is moved
by handing ``collect`` a later ``now`` rather than by sleeping; each race
of ADR-0007 is played in a fixed order by calling the sweep's steps (scan,
then locked re-check) around the racing request.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import anyio
import httpx
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from oci.digest import Digest
from registry.cli import app as cli_app
from registry.config import Settings
from registry.http.app import create_app
from registry.lifecycle import _gc_sweep as sweep
from registry.lifecycle._lease import GcRunning, gc_lease
from registry.lifecycle.gc import GcReport, collect, run_scheduled
from registry.lifecycle.gc_commands import parse_duration
from registry.lifecycle.policy import parse_policy
from registry.meta import MetadataStore
from registry.meta.tables import blobs as blob_rows
from registry.meta.tables import events
from registry.service import blobs as blob_service
from registry.service.registry import Registry, open_registry
from storage.base import BlobInfo, BlobStore, BlobWriter
from storage.errors import BlobNotFound, StorageUnavailable
from storage.filesystem import FsBlobStore
from storage.s3 import S3BlobStore
from tests.http._oci import (
    Blob,
    Pushed,
    error_code,
    image,
    index,
    push_blob,
    push_manifest,
    random_blob,
)
from tests.meta.conftest import UrlFactory, make_url
from tests.s3.conftest import s3_store, s3_store_url, s3_url

__all__ = ["make_url", "s3_store", "s3_store_url", "s3_url"]  # fixtures used here

pytestmark = pytest.mark.anyio

HOUR = dt.timedelta(hours=1)
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
# Untagged manifests go an hour after they lost their last tag; tags never expire.
UNTAGGED_RULE = {
    "retention": {"rules": [{"name": "all", "repository": "**", "untagged_grace": "1h"}]}
}


class HookedStore:
    """A real store whose writers run ``after_commit`` between the storage commit
    and the metadata commit of an upload: where GC can strike mid-upload."""

    def __init__(self, inner: BlobStore) -> None:
        self.inner = inner
        self.after_commit: Callable[[], Awaitable[object]] | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def upload(self, upload_id: str) -> BlobWriter:
        return cast(BlobWriter, _HookedWriter(await self.inner.upload(upload_id), self))


class _HookedWriter:
    def __init__(self, inner: BlobWriter, store: HookedStore) -> None:
        self._inner, self._store = inner, store
        self.upload_id = inner.upload_id

    @property
    def offset(self) -> int:
        return self._inner.offset

    async def write(self, chunk: bytes) -> None:
        await self._inner.write(chunk)

    async def commit(self, expected: Digest | None = None) -> BlobInfo:
        info = await self._inner.commit(expected)
        if self._store.after_commit is not None:
            await self._store.after_commit()
        return info

    async def close(self) -> None:
        await self._inner.close()

    async def abort(self) -> None:
        await self._inner.abort()


@dataclass
class Env:
    client: httpx.AsyncClient
    registry: Registry
    store: HookedStore

    @property
    def meta(self) -> MetadataStore:
        return self.registry.meta

    async def gc(self, *, hours: float = 0, grace: dt.timedelta = HOUR, **kw: Any) -> GcReport:
        """A run as if ``hours`` had passed."""
        now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        return await collect(self.registry, grace=grace, now=now, **kw)

    async def has_row(self, blob: Blob) -> bool:
        async with self.meta.reading() as conn:
            query = sa.select(blob_rows.c.sha256).where(blob_rows.c.sha256 == str(blob.digest))
            return (await conn.execute(query)).first() is not None

    async def stored(self, blob: Blob) -> bool:
        try:
            await self.store.inner.stat(blob.digest)
        except BlobNotFound:
            return False
        return True

    async def event_count(self) -> int:
        async with self.meta.reading() as conn:
            return int(
                (await conn.execute(sa.select(sa.func.count()).select_from(events))).scalar_one()
            )

    async def pulls(self, repo: str, reference: str) -> None:
        """The manifest and every blob it names (children too) download and verify."""
        accept = ",".join(
            [
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.oci.image.index.v1+json",
            ]
        )
        response = await self.client.get(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept}
        )
        assert response.status_code == 200, response.text
        document = response.json()
        for child in document.get("manifests", []):
            await self.pulls(repo, child["digest"])
        for desc in [document.get("config"), *document.get("layers", [])]:
            if desc is None:
                continue
            blob = await self.client.get(f"/v2/{repo}/blobs/{desc['digest']}")
            assert blob.status_code == 200, blob.text
            assert str(Digest.compute(blob.content)) == desc["digest"]


async def _env(meta: MetadataStore, store: BlobStore, settings: Settings) -> AsyncIterator[Env]:
    hooked = HookedStore(store)
    registry = Registry(meta, cast(BlobStore, hooked), settings)
    app = create_app(settings, registry)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as c:
            yield Env(c, registry, hooked)
    finally:
        await meta.close()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path))


@pytest.fixture
async def env(make_url: UrlFactory, tmp_path: Path, settings: Settings) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    async for value in _env(meta, FsBlobStore(tmp_path / "blobs"), settings):
        yield value


async def push_image(env: Env, repo: str, tag: str | None, *layers: Blob, **kw: Any) -> Pushed:
    config = Blob(b'{"architecture":"amd64","os":"linux"}')
    for blob in (config, *layers):
        await push_blob(env.client, repo, blob)
    return await push_manifest(env.client, repo, tag, image(config, list(layers), **kw))


# -- what is removed, and when --------------------------------------------------------


async def test_unreferenced_blob_is_removed_after_the_grace_window_not_before(env: Env) -> None:
    layer = random_blob(2048)
    await push_blob(env.client, "gc/app", layer)  # uploaded, never referenced

    early = await env.gc(hours=0.5)
    assert (early.links_removed, early.blobs_deleted) == (0, 0)
    assert await env.has_row(layer)
    assert (await env.client.head(f"/v2/gc/app/blobs/{layer.digest}")).status_code == 200

    late = await env.gc(hours=2)
    assert (late.links_removed, late.blobs_deleted, late.bytes_freed) == (1, 1, layer.size)
    assert (await env.client.head(f"/v2/gc/app/blobs/{layer.digest}")).status_code == 404
    assert not await env.has_row(layer)
    assert not await env.stored(layer)
    recorded = await env.meta.events(0, 100, types=["blob.unlinked", "blob.deleted"])
    assert [(e.type, e.actor) for e in recorded] == [
        ("blob.unlinked", "gc"),
        ("blob.deleted", "gc"),
    ]


async def test_unlinking_restarts_the_blob_s_own_grace(env: Env) -> None:
    """A link goes in one run; the bytes one grace window after the last link went."""
    layer = random_blob()
    await push_blob(env.client, "gc/app", layer)
    first = await env.gc(grace=dt.timedelta(0))
    assert (first.links_removed, first.blobs_deleted) == (1, 0)
    assert await env.stored(layer)
    second = await env.gc(grace=dt.timedelta(0))
    assert (second.links_removed, second.blobs_deleted) == (0, 1)
    assert not await env.stored(layer)


async def test_tagged_and_digest_only_manifests_keep_their_blobs(env: Env) -> None:
    tagged, untagged = random_blob(), random_blob()
    await push_image(env, "gc/app", "v1", tagged)
    pushed = await push_image(env, "gc/app", None, untagged)
    report = await env.gc(hours=48)
    assert (report.links_removed, report.blobs_deleted, report.orphans_removed) == (0, 0, 0)
    await env.pulls("gc/app", "v1")
    await env.pulls("gc/app", str(pushed.digest))


async def test_a_blob_named_by_blake3_or_sha512_counts_as_referenced(env: Env) -> None:
    config, layer = Blob(b"{}"), random_blob()
    await push_blob(env.client, "gc/names", config)
    await push_blob(env.client, "gc/names", layer)
    blake3 = Digest.compute(layer.data, "blake3")
    document = image(config, [layer])
    document["layers"][0]["digest"] = str(blake3)
    await push_manifest(env.client, "gc/names", "v1", document)
    sha512_blob = random_blob()
    sha512 = Digest.compute(sha512_blob.data, "sha512")
    response = await env.client.post(
        "/v2/gc/names/blobs/uploads/", params={"digest": str(sha512)}, content=sha512_blob.data
    )
    assert response.status_code == 201, response.text
    other = image(config, [sha512_blob])
    other["layers"][0]["digest"] = str(sha512)
    await push_manifest(env.client, "gc/names", "v2", other)

    report = await env.gc(hours=48)
    assert (report.links_removed, report.blobs_deleted) == (0, 0)
    for digest in (blake3, sha512):
        assert (await env.client.get(f"/v2/gc/names/blobs/{digest}")).status_code == 200


async def test_a_blob_shared_by_repositories_lives_while_any_references_it(env: Env) -> None:
    shared = random_blob(4096)
    first = await push_image(env, "gc/a", "v1", shared)
    await push_image(env, "gc/b", "v1", shared)
    await push_blob(env.client, "gc/c", shared)  # linked, referenced by nothing in gc/c

    report = await env.gc(hours=2)
    assert (report.links_removed, report.blobs_deleted) == (1, 0)
    assert (await env.client.head(f"/v2/gc/c/blobs/{shared.digest}")).status_code == 404
    await env.pulls("gc/a", "v1")

    assert (await env.client.delete(f"/v2/gc/a/manifests/{first.digest}")).status_code == 202
    report = await env.gc(hours=2)
    assert report.blobs_deleted == 0  # gc/b still references it
    assert await env.stored(shared)
    await env.pulls("gc/b", "v1")

    response = await env.client.get("/v2/gc/b/manifests/v1")
    assert (
        await env.client.delete(f"/v2/gc/b/manifests/{response.headers['Docker-Content-Digest']}")
    ).status_code == 202
    report = await env.gc(hours=2)
    assert report.blobs_deleted >= 1
    assert not await env.stored(shared)


async def test_held_content_is_kept(env: Env) -> None:
    # A whole-repository hold keeps even links nothing references.
    loose = random_blob()
    await push_blob(env.client, "gc/held", loose)
    hold = await env.meta.place_hold("gc/held", None, "litigation", actor="legal")
    # A held manifest keeps a layer whose link an explicit DELETE removed before the hold.
    layer = random_blob()
    pushed = await push_image(env, "gc/evidence", "v1", layer)
    assert (await env.client.delete(f"/v2/gc/evidence/blobs/{layer.digest}")).status_code == 202
    evidence = await env.meta.place_hold("gc/evidence", str(pushed.digest), "audit", actor="legal")

    dry = await env.gc(hours=48, dry_run=True)
    report = await env.gc(hours=48)
    assert (dry.links_removed, dry.blobs_deleted) == (0, 0)
    assert (report.links_removed, report.blobs_deleted) == (0, 0)
    assert await env.stored(loose)
    assert await env.stored(layer)

    await env.meta.release_hold(hold.id, "settled", actor="legal")
    await env.meta.release_hold(evidence.id, "closed", actor="legal")
    report = await env.gc(hours=48)
    assert (report.links_removed, report.blobs_deleted) == (1, 2)
    assert not await env.stored(loose)
    assert not await env.stored(layer)


async def test_dry_run_changes_nothing(env: Env) -> None:
    garbage, kept = random_blob(100), random_blob(200)
    await push_blob(env.client, "gc/app", garbage)
    await push_image(env, "gc/app", "v1", kept)
    await push_blob(env.client, "gc/other", random_blob(300))
    unlinked = await env.gc(grace=dt.timedelta(0))  # the links go; the blobs' grace restarts
    assert (unlinked.links_removed, unlinked.blobs_deleted) == (2, 0)
    orphan = await _orphan(env.store.inner, b"orphaned bytes")
    before = await env.event_count()

    report = await env.gc(hours=48, dry_run=True)
    assert report.dry_run
    assert (report.blobs_deleted, report.orphans_removed) == (2, 1)
    assert report.bytes_freed == 100 + 300 + orphan.size
    assert await env.event_count() == before
    assert await env.stored(garbage)
    await env.store.inner.stat(orphan.sha256)

    real = await env.gc(hours=48)
    assert (real.blobs_deleted, real.orphans_removed, real.bytes_freed) == (
        report.blobs_deleted,
        report.orphans_removed,
        report.bytes_freed,
    )


async def _orphan(store: BlobStore, data: bytes, upload_id: str = "orphan") -> BlobInfo:
    """Bytes committed to storage whose metadata commit never came."""
    writer = await store.upload(upload_id)
    await writer.write(data)
    return await writer.commit()


async def test_orphaned_bytes_go_after_the_grace_window_and_staged_uploads_stay(env: Env) -> None:
    orphan = await _orphan(env.store.inner, b"no row names these bytes")
    staged = await env.store.inner.upload("still-uploading")
    await staged.write(b"half of a blob")
    await staged.close()

    young = await env.gc(hours=0.5)
    assert young.orphans_removed == 0
    await env.store.inner.stat(orphan.sha256)

    report = await env.gc(hours=48)
    assert (report.orphans_removed, report.bytes_freed) == (1, orphan.size)
    with pytest.raises(BlobNotFound):
        await env.store.inner.stat(orphan.sha256)
    uploads = [(u, size) async for u, size, _ in env.store.inner.list_uploads()]
    assert ("still-uploading", len(b"half of a blob")) in uploads


# -- retention first: index children and referrers ------------------------------------


@pytest.fixture
def retention_settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path), lifecycle=parse_policy(UNTAGGED_RULE))


@pytest.fixture
async def retained(
    make_url: UrlFactory, tmp_path: Path, retention_settings: Settings
) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    async for value in _env(meta, FsBlobStore(tmp_path / "blobs"), retention_settings):
        yield value


async def test_blobs_of_an_index_s_children_are_kept(retained: Env) -> None:
    env = retained
    amd, arm = random_blob(), random_blob()
    children = [await push_image(env, "gc/multi", None, layer) for layer in (amd, arm)]
    await push_manifest(env.client, "gc/multi", "latest", index(children))
    untagged = await push_image(env, "gc/multi", None, random_blob())

    report = await env.gc(hours=48)
    assert report.manifests_deleted == 1  # the untagged image, not the index's children
    await env.pulls("gc/multi", "latest")
    assert (await env.client.get(f"/v2/gc/multi/manifests/{untagged.digest}")).status_code == 404
    assert await env.stored(amd)
    assert await env.stored(arm)


async def test_referrers_live_while_their_subject_does(retained: Env) -> None:
    env = retained
    subject = await push_image(env, "gc/signed", "v1", random_blob())
    signature_layer = random_blob()
    signature = await push_image(
        env, "gc/signed", None, signature_layer, subject=subject, artifact_type=SIGNATURE
    )
    report = await env.gc(hours=48)
    assert report.manifests_deleted == 0
    await env.pulls("gc/signed", str(signature.digest))

    assert (await env.client.delete("/v2/gc/signed/manifests/v1")).status_code == 202
    report = await env.gc(hours=48)
    assert report.manifests_deleted == 2  # the subject, then its signature
    assert not await env.stored(signature_layer)


# -- the races of ADR-0007, in a fixed order -------------------------------------------


async def test_an_upload_deduplicated_onto_bytes_gc_then_deletes_is_refused(env: Env) -> None:
    layer = random_blob()
    await push_blob(env.client, "gc/a", layer)
    assert (await env.client.delete(f"/v2/gc/a/blobs/{layer.digest}")).status_code == 202
    # The upload's storage commit finds the bytes in place (one copy kept);
    # before its metadata commit, GC deletes those bytes and the row.
    reports: list[GcReport] = []

    async def strike() -> None:
        reports.append(await env.gc(grace=dt.timedelta(0)))

    env.store.after_commit = strike
    response = await env.client.post(
        "/v2/gc/b/blobs/uploads/", params={"digest": str(layer.digest)}, content=layer.data
    )
    assert reports[0].blobs_deleted == 1
    assert response.status_code == 400
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert not await env.has_row(layer)  # nothing recorded over missing bytes
    assert (await env.client.head(f"/v2/gc/b/blobs/{layer.digest}")).status_code == 404

    env.store.after_commit = None  # the client's retry
    await push_blob(env.client, "gc/b", layer)
    got = await env.client.get(f"/v2/gc/b/blobs/{layer.digest}")
    assert got.content == layer.data


async def test_an_upload_whose_metadata_commit_wins_keeps_its_blob(env: Env) -> None:
    layer = random_blob()
    await push_blob(env.client, "gc/a", layer)
    assert (await env.client.delete(f"/v2/gc/a/blobs/{layer.digest}")).status_code == 202
    candidates = [c async for c in sweep.scan_blobs(env.meta, dt.datetime.now(dt.UTC) + HOUR)]
    assert [c.sha256 for c in candidates] == [str(layer.digest)]
    await push_blob(env.client, "gc/b", layer)  # committed and linked after the scan
    freed = await sweep.sweep_blob(
        env.meta, env.store.inner, candidates[0], dt.datetime.now(dt.UTC) + HOUR
    )
    assert freed is None
    assert (await env.client.get(f"/v2/gc/b/blobs/{layer.digest}")).content == layer.data


async def _link_candidates(env: Env, cutoff: dt.datetime) -> list[sweep.LinkCandidate]:
    return [c async for _, page in sweep.scan_links(env.meta, cutoff) for c in page]


async def test_a_mount_racing_the_link_sweep_keeps_the_blob(env: Env) -> None:
    layer = random_blob()
    await push_blob(env.client, "gc/source", layer)
    cutoff = dt.datetime.now(dt.UTC) + HOUR
    candidates = await _link_candidates(env, cutoff)
    assert candidates == [sweep.LinkCandidate("gc/source", str(layer.digest))]

    mounted = await env.client.post(
        "/v2/gc/target/blobs/uploads/", params={"mount": str(layer.digest), "from": "gc/source"}
    )
    assert mounted.status_code == 201
    config = Blob(b'{"os":"linux"}')
    await push_blob(env.client, "gc/target", config)
    await push_manifest(env.client, "gc/target", "v1", image(config, [layer]))
    assert await sweep.remove_links(env.meta, candidates, cutoff) == 1  # the source's link only

    report = await env.gc(hours=2)
    assert report.blobs_deleted == 0
    await env.pulls("gc/target", "v1")


async def test_a_mount_after_the_link_went_starts_an_upload_instead(env: Env) -> None:
    layer = random_blob()
    await push_blob(env.client, "gc/source", layer)
    cutoff = dt.datetime.now(dt.UTC) + HOUR
    assert await sweep.remove_links(env.meta, await _link_candidates(env, cutoff), cutoff) == 1

    mounted = await env.client.post(
        "/v2/gc/target/blobs/uploads/", params={"mount": str(layer.digest), "from": "gc/source"}
    )
    assert mounted.status_code == 202  # a fresh session: the client uploads the bytes
    await push_image(env, "gc/target", "v1", layer)
    await env.gc(hours=2)
    await env.pulls("gc/target", "v1")


async def test_a_manifest_pushed_during_the_link_sweep_keeps_its_blobs(env: Env) -> None:
    config, layer = Blob(b'{"os":"linux"}'), random_blob()
    await push_blob(env.client, "gc/app", config)
    await push_blob(env.client, "gc/app", layer)
    cutoff = dt.datetime.now(dt.UTC) + HOUR
    candidates = await _link_candidates(env, cutoff)
    assert len(candidates) == 2

    await push_manifest(env.client, "gc/app", "v1", image(config, [layer]))
    assert await sweep.remove_links(env.meta, candidates, cutoff) == 0
    await env.pulls("gc/app", "v1")


async def test_a_manifest_pushed_after_its_links_went_is_refused(env: Env) -> None:
    config, layer = Blob(b'{"os":"linux"}'), random_blob()
    await push_blob(env.client, "gc/app", config)
    await push_blob(env.client, "gc/app", layer)
    await env.gc(hours=2)
    body = image(config, [layer])
    response = await env.client.put(
        "/v2/gc/app/manifests/v1",
        json=body,
        headers={"Content-Type": body["mediaType"]},
    )
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


async def test_a_hold_placed_during_the_sweep_keeps_the_link(env: Env) -> None:
    layer = random_blob()
    await push_blob(env.client, "gc/app", layer)
    cutoff = dt.datetime.now(dt.UTC) + HOUR
    candidates = await _link_candidates(env, cutoff)
    await env.meta.place_hold("gc/app", None, "preserve", actor="legal")
    assert await sweep.remove_links(env.meta, candidates, cutoff) == 0


async def test_a_run_that_dies_after_deleting_bytes_loses_nothing(env: Env) -> None:
    layer = random_blob()
    await push_blob(env.client, "gc/app", layer)

    class Dying:
        """The storage delete happens, then the process "dies" before the commit."""

        def __getattr__(self, name: str) -> Any:
            return getattr(env.store.inner, name)

        async def delete(self, digest: Digest) -> None:
            await env.store.inner.delete(digest)
            raise StorageUnavailable("the collector died here")

    crashing = Registry(env.meta, cast(BlobStore, Dying()), env.registry.settings)
    with pytest.raises(StorageUnavailable):
        await collect(crashing, grace=HOUR, now=dt.datetime.now(dt.UTC) + 2 * HOUR)
    assert await env.has_row(layer)  # rolled back: the row outlives its bytes for a moment
    report = await env.gc(hours=2)
    assert (report.blobs_deleted, report.bytes_freed) == (1, layer.size)
    assert not await env.has_row(layer)


# -- one collector at a time, the schedule, the command ------------------------------


async def test_one_collector_at_a_time(env: Env) -> None:
    await push_blob(env.client, "gc/app", random_blob())
    async with gc_lease(env.meta):
        with pytest.raises(GcRunning):
            await env.gc(hours=2)
        assert (await env.gc(hours=2, dry_run=True)).links_removed == 1  # no lease needed
    assert (await env.gc(hours=2)).links_removed == 1


async def test_scheduled_collection_runs_inside_the_server(
    make_url: UrlFactory, tmp_path: Path
) -> None:
    settings = Settings(data_dir=str(tmp_path), gc_interval_seconds=0.05, gc_grace_seconds=0)
    meta = await MetadataStore.open(make_url())
    async for env in _env(meta, FsBlobStore(tmp_path / "blobs"), settings):
        layer = random_blob()
        await push_blob(env.client, "gc/app", layer)
        app = create_app(settings, env.registry)
        async with app.router.lifespan_context(app):
            with anyio.fail_after(20):
                while True:  # two runs: the link goes, then the blob
                    if not await env.has_row(layer):
                        break
                    await anyio.sleep(0.05)
        assert not await env.stored(layer)


async def test_the_schedule_is_off_by_default(env: Env) -> None:
    assert Settings().gc_interval_seconds == 0
    with anyio.fail_after(1):
        await run_scheduled(env.registry)  # returns at once


# -- S3: the bytes really go --------------------------------------------------------


@pytest.fixture
async def s3_env(
    make_url: UrlFactory, s3_store: S3BlobStore, settings: Settings
) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    async for value in _env(meta, s3_store, settings):
        yield value


async def test_gc_deletes_bytes_from_s3(s3_env: Env) -> None:
    env = s3_env
    kept, dropped = random_blob(1024), random_blob(2048)
    await push_image(env, "gc/s3", "v1", kept)
    pushed = await push_image(env, "gc/s3", None, dropped)
    assert (await env.client.delete(f"/v2/gc/s3/manifests/{pushed.digest}")).status_code == 202
    orphan = await _orphan(env.store.inner, b"an orphan in the bucket")

    report = await env.gc(hours=2)
    assert (report.blobs_deleted, report.orphans_removed) == (1, 1)
    assert report.bytes_freed == dropped.size + orphan.size
    assert not await env.stored(dropped)
    with pytest.raises(BlobNotFound):
        await env.store.inner.stat(Digest.compute(dropped.data, "blake3"))
    with pytest.raises(BlobNotFound):
        await env.store.inner.stat(orphan.sha256)
    await env.pulls("gc/s3", "v1")


async def test_an_upload_deduplicated_onto_bytes_gc_then_deletes_is_refused_on_s3(
    s3_env: Env,
) -> None:
    env = s3_env
    layer = random_blob()
    await push_blob(env.client, "gc/a", layer)
    assert (await env.client.delete(f"/v2/gc/a/blobs/{layer.digest}")).status_code == 202
    env.store.after_commit = lambda: env.gc(grace=dt.timedelta(0))
    response = await env.client.post(
        "/v2/gc/b/blobs/uploads/", params={"digest": str(layer.digest)}, content=layer.data
    )
    assert response.status_code == 400
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert not await env.has_row(layer)
    assert not await env.stored(layer)
    env.store.after_commit = None
    await push_blob(env.client, "gc/b", layer)
    got = await env.client.get(f"/v2/gc/b/blobs/{Digest.compute(layer.data, 'blake3')}")
    assert got.content == layer.data


# -- the command ------------------------------------------------------------------


def test_parse_duration() -> None:
    assert parse_duration("90") == dt.timedelta(seconds=90)
    assert parse_duration("1h30m") == dt.timedelta(minutes=90)
    assert parse_duration("0s") == dt.timedelta(0)


def _garbage(data_dir: Path) -> Blob:
    layer = random_blob(512)

    async def make() -> None:
        async with open_registry(Settings(data_dir=str(data_dir))) as registry:

            async def body() -> AsyncIterator[bytes]:
                yield layer.data

            await blob_service.push_monolithic(
                registry, "gc/cli", layer.digest, body(), str(layer.size), actor="test"
            )
            await registry.meta.unlink_blob("gc/cli", layer.digest, actor="test")

    anyio.run(make)
    return layer


def test_the_gc_command(tmp_path: Path) -> None:
    data = tmp_path / "data"
    layer = _garbage(data)
    runner = CliRunner()
    args = ["gc", "--data-dir", str(data), "--grace", "0"]
    dry = runner.invoke(cli_app, [*args, "--dry-run", "--json"])
    assert dry.exit_code == 0, dry.output
    assert '"blobs_deleted": 1' in dry.stdout
    assert list((data / "blobs" / "blobs" / "sha256").rglob("data"))

    result = runner.invoke(cli_app, args)
    assert result.exit_code == 0, result.output
    assert "1 blobs deleted" in result.stdout
    assert f"{layer.size} B" in result.stdout
    assert not list((data / "blobs" / "blobs" / "sha256").rglob("data"))


def test_the_gc_command_when_another_collector_runs(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _garbage(data)
    fd = os.open(data / "meta.db.gc-lock", os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        result = CliRunner().invoke(cli_app, ["gc", "--data-dir", str(data), "--grace", "0"])
    finally:
        os.close(fd)
    assert result.exit_code == 3
    assert "another garbage collection is running" in result.output
