from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

import anyio
import pytest
import sqlalchemy as sa

from oci.digest import Digest
from oci.errors import (
    BlobUnknown,
    BlobUploadInvalid,
    BlobUploadUnknown,
    ManifestBlobUnknown,
    ManifestUnknown,
)
from registry.meta import MetadataStore, engine
from registry.rules import Rules
from registry.service.writes import Writes

from ._content import Pushed, blob, image, index

pytestmark = pytest.mark.anyio

CONFIG = blob(b'{"architecture":"amd64"}')
LAYER = blob(b"layer one")
LAYER2 = blob(b"layer two")


async def _commit_all(writes: Writes, repo: str) -> None:
    for info in (CONFIG, LAYER, LAYER2):
        await writes.commit_blob(repo, info, actor="alice")


async def _put(writes: Writes, repo: str, pushed: Pushed, tags: list[str]) -> None:
    await writes.put_manifest(
        repo, pushed.digest, pushed.manifest, pushed.body, pushed.media_type, tags, actor="a"
    )


async def _event_count(store: MetadataStore) -> int:
    return len(await store.events(0, 1000))


# -- blobs ---------------------------------------------------------------------


async def test_a_committed_blob_is_found_by_sha256_and_blake3_in_its_repository_only(
    store: MetadataStore,
    writes: Writes,
) -> None:
    await writes.commit_blob("a/one", LAYER, actor="alice")
    for digest in (LAYER.sha256, LAYER.blake3):
        record = await store.get_blob("a/one", digest)
        assert record is not None
        assert (record.sha256, record.blake3, record.size) == (LAYER.sha256, LAYER.blake3, 9)
        assert (record.tier, record.restore_state, record.sha512) == ("hot", None, None)
    assert await store.get_blob("a/two", LAYER.sha256) is None
    assert await store.get_blob("a/one", LAYER2.sha256) is None


async def test_a_sha512_alias_names_the_blob(store: MetadataStore, writes: Writes) -> None:
    alias = Digest.compute(b"layer one", "sha512")
    await writes.commit_blob("r", LAYER, actor="alice", sha512=alias)
    record = await store.get_blob("r", alias)
    assert record is not None
    assert record.sha256 == LAYER.sha256
    assert record.sha512 == alias


async def test_mount_links_a_blob_only_from_a_repository_that_holds_it(
    store: MetadataStore,
    writes: Writes,
) -> None:
    await writes.commit_blob("src", LAYER, actor="alice")
    assert await writes.mount_blob("dst", LAYER2.sha256, "src", actor="bob") is None
    assert await _event_count(store) == 1  # a refused mount appends nothing
    mounted = await writes.mount_blob("dst", LAYER.blake3, "src", actor="bob")
    assert mounted is not None
    assert mounted.sha256 == LAYER.sha256
    assert await store.get_blob("dst", LAYER.sha256) is not None
    [_, event] = await store.events(0, 10)
    assert (event.type, event.repository, event.actor) == ("blob.mounted", "dst", "bob")


async def test_unlink_removes_the_blob_from_one_repository(
    store: MetadataStore, writes: Writes
) -> None:
    await writes.commit_blob("a", LAYER, actor="alice")
    await writes.commit_blob("b", LAYER, actor="alice")
    with pytest.raises(BlobUnknown, match=str(LAYER2.sha256)):
        await writes.unlink_blob("a", LAYER2.sha256, actor="alice")
    await writes.unlink_blob("a", LAYER.blake3, actor="alice")
    assert await store.get_blob("a", LAYER.sha256) is None
    assert await store.get_blob("b", LAYER.sha256) is not None


# -- manifests and tags --------------------------------------------------------


async def test_put_manifest_names_the_missing_blob_and_appends_nothing(
    store: MetadataStore,
    writes: Writes,
) -> None:
    await writes.commit_blob("r", CONFIG, actor="alice")
    await writes.commit_blob("other", LAYER, actor="alice")  # elsewhere does not count
    pushed = image(CONFIG, [LAYER])
    before = await _event_count(store)
    with pytest.raises(ManifestBlobUnknown, match=str(LAYER.sha256)) as caught:
        await writes.put_manifest(
            "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, ["v1"], actor="a"
        )
    assert caught.value.detail == {"digest": str(LAYER.sha256)}
    assert await _event_count(store) == before
    assert await store.get_manifest("r", "v1") is None


