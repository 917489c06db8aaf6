"""Replaying the log rebuilds the views exactly; the log never shows a gap."""

from __future__ import annotations

import datetime as dt
from typing import Any

import anyio
import anyio.lowlevel
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from oci.digest import Digest
from oci.errors import SpecError
from registry.meta import MetadataStore
from registry.meta.engine import normalize_url
from registry.meta.tables import VIEWS, manifests, tags
from registry.rules import Rules
from registry.service.writes import Writes

from ._content import blob, image, index
from .conftest import UrlFactory

REPOS = ["r", "s/t"]
BLOB_DATA = [b"config", b"layer 1", b"layer 2", b"layer 3"]
BLOBS = [blob(data) for data in BLOB_DATA]
_M0 = image(BLOBS[0], [BLOBS[1]])
_M1 = image(BLOBS[0], [BLOBS[2]], annotations={"org.example.k": "v"})
MANIFESTS = [
    _M0,
    _M1,
    image(BLOBS[0], [BLOBS[1], BLOBS[3]], subject=_M0, artifact_type="application/x-sig"),
    index([_M0, _M1]),
    image(BLOBS[0], [BLOBS[3]], layer_digest="blake3"),
]
TAGS = ["a", "b", "latest"]
UPLOADS = ["u0", "u1", "u2"]

repos = st.sampled_from(REPOS)
blob_indexes = st.integers(0, len(BLOBS) - 1)
uploads = st.sampled_from(UPLOADS)
operations = st.one_of(
    st.tuples(st.just("commit"), repos, blob_indexes, st.booleans()),
    st.tuples(st.just("mount"), repos, repos, blob_indexes),
    st.tuples(st.just("unlink"), repos, blob_indexes),
    st.tuples(
        st.just("put"),
        repos,
        st.integers(0, len(MANIFESTS) - 1),
        st.lists(st.sampled_from(TAGS), max_size=3),
    ),
    st.tuples(st.just("delete_tag"), repos, st.sampled_from(TAGS)),
    st.tuples(st.just("delete_manifest"), repos, st.integers(0, len(MANIFESTS) - 1)),
    st.tuples(st.just("start"), repos, uploads),
    st.tuples(st.just("progress"), uploads, st.integers(0, 10**12)),
    st.tuples(st.just("end"), uploads, st.sampled_from(["completed", "cancelled", "expired"])),
    st.tuples(
        st.just("hold"), repos, st.none() | st.integers(0, len(MANIFESTS) - 1) | st.just("a")
    ),
    st.tuples(st.just("release"), st.integers(0, 3)),
    st.tuples(st.just("extend"), repos, st.integers(0, len(MANIFESTS) - 1), st.integers(1, 99)),
    st.tuples(st.just("pulled"), repos, st.integers(0, len(MANIFESTS) - 1)),
    st.tuples(st.just("override"), repos, st.integers(0, len(MANIFESTS) - 1)),
)
# Tag "b" is immutable in these tests: moving it needs an admin override.
IMMUTABLE = "b"

Snapshot = dict[str, list[tuple[Any, ...]]]


async def snapshot(engine: AsyncEngine) -> Snapshot:
    """Every row of every view, in primary-key order."""
    out: Snapshot = {}
    async with engine.connect() as conn:
        for table in VIEWS:
            query = sa.select(table).order_by(*table.primary_key.columns)
            out[table.name] = [tuple(row) for row in (await conn.execute(query)).all()]
    return out


