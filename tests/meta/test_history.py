from __future__ import annotations

import datetime as dt

import pytest

from registry.meta import MetadataStore
from registry.rules import Rules
from registry.service.writes import Writes

from ._clock import ManualClock
from ._content import Pushed, blob, image
from .conftest import UrlFactory

pytestmark = pytest.mark.anyio

CONFIG = blob(b"{}")
LAYERS = [blob(b"one"), blob(b"two"), blob(b"three")]


async def _put(writes: Writes, repo: str, pushed: Pushed, tags: list[str]) -> dt.datetime:
    await writes.put_manifest(
        repo, pushed.digest, pushed.manifest, pushed.body, pushed.media_type, tags, actor="a"
    )
    return await _last_ts(writes.meta)


async def _last_ts(store: MetadataStore) -> dt.datetime:
    records = await store.events(0, 10_000)
    return records[-1].ts


async def test_tag_at_replays_moves_deletes_and_manifest_deletes(
    store: MetadataStore, writes: Writes
) -> None:
    for repo in ("r", "other"):
        await writes.commit_blob(repo, CONFIG, actor="a")
        for layer in LAYERS:
            await writes.commit_blob(repo, layer, actor="a")
    m1, m2, m3 = (image(CONFIG, [layer]) for layer in LAYERS)
    start = await _last_ts(store)

    t1 = await _put(writes, "r", m1, ["v"])
    t2 = await _put(writes, "r", m2, ["v", "w"])
    await _put(writes, "other", m3, ["v"])  # another repository's tag is another tag
    await writes.delete_tag("r", "v", actor="a")
    t3 = await _last_ts(store)
    t4 = await _put(writes, "r", m1, ["v"])
    t5 = await _put(writes, "r", m3, [])  # an untagged put moves nothing
    await writes.delete_manifest("r", m1.digest, actor="a")
    t6 = await _last_ts(store)
    t7 = await _put(writes, "r", m1, [])  # re-pushing the digest does not bring the tag back

    expected = [
        (start, None),
        (t1, m1.digest),
        (t2, m2.digest),
        (t3, None),
        (t4, m1.digest),
        (t5, m1.digest),
        (t6, None),
        (t7, None),
    ]
    for at, digest in expected:
        assert await store.tag_at("r", "v", at) == digest, at
    assert await store.tag_at("r", "w", t1) is None
    assert await store.tag_at("r", "w", t7) == m2.digest
    assert await store.tag_at("other", "v", t7) == m3.digest
    # A time between two events sees the earlier one; a naive time is UTC.
    between = t1 + (t2 - t1) / 2
    assert await store.tag_at("r", "v", between) == m1.digest
    assert await store.tag_at("r", "v", between.replace(tzinfo=None)) == m1.digest
    # The views agree with the log's answer for now.
    current = await store.get_manifest("r", "w")
    assert current is not None
    assert current.digest == m2.digest


async def test_timestamps_never_run_backwards(store: MetadataStore, writes: Writes) -> None:
    for index in range(20):
        await writes.start_upload("r", f"u{index}", actor="a")
    records = await store.events(0, 100)
    assert [r.seq for r in records] == list(range(1, 21))
    assert all(a.ts <= b.ts for a, b in zip(records, records[1:], strict=False))


async def test_a_clock_stepped_back_stamps_events_with_their_predecessor_s_time(
    make_url: UrlFactory,
) -> None:
    clock = ManualClock()
    store = await MetadataStore.open(make_url(), clock=clock)
    writes = Writes(store, Rules())
    try:
        await writes.commit_blob("r", CONFIG, actor="a")
        await writes.commit_blob("r", LAYERS[0], actor="a")
        m1, m2 = image(CONFIG, [LAYERS[0]]), image(CONFIG, [LAYERS[0]], annotations={"n": "2"})
        t0 = clock.advance(dt.timedelta(minutes=1))
        await _put(writes, "r", m1, ["v"])
        clock.advance(-dt.timedelta(hours=1))  # the host's clock is stepped back
        assert await _put(writes, "r", m2, ["v"]) == t0
        later = clock.advance(dt.timedelta(hours=2))
        await writes.delete_tag("r", "v", actor="a")

        records = await store.events(0, 100)
        assert [r.ts for r in records[-3:]] == [t0, t0, later]
        # "The log up to t" stays a prefix: half an hour before t0, v named nothing yet.
        assert await store.tag_at("r", "v", t0 - dt.timedelta(minutes=30)) is None
        assert await store.tag_at("r", "v", t0) == m2.digest
    finally:
        await store.close()