async def test_put_manifest_requires_the_config_too(store: MetadataStore, writes: Writes) -> None:
    await writes.commit_blob("r", LAYER, actor="alice")
    pushed = image(CONFIG, [LAYER])
    with pytest.raises(ManifestBlobUnknown, match=str(CONFIG.sha256)):
        await writes.put_manifest(
            "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, [], actor="a"
        )


async def test_layers_may_be_named_by_blake3(store: MetadataStore, writes: Writes) -> None:
    await _commit_all(writes, "r")
    pushed = image(CONFIG, [LAYER, LAYER2], layer_digest="blake3")
    await writes.put_manifest(
        "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, ["v1"], actor="a"
    )
    record = await store.get_manifest("r", "v1")
    assert record is not None
    assert record.digest == pushed.digest


async def test_get_manifest_by_tag_and_by_digest(store: MetadataStore, writes: Writes) -> None:
    await _commit_all(writes, "r")
    pushed = image(CONFIG, [LAYER], annotations={"org.example": "yes"})
    await writes.put_manifest(
        "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, ["v1"], actor="a"
    )
    by_tag = await store.get_manifest("r", "v1")
    by_digest = await store.get_manifest("r", str(pushed.digest))
    assert by_tag == by_digest
    assert by_tag is not None
    assert by_tag.body == pushed.body
    assert by_tag.size == len(pushed.body)
    assert by_tag.media_type == pushed.media_type
    assert by_tag.annotations == {"org.example": "yes"}
    assert by_tag.created_at.tzinfo is not None
    assert await store.get_manifest("r", "v2") is None
    assert await store.get_manifest("elsewhere", "v1") is None


async def test_an_index_needs_its_children_in_the_repository(
    store: MetadataStore, writes: Writes
) -> None:
    await _commit_all(writes, "r")
    child = image(CONFIG, [LAYER])
    parent = index([child])
    with pytest.raises(ManifestBlobUnknown, match=str(child.digest)):
        await writes.put_manifest(
            "r", parent.digest, parent.manifest, parent.body, parent.media_type, [], actor="a"
        )
    await writes.put_manifest(
        "r", child.digest, child.manifest, child.body, child.media_type, [], actor="a"
    )
    await writes.put_manifest(
        "r", parent.digest, parent.manifest, parent.body, parent.media_type, ["multi"], actor="a"
    )
    record = await store.get_manifest("r", "multi")
    assert record is not None
    assert record.digest == parent.digest


async def test_pushing_a_tag_again_moves_it(store: MetadataStore, writes: Writes) -> None:
    await _commit_all(writes, "r")
    first, second = image(CONFIG, [LAYER]), image(CONFIG, [LAYER2])
    for pushed in (first, second):
        await _put(writes, "r", pushed, ["latest"])
    record = await store.get_manifest("r", "latest")
    assert record is not None
    assert record.digest == second.digest
    assert await store.get_manifest("r", str(first.digest)) is not None


async def test_tags_list_in_byte_order_with_pagination(
    store: MetadataStore, writes: Writes
) -> None:
    await _commit_all(writes, "r")
    pushed = image(CONFIG, [LAYER])
    names = ["b", "a", "Z", "B", "a.1", "a-1", "_x"]
    await writes.put_manifest(
        "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, names, actor="a"
    )
    ordered = sorted(names)  # Python compares code points, i.e. bytes for ASCII
    assert ordered == ["B", "Z", "_x", "a", "a-1", "a.1", "b"]
    assert await store.list_tags("r", None, None) == ordered
    assert await store.list_tags("r", 2, None) == ordered[:2]
    assert await store.list_tags("r", 2, "Z") == ordered[2:4]
    assert await store.list_tags("r", None, "a.1") == ["b"]
    assert await store.list_tags("r", 0, None) == []
    assert await store.list_tags("nothing", None, None) == []