async def apply(writes: Writes, op: tuple[Any, ...]) -> bool:
    """Run one operation; True if the store accepted it (and so appended one event)."""
    kind, *args = op
    try:
        if kind == "commit":
            repo, i, alias = args
            sha512 = Digest.compute(BLOB_DATA[i], "sha512") if alias else None
            await writes.commit_blob(repo, BLOBS[i], actor="prop", sha512=sha512)
        elif kind == "mount":
            repo, source, i = args
            return await writes.mount_blob(repo, BLOBS[i].sha256, source, actor="prop") is not None
        elif kind == "unlink":
            repo, i = args
            await writes.unlink_blob(repo, BLOBS[i].blake3, actor="prop")
        elif kind == "put":
            repo, i, tag_list = args
            m = MANIFESTS[i]
            await writes.put_manifest(
                repo, m.digest, m.manifest, m.body, m.media_type, tag_list, actor="prop"
            )
        elif kind == "delete_tag":
            await writes.delete_tag(args[0], args[1], actor="prop")
        elif kind == "delete_manifest":
            await writes.delete_manifest(args[0], MANIFESTS[args[1]].digest, actor="prop")
        elif kind == "start":
            await writes.start_upload(args[0], args[1], actor="prop")
        elif kind == "progress":
            await writes.progress_upload(args[0], args[1], actor="prop")
        elif kind == "end":
            await writes.end_upload(args[0], args[1], actor="prop")
        elif kind == "hold":
            repo, target = args
            reference = target if not isinstance(target, int) else str(MANIFESTS[target].digest)
            await writes.place_hold(repo, reference, "litigation", actor="prop")
        elif kind == "release":
            placed = await writes.meta.list_holds()
            if args[0] >= len(placed):
                return False
            await writes.release_hold(placed[args[0]].id, "settled", actor="prop")
        elif kind == "extend":
            repo, i, days = args
            until = dt.datetime(2030, 1, 1, tzinfo=dt.UTC) + dt.timedelta(days=days)
            await writes.extend_retention(repo, MANIFESTS[i].digest, until, actor="prop")
        elif kind == "pulled":
            repo, i = args
            return await writes.record_pulls([(repo, str(MANIFESTS[i].digest))], actor="prop") > 0
        else:
            repo, i = args
            m = MANIFESTS[i]
            await writes.put_manifest(
                repo,
                m.digest,
                m.manifest,
                m.body,
                m.media_type,
                [IMMUTABLE],
                actor="prop",
                override="admin fix",
            )
    except SpecError:
        return False
    return True


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(operations, min_size=1, max_size=40))
def test_rebuilt_views_equal_live_views(make_url: UrlFactory, ops: list[tuple[Any, ...]]) -> None:
    async def scenario() -> None:
        url = make_url()
        store = await MetadataStore.open(url)
        writes = Writes(store, Rules(immutable_tags=lambda _repo, tag: tag == IMMUTABLE))
        engine = create_async_engine(normalize_url(url))
        try:
            # Seed one repository with every blob so that puts, tag moves and
            # deletes are common rather than mostly refused.
            seed = [("commit", REPOS[0], i, False) for i in range(len(BLOBS))]
            for op in seed + ops:
                await apply(writes, op)
            logged = len(await store.events(0, 10_000))
            live = await snapshot(engine)
            assert await store.rebuild_views() == logged
            assert await snapshot(engine) == live
            assert [r.seq for r in await store.events(0, 10_000)] == list(range(1, logged + 1))
        finally:
            await engine.dispose()
            await store.close()

    anyio.run(scenario)


@pytest.mark.anyio
async def test_rebuild_repairs_views_from_the_log(make_url: UrlFactory) -> None:
    url = make_url()
    store = await MetadataStore.open(url)
    writes = Writes(store, Rules())
    engine = create_async_engine(normalize_url(url))
    try:
        for op in [
            ("commit", "r", 0, False),
            ("commit", "r", 1, True),
            ("put", "r", 0, ["a", "latest"]),
            ("start", "r", "u0"),
            ("progress", "u0", 10),
            ("hold", "r", 0),
        ]:
            assert await apply(writes, op)
        live = await snapshot(engine)
        assert all(live[name] for name in live)  # every view has rows to lose
        async with engine.begin() as conn:
            await conn.execute(sa.delete(tags))
            await conn.execute(sa.update(manifests).values(annotations={"forged": "yes"}))
        assert await snapshot(engine) != live
        assert await store.rebuild_views() == 6
        assert await snapshot(engine) == live
    finally:
        await engine.dispose()
        await store.close()


@pytest.mark.anyio
async def test_tailing_readers_never_see_a_gap(store: MetadataStore, writes: Writes) -> None:
    """Concurrent writers; a reader polling ``events(after=...)`` must get every seq in turn."""
    writers, per_writer = 4, 15
    total = writers * per_writer
    seen: list[int] = []

    async def write(worker: int) -> None:
        for i in range(per_writer):
            await writes.start_upload("r", f"w{worker}-{i}", actor=f"w{worker}")

    async def tail() -> None:
        with anyio.fail_after(60):
            while len(seen) < total:
                after = seen[-1] if seen else 0
                batch = await store.events(after, 1000)
                assert [r.seq for r in batch] == list(range(after + 1, after + 1 + len(batch)))
                seen.extend(r.seq for r in batch)
                await anyio.lowlevel.checkpoint()

    async with anyio.create_task_group() as group:
        group.start_soon(tail)
        for worker in range(writers):
            group.start_soon(write, worker)
    assert seen == list(range(1, total + 1))
