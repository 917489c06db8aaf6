"""The races of ADR-0007, each played in a fixed order, and one collector at a time.

Each race calls the sweep's steps (scan, then the locked re-check) around
the racing request, or lets GC run between an upload's storage commit and
its metadata commit (``HookedStore``).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from oci.digest import Digest
from registry.config import LifecycleSettings, Settings
from registry.http.app import create_app
from registry.lifecycle import _gc_sweep as sweep
from registry.lifecycle._lease import GcRunning, gc_lease
from registry.lifecycle.gc import GcReport, collect, run_scheduled
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.base import BlobStore
from storage.errors import StorageUnavailable
from storage.filesystem import FsBlobStore
from tests.http._oci import (
    Blob,
    error_code,
    image,
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


async def test_a_blob_uploaded_again_during_the_link_sweep_keeps_its_link(
    clocked_env: Env, clock: ManualClock
) -> None:
    """The locked re-check holds the link to the grace window, not only to references."""
    env = clocked_env
    layer = random_blob()
    await push_blob(env.client, "gc/app", layer)
    clock.advance(2 * HOUR)
    cutoff = clock.now - HOUR  # the link is an hour past it when the scan runs
    candidates = await _link_candidates(env, cutoff)
    assert candidates == [sweep.LinkCandidate("gc/app", str(layer.digest))]

    await push_blob(env.client, "gc/app", layer)  # re-linked now: after the cutoff
    assert await sweep.remove_links(env.meta, candidates, cutoff) == 0
    assert (await env.client.get(f"/v2/gc/app/blobs/{layer.digest}")).content == layer.data


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
    await env.registry.writes.place_hold("gc/app", None, "preserve", actor="legal")
    assert await sweep.remove_links(env.meta, candidates, cutoff) == 0


async def test_an_upload_recorded_during_the_orphan_sweep_keeps_its_bytes(env: Env) -> None:
    """Bytes the scan took for an orphan gained a row since: the locked re-check keeps them."""
    layer = random_blob()
    orphan = await store_orphan(env.store.inner, layer.data)  # a storage commit, no row yet
    cutoff = dt.datetime.now(dt.UTC) + HOUR
    scan = sweep.scan_orphans(env.meta, env.store.inner, cutoff)
    found = [info async for _, page in scan for info in page]
    assert found == [orphan]

    await push_blob(env.client, "gc/app", layer)  # finds the bytes in place, records the row
    assert await sweep.delete_orphan(env.meta, env.store.inner, orphan) is False
    assert (await env.client.get(f"/v2/gc/app/blobs/{layer.digest}")).content == layer.data


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


# -- one collector at a time, and the schedule -----------------------------------------


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
    scheduled = Settings(
        data_dir=str(tmp_path),
        lifecycle=LifecycleSettings(gc_interval_seconds=0.05, gc_grace_seconds=0),
    )
    meta = await MetadataStore.open(make_url())
    async for served in open_env(meta, FsBlobStore(tmp_path / "blobs"), scheduled):
        layer = random_blob()
        await push_blob(served.client, "gc/app", layer)
        app = create_app(scheduled, served.registry)
        async with app.router.lifespan_context(app):
            with anyio.fail_after(20):
                while True:  # two runs: the link goes, then the blob
                    if not await served.has_row(layer):
                        break
                    await anyio.sleep(0.05)
        assert not await served.stored(layer)


async def test_the_schedule_is_off_by_default(env: Env) -> None:
    assert Settings().lifecycle.gc_interval_seconds == 0
    with anyio.fail_after(1):
        await run_scheduled(env.registry)  # returns at once