async def test_delete_tag_leaves_the_manifest(store: MetadataStore, writes: Writes) -> None:
    await _commit_all(writes, "r")
    pushed = image(CONFIG, [LAYER])
    await writes.put_manifest(
        "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, ["v1", "v2"], actor="a"
    )
    with pytest.raises(ManifestUnknown, match="nope"):
        await writes.delete_tag("r", "nope", actor="a")
    await writes.delete_tag("r", "v1", actor="a")
    assert await store.list_tags("r", None, None) == ["v2"]
    assert await store.get_manifest("r", str(pushed.digest)) is not None


async def test_delete_manifest_takes_its_tags_and_leaves_its_referrers(
    store: MetadataStore,
    writes: Writes,
) -> None:
    await _commit_all(writes, "r")
    subject = image(CONFIG, [LAYER])
    referrer = image(CONFIG, [LAYER2], subject=subject, artifact_type="application/x-sig")
    for pushed, tags in ((subject, ["v1"]), (referrer, ["sig"])):
        await writes.put_manifest(
            "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, tags, actor="a"
        )
    with pytest.raises(ManifestUnknown):
        await writes.delete_manifest("r", Digest.compute(b"absent"), actor="a")
    await writes.delete_manifest("r", subject.digest, actor="a")
    assert await store.get_manifest("r", str(subject.digest)) is None
    assert await store.list_tags("r", None, None) == ["sig"]
    assert [d.digest for d in await store.referrers("r", subject.digest, None)] == [referrer.digest]


async def test_referrers_by_subject_and_artifact_type(store: MetadataStore, writes: Writes) -> None:
    await _commit_all(writes, "r")
    subject = image(CONFIG, [LAYER])
    sig = image(
        CONFIG, [LAYER2], subject=subject, artifact_type="application/x-sig", annotations={"k": "v"}
    )
    sbom = image(CONFIG, [LAYER], subject=subject, artifact_type="application/x-sbom")
    # The subject itself need not be present: referrers may be pushed first.
    for pushed in (sig, sbom):
        await writes.put_manifest(
            "r", pushed.digest, pushed.manifest, pushed.body, pushed.media_type, [], actor="a"
        )
    found = await store.referrers("r", subject.digest, None)
    assert {d.digest for d in found} == {sig.digest, sbom.digest}
    [only] = await store.referrers("r", subject.digest, "application/x-sig")
    assert only.digest == sig.digest
    assert only.size == len(sig.body)
    assert only.media_type == sig.media_type
    assert only.artifact_type == "application/x-sig"
    assert dict(only.annotations or {}) == {"k": "v"}
    assert await store.referrers("other", subject.digest, None) == []
    assert await store.referrers("r", sig.digest, None) == []


async def test_catalog_and_repository_exists(store: MetadataStore, writes: Writes) -> None:
    for repo in ("b/x", "a", "B", "a/b"):
        await writes.commit_blob(repo, LAYER, actor="a")
    assert await store.catalog(None, None) == ["B", "a", "a/b", "b/x"]
    assert await store.catalog(2, "B") == ["a", "a/b"]
    assert await store.repository_exists("a/b")
    assert not await store.repository_exists("a/c")


# -- uploads -------------------------------------------------------------------


async def test_upload_lifecycle(store: MetadataStore, writes: Writes) -> None:
    await writes.start_upload("r", "u1", actor="a")
    with pytest.raises(BlobUploadInvalid):
        await writes.start_upload("r", "u1", actor="a")
    await writes.progress_upload("u1", 1024, actor="a")
    upload = await store.get_upload("r", "u1")
    assert upload is not None
    assert (upload.id, upload.repository, upload.offset, upload.state) == (
        "u1",
        "r",
        1024,
        "active",
    )
    assert upload.updated_at >= upload.started_at
    assert await store.get_upload("other", "u1") is None
    with pytest.raises(ValueError, match="reason"):
        await writes.end_upload("u1", "bored", actor="a")
    await writes.end_upload("u1", "completed", actor="a")
    assert await store.get_upload("r", "u1") is None
    with pytest.raises(BlobUploadUnknown):
        await writes.progress_upload("u1", 2048, actor="a")
    with pytest.raises(BlobUploadUnknown):
        await writes.end_upload("nope", "cancelled", actor="a")


