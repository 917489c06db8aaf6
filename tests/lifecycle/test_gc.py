"""Online garbage collection: what a run removes, what it keeps, and when.

On SQLite and PostgreSQL metadata, with the filesystem driver and with the
S3 driver against SeaweedFS (``_gc_env``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oci.digest import Digest
from registry.config import LifecycleSettings, Settings
from registry.lifecycle import _gc_sweep as sweep
from registry.lifecycle import gc
from registry.lifecycle.gc import collect
from registry.meta import MetadataStore
from storage.base import BlobStore
from storage.errors import BlobNotFound
from storage.filesystem import FsBlobStore
from tests.http._oci import (
    Blob,
    image,
    index,
    push_blob,
    push_manifest,
    random_blob,
)
from tests.lifecycle._gc_env import (
    HOUR,
    Env,
    clock,
    clocked_env,
    env,
    open_env,
    push_image,
    s3_env,
    settings,
    store_orphan,
)
from tests.meta._clock import ManualClock
from tests.meta.conftest import UrlFactory, make_url

# Fixtures this module uses.
__all__ = ["clock", "clocked_env", "env", "make_url", "s3_env", "settings"]

pytestmark = pytest.mark.anyio

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
# Untagged manifests go an hour after they lost their last tag; tags never expire.
UNTAGGED_RULE = {
    "retention": {"rules": [{"name": "all", "repository": "**", "untagged_grace": "1h"}]}
}


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


async def test_uploading_a_blob_again_restarts_its_link_s_grace(
    clocked_env: Env, clock: ManualClock
) -> None:
    env = clocked_env
    layer = random_blob()
    await push_blob(env.client, "gc/app", layer)
    clock.advance(2 * HOUR)
    await push_blob(env.client, "gc/app", layer)  # the link's grace runs from here

    soon = await collect(env.registry, grace=HOUR, now=clock.now + HOUR / 2)
    assert (soon.links_removed, soon.blobs_deleted) == (0, 0)
    assert (await env.client.head(f"/v2/gc/app/blobs/{layer.digest}")).status_code == 200
    later = await collect(env.registry, grace=HOUR, now=clock.now + 2 * HOUR)
    assert later.links_removed == 1


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
    hold = await env.registry.writes.place_hold("gc/held", None, "litigation", actor="legal")
    # A held manifest keeps a layer whose link an explicit DELETE removed before the hold.
    layer = random_blob()
    pushed = await push_image(env, "gc/evidence", "v1", layer)
    assert (await env.client.delete(f"/v2/gc/evidence/blobs/{layer.digest}")).status_code == 202
    evidence = await env.registry.writes.place_hold(
        "gc/evidence", str(pushed.digest), "audit", actor="legal"
    )

    dry = await env.gc(hours=48, dry_run=True)
    report = await env.gc(hours=48)
    assert (dry.links_removed, dry.blobs_deleted) == (0, 0)
    assert (report.links_removed, report.blobs_deleted) == (0, 0)
    assert await env.stored(loose)
    assert await env.stored(layer)

    await env.registry.writes.release_hold(hold.id, "settled", actor="legal")
    await env.registry.writes.release_hold(evidence.id, "closed", actor="legal")
    report = await env.gc(hours=48)
    assert (report.links_removed, report.blobs_deleted) == (1, 1)
    assert not await env.stored(loose)
    assert await env.stored(layer)  # the manifest, released, still names it


async def test_a_manifest_keeps_the_bytes_of_a_blob_whose_link_was_deleted(env: Env) -> None:
    """GC frees no bytes a live manifest references, in any repository."""
    layer = random_blob()
    pushed = await push_image(env, "gc/dangling", "latest", layer)
    assert (await env.client.delete(f"/v2/gc/dangling/blobs/{layer.digest}")).status_code == 202
    dry = await env.gc(hours=48, dry_run=True)
    report = await env.gc(hours=48)
    assert (dry.blobs_deleted, report.blobs_deleted) == (0, 0)
    assert await env.stored(layer)

    deleted = await env.client.delete(f"/v2/gc/dangling/manifests/{pushed.digest}")
    assert deleted.status_code == 202
    report = await env.gc(hours=48)
    assert not await env.stored(layer)


async def test_dry_run_changes_nothing(env: Env) -> None:
    garbage, kept = random_blob(100), random_blob(200)
    await push_blob(env.client, "gc/app", garbage)
    await push_image(env, "gc/app", "v1", kept)
    await push_blob(env.client, "gc/other", random_blob(300))
    unlinked = await env.gc(grace=dt.timedelta(0))  # the links go; the blobs' grace restarts
    assert (unlinked.links_removed, unlinked.blobs_deleted) == (2, 0)
    orphan = await store_orphan(env.store.inner, b"orphaned bytes")
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


async def test_the_scans_page_through_everything(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of two rows: every page is visited once, whatever falls on its edges."""
    monkeypatch.setattr(sweep, "PAGE", 2)
    monkeypatch.setattr(sweep, "ORPHAN_PAGE", 2)
    garbage = [random_blob() for _ in range(5)]
    for i, blob in enumerate(garbage):
        await push_blob(env.client, f"gc/page{i % 3}", blob)
    kept = [random_blob() for _ in range(3)]
    for i, blob in enumerate(kept):
        await push_image(env, f"gc/page{i}", "v1", blob)
    orphans = [
        await store_orphan(env.store.inner, f"orphan {i}".encode(), f"o{i}") for i in range(3)
    ]

    report = await env.gc(hours=2)
    assert (report.links_removed, report.blobs_deleted, report.orphans_removed) == (5, 5, 3)
    assert report.phases["links"].scanned == 5 + 3 + 3  # garbage, kept layers, configs
    for blob in garbage:
        assert not await env.stored(blob)
    for orphan in orphans:
        with pytest.raises(BlobNotFound):
            await env.store.inner.stat(orphan.sha256)
    for i in range(3):
        await env.pulls(f"gc/page{i}", "v1")


