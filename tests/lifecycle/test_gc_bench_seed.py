"""The GC benchmark's seed, small: GC collects exactly the garbage it was built with.

``bench/gc.py`` reports figures for a state ``bench.gc_seed`` builds by
appending events and writing the filesystem layout directly; if that state
drifted from what the registry produces, the figures would measure nothing.
So the same seed, at a hundred blobs, is collected here on SQLite and
PostgreSQL (reached the way the benchmark reaches it: copied from SQLite),
every tag that should survive still resolves, and ``verify`` finds the store
consistent afterwards.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from bench.gc_seed import Shape, copy_metadata, live_tags, seed_blobs, seed_metadata
from registry.config import Settings
from registry.lifecycle.gc import collect
from registry.lifecycle.verify import verify
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["make_url"]

pytestmark = pytest.mark.anyio


async def test_gc_collects_exactly_the_seeded_garbage(make_url: UrlFactory, tmp_path: Path) -> None:
    shape = Shape(blobs=100, manifests=10)
    seed_blobs(tmp_path / "blobs", shape)
    events, _ = await seed_metadata(f"sqlite:///{tmp_path / 'seed.db'}", shape)
    assert events == 100 + 10 + 2 + 10  # commits, puts, deletions, unlinks
    url = make_url()
    rows, _ = await copy_metadata(f"sqlite:///{tmp_path / 'seed.db'}", url)
    assert rows > events

    meta = await MetadataStore.open(url)
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    try:
        before = await verify(registry, rehash=False)
        assert before.blobs_recorded == 100
        assert [f.kind for f in before.findings] == ["orphaned"] * shape.orphans
        now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
        report = await collect(registry, grace=dt.timedelta(hours=1), now=now)
        assert report.links_removed == shape.expected_links_removed == 10
        assert report.blobs_deleted == shape.expected_blobs_deleted == 20
        assert report.orphans_removed == shape.orphans == 1
        for repository, tag in live_tags(shape):
            record = await meta.get_manifest(repository, tag)
            assert record is not None, (repository, tag)
        assert len(live_tags(shape)) == 8
        after = await verify(registry)
        assert after.ok, after.findings
        assert after.blobs_stored == 80
    finally:
        await meta.close()