async def test_expired_uploads_are_the_idle_active_ones(
    store: MetadataStore, writes: Writes
) -> None:
    for upload_id in ("old", "done"):
        await writes.start_upload("r", upload_id, actor="a")
    await writes.end_upload("done", "cancelled", actor="a")
    assert await store.expired_uploads(dt.timedelta(hours=1)) == []
    [idle] = await store.expired_uploads(dt.timedelta(0))
    assert idle.id == "old"


async def test_writers_of_one_process_queue_in_the_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Concurrent write transactions of one process wait for each other in the process.

    SQLite's own wait (``busy_timeout``) polls with sleeps of up to 100 ms, so
    a queue of writers on it drains far slower than the lock frees. With that
    wait turned off, a writer meeting another's lock fails at once: every
    one of these must still succeed.
    """
    monkeypatch.setattr("registry.meta.engine._SQLITE_BUSY_TIMEOUT_MS", 0)
    store = await MetadataStore.open(f"sqlite:///{tmp_path}/meta.db")
    writes = Writes(store, Rules())
    try:
        await _commit_all(writes, "r")
        pushed = image(CONFIG, [LAYER])

        async with anyio.create_task_group() as writers:
            for number in range(32):
                writers.start_soon(_put, writes, "r", pushed, [f"t{number:02d}"])
        assert len(await store.list_tags("r", None, None)) == 32
    finally:
        await store.close()


async def test_sqlite_writes_run_inline_but_for_begin_and_commit(tmp_path: Path) -> None:
    """On SQLite a write transaction's statements run on the event loop's thread (no
    hand-off per statement); BEGIN IMMEDIATE and COMMIT, which may wait, do not."""
    store = await MetadataStore.open(f"sqlite:///{tmp_path}/meta.db")
    writes = Writes(store, Rules())
    seen: list[tuple[bool, str]] = []
    loop_thread = threading.get_ident()

    def trace(dbapi_connection: sqlite3.Connection, _record: object) -> None:
        dbapi_connection.set_trace_callback(
            lambda statement: seen.append((threading.get_ident() == loop_thread, statement))
        )

    try:
        inline = engine._writer(store._engine).inline
        assert inline is not None
        await inline.dispose()  # the next write connects anew, traced
        sa.event.listen(inline.sync_engine, "connect", trace)
        await _commit_all(writes, "r")
        await _put(writes, "r", image(CONFIG, [LAYER]), ["latest"])
    finally:
        await store.close()
    statements = [(on_loop, sql.split()[0].upper()) for on_loop, sql in seen]
    assert (False, "BEGIN") in statements
    assert (False, "COMMIT") in statements
    assert {verb for on_loop, verb in statements if not on_loop} == {"BEGIN", "COMMIT"}
    assert {"SELECT", "INSERT"} <= {verb for on_loop, verb in statements if on_loop}


async def test_a_sqlite_writer_waiting_for_another_process_leaves_the_loop_running(
    tmp_path: Path,
) -> None:
    """Another process holding SQLite's write lock makes a writer wait (``busy_timeout``),
    in a worker thread: requests on the event loop go on meanwhile."""
    store = await MetadataStore.open(f"sqlite:///{tmp_path}/meta.db")
    writes = Writes(store, Rules())
    other = sqlite3.connect(tmp_path / "meta.db", isolation_level=None, check_same_thread=False)
    ticks = 0
    try:
        other.execute("BEGIN IMMEDIATE")  # as another process's write transaction would

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await anyio.sleep(0.01)

        committed = anyio.Event()

        async def commit() -> None:
            await writes.commit_blob("r", CONFIG, actor="a")
            committed.set()

        async with anyio.create_task_group() as group:
            group.start_soon(tick)
            group.start_soon(commit)
            await anyio.sleep(0.5)
            waited = ticks
            assert not committed.is_set()  # it waits for the other's lock
            other.execute("COMMIT")
            with anyio.fail_after(10):
                await committed.wait()
            group.cancel_scope.cancel()
        assert waited >= 20  # the loop ran on while the write waited (50 ticks if idle)
        assert await store.get_blob("r", CONFIG.sha256) is not None
    finally:
        other.close()
        await store.close()