async def test_the_locked_re_checks_take_every_candidate_a_few_at_a_time(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Batches of two under the lock: none skipped, none larger than a batch."""
    monkeypatch.setattr(gc, "_LOCKED_BATCH", 2)
    batches: list[int] = []
    remove_links, sweep_blobs = sweep.remove_links, sweep.sweep_blobs

    async def counted_links(
        meta: MetadataStore, candidates: list[sweep.LinkCandidate], cutoff: dt.datetime
    ) -> int:
        batches.append(len(candidates))
        return await remove_links(meta, candidates, cutoff)

    async def counted_blobs(
        meta: MetadataStore,
        store: BlobStore,
        candidates: list[sweep.BlobCandidate],
        cutoff: dt.datetime,
    ) -> list[int | None]:
        batches.append(len(candidates))
        return await sweep_blobs(meta, store, candidates, cutoff)

    monkeypatch.setattr(sweep, "remove_links", counted_links)
    monkeypatch.setattr(sweep, "sweep_blobs", counted_blobs)
    garbage = [random_blob() for _ in range(5)]
    for blob in garbage:
        await push_blob(env.client, "gc/app", blob)

    report = await env.gc(hours=2)
    assert (report.links_removed, report.blobs_deleted) == (5, 5)
    assert batches == [2, 2, 1, 2, 2, 1]  # the links, then the blobs
    for blob in garbage:
        assert not await env.stored(blob)


async def test_orphaned_bytes_go_after_the_grace_window_and_staged_uploads_stay(env: Env) -> None:
    orphan = await store_orphan(env.store.inner, b"no row names these bytes")
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
    return Settings(data_dir=str(tmp_path), lifecycle=LifecycleSettings(policy=UNTAGGED_RULE))


@pytest.fixture
async def retained(
    make_url: UrlFactory, tmp_path: Path, retention_settings: Settings
) -> AsyncIterator[Env]:
    meta = await MetadataStore.open(make_url())
    async for value in open_env(meta, FsBlobStore(tmp_path / "blobs"), retention_settings):
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


# -- S3: the bytes really go --------------------------------------------------------


async def test_gc_deletes_bytes_from_s3(s3_env: Env) -> None:
    env = s3_env
    kept, dropped = random_blob(1024), random_blob(2048)
    await push_image(env, "gc/s3", "v1", kept)
    pushed = await push_image(env, "gc/s3", None, dropped)
    assert (await env.client.delete(f"/v2/gc/s3/manifests/{pushed.digest}")).status_code == 202
    orphan = await store_orphan(env.store.inner, b"an orphan in the bucket")

    report = await env.gc(hours=2)
    assert (report.blobs_deleted, report.orphans_removed) == (1, 1)
    assert report.bytes_freed == dropped.size + orphan.size
    assert not await env.stored(dropped)
    with pytest.raises(BlobNotFound):
        await env.store.inner.stat(Digest.compute(dropped.data, "blake3"))
    with pytest.raises(BlobNotFound):
        await env.store.inner.stat(orphan.sha256)
    await env.pulls("gc/s3", "v1")
