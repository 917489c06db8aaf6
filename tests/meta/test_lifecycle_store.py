"""MetadataStore's lifecycle methods: holds, immutable tags, retention, pulls, blob deletion.

Every test runs on SQLite and on PostgreSQL (tests/meta/conftest.py).
"""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa

from oci import native
from oci.digest import Digest
from oci.errors import BlobUploadInvalid, Denied, ManifestUnknown
from registry.meta import MetadataStore
from registry.meta.events import HoldReleased, RetentionExtended, TagOverridden
from registry.meta.tables import manifests
from registry.rules import Rules
from registry.service.writes import Writes
from storage.base import BlobInfo

from ._content import Pushed, blob, image, index

pytestmark = pytest.mark.anyio

CONFIG = blob(b'{"architecture":"amd64"}')
LAYER = blob(b"layer one")
LAYER2 = blob(b"layer two")
SIG = blob(b"signature payload")
LOOSE = blob(b"a blob no manifest names")
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"
NOW = dt.datetime.now(dt.UTC)


async def _put(writes: Writes, repo: str, pushed: Pushed, *tags: str, **kw: str) -> None:
    await writes.put_manifest(
        repo, pushed.digest, pushed.manifest, pushed.body, pushed.media_type, list(tags),
        actor=kw.pop("actor", "alice"), **kw,
    )  # fmt: skip


async def _commit(writes: Writes, repo: str, *infos: BlobInfo) -> None:
    for info in infos:
        await writes.commit_blob(repo, info, actor="alice")


async def _types_after(store: MetadataStore, seq: int) -> list[str]:
    return [e.type for e in await store.events(seq, 1000)]


async def _head(store: MetadataStore) -> int:
    found = await store.events(0, 100_000)
    return found[-1].seq if found else 0


def _legal_hold(exc: pytest.ExceptionInfo[Denied], *hold_ids: str) -> None:
    assert exc.value.detail["reason"] == "legal-hold"
    assert set(hold_ids) <= set(exc.value.detail["holds"])


class Tree:
    """An index of two images, a signature of the index, and a loose blob, in one repository."""

    def __init__(self) -> None:
        self.amd64 = image(CONFIG, [LAYER])
        self.arm64 = image(CONFIG, [LAYER2], layer_digest="blake3")  # named by blake3
        self.index = index([self.amd64, self.arm64])
        self.signature = image(SIG, [], subject=self.index, artifact_type=SIGNATURE_TYPE)

    async def push(self, writes: Writes, repo: str) -> None:
        await _commit(writes, repo, CONFIG, LAYER, LAYER2, SIG, LOOSE)
        await _put(writes, repo, self.amd64)
        await _put(writes, repo, self.arm64)
        await _put(writes, repo, self.index, "v1", "stable")
        await _put(writes, repo, self.signature)


# -- holds: placing, listing, releasing -----------------------------------------


async def test_holds_are_placed_listed_and_released_each_as_one_event(
    store: MetadataStore,
    writes: Writes,
) -> None:
    tree = Tree()
    await tree.push(writes, "team/app")
    await tree.push(writes, "team/other")
    start = await _head(store)

    whole = await writes.place_hold("team/app", None, "case 1: everything", actor="legal")
    by_digest = await writes.place_hold(
        "team/app", str(tree.amd64.digest), "case 2: one image", actor="legal"
    )
    by_tag = await writes.place_hold("team/other", "v1", "case 3: a version", actor="counsel")

    assert (whole.repository, whole.digest, whole.tag) == ("team/app", None, None)
    assert (by_digest.digest, by_digest.tag) == (str(tree.amd64.digest), None)
    # A tag hold records the version and the manifest it named when placed.
    assert (by_tag.repository, by_tag.digest, by_tag.tag) == (
        "team/other",
        str(tree.index.digest),
        "v1",
    )
    assert (by_tag.reason, by_tag.placed_by) == ("case 3: a version", "counsel")
    assert by_tag.placed_at.tzinfo is not None
    assert len({whole.id, by_digest.id, by_tag.id}) == 3

    assert [h.id for h in await store.list_holds()] == [whole.id, by_digest.id, by_tag.id]
    assert [h.id for h in await store.list_holds("team/app")] == [whole.id, by_digest.id]
    assert await store.list_holds("team/none") == []

    released = await writes.release_hold(by_digest.id, "case 2 closed", actor="legal")
    assert released == by_digest
    assert [h.id for h in await store.list_holds()] == [whole.id, by_tag.id]

    placed, *_, last = await store.events(start, 100)
    assert placed.type == "hold.placed"
    assert (placed.actor, placed.repository) == ("legal", "team/app")
    assert last.type == "hold.released"
    assert last.event == HoldReleased("team/app", by_digest.id, "case 2 closed")
    assert await _types_after(store, start) == ["hold.placed"] * 3 + ["hold.released"]


async def test_refused_hold_requests_append_nothing(store: MetadataStore, writes: Writes) -> None:
    tree = Tree()
    await tree.push(writes, "team/app")
    start = await _head(store)
    with pytest.raises(Denied, match="reason"):
        await writes.place_hold("team/app", None, "  ", actor="legal")
    with pytest.raises(ManifestUnknown):
        await writes.place_hold("team/none", None, "case", actor="legal")
    with pytest.raises(ManifestUnknown):
        await writes.place_hold("team/app", "no-such-tag", "case", actor="legal")
    missing = Digest.compute(b"never pushed")
    with pytest.raises(ManifestUnknown):
        await writes.place_hold("team/app", str(missing), "case", actor="legal")
    with pytest.raises(ManifestUnknown):
        # A blob is not a manifest: holds name manifests, versions or repositories.
        await writes.place_hold("team/app", str(LAYER.sha256), "case", actor="legal")
    with pytest.raises(ManifestUnknown):
        await writes.release_hold("0" * 32, "no such hold", actor="legal")
    hold = await writes.place_hold("team/app", None, "case", actor="legal")
    with pytest.raises(Denied, match="reason"):
        await writes.release_hold(hold.id, "", actor="legal")
    await writes.release_hold(hold.id, "closed", actor="legal")
    with pytest.raises(ManifestUnknown):
        await writes.release_hold(hold.id, "twice", actor="legal")
    assert await _types_after(store, start) == ["hold.placed", "hold.released"]


# -- what a hold protects ---------------------------------------------------------


async def test_a_held_index_protects_its_children_blobs_and_referrers_until_released(
    store: MetadataStore,
    writes: Writes,
) -> None:
    tree = Tree()
    await tree.push(writes, "team/app")
    await tree.push(writes, "team/copy")  # the same content elsewhere is not held
    hold = await writes.place_hold("team/app", str(tree.index.digest), "case", actor="legal")
    start = await _head(store)

    for pushed in (tree.index, tree.amd64, tree.arm64, tree.signature):
        with pytest.raises(Denied, match="legal hold") as caught:
            await writes.delete_manifest("team/app", pushed.digest, actor="alice")
        _legal_hold(caught, hold.id)
    for digest in (CONFIG.sha256, LAYER.sha256, LAYER.blake3, LAYER2.sha256, SIG.sha256):
        with pytest.raises(Denied, match="legal hold") as caught:
            await writes.unlink_blob("team/app", digest, actor="alice")
        _legal_hold(caught, hold.id)
    assert await _types_after(store, start) == []

    # What the hold does not cover stays deletable: a loose blob, a tag (the
    # manifest stays held without it), and the same content in another repository.
    await writes.unlink_blob("team/app", LOOSE.sha256, actor="alice")
    await writes.delete_tag("team/app", "stable", actor="alice")
    assert await store.get_manifest("team/app", str(tree.index.digest)) is not None
    await writes.delete_manifest("team/copy", tree.signature.digest, actor="alice")
    await writes.delete_manifest("team/copy", tree.index.digest, actor="alice")
    await writes.unlink_blob("team/copy", LAYER2.sha256, actor="alice")

    await writes.release_hold(hold.id, "case closed", actor="legal")
    for pushed in (tree.signature, tree.index, tree.amd64, tree.arm64):
        await writes.delete_manifest("team/app", pushed.digest, actor="alice")
    for info in (CONFIG, LAYER, LAYER2, SIG):
        await writes.unlink_blob("team/app", info.sha256, actor="alice")
    assert await store.get_manifest("team/app", "v1") is None
    assert await store.get_blob("team/app", LAYER.sha256) is None


async def test_a_referrer_pushed_after_the_hold_is_held_too(
    store: MetadataStore, writes: Writes
) -> None:
    tree = Tree()
    await _commit(writes, "team/app", CONFIG, LAYER, SIG)
    await _put(writes, "team/app", tree.amd64, "v1")
    hold = await writes.place_hold("team/app", str(tree.amd64.digest), "case", actor="legal")
    late = image(SIG, [], subject=tree.amd64, artifact_type=SIGNATURE_TYPE)
    await _put(writes, "team/app", late)
    with pytest.raises(Denied) as caught:
        await writes.delete_manifest("team/app", late.digest, actor="alice")
    _legal_hold(caught, hold.id)
    with pytest.raises(Denied):
        await writes.unlink_blob("team/app", SIG.sha256, actor="alice")


async def test_a_tag_hold_protects_the_version_name_and_its_content(
    store: MetadataStore,
    writes: Writes,
) -> None:
    tree = Tree()
    await tree.push(writes, "team/app")
    other = image(CONFIG, [LAYER2])
    await _put(writes, "team/app", other, "v2")
    hold = await writes.place_hold("team/app", "v1", "case", actor="legal")
    start = await _head(store)

    with pytest.raises(Denied) as caught:
        await writes.delete_tag("team/app", "v1", actor="alice")
    _legal_hold(caught, hold.id)
    with pytest.raises(Denied) as caught:
        await writes.delete_manifest("team/app", tree.index.digest, actor="alice")
    _legal_hold(caught, hold.id)
    with pytest.raises(Denied) as caught:  # moving the held version away is refused too
        await _put(writes, "team/app", other, "v1")
    _legal_hold(caught, hold.id)
    assert await _types_after(store, start) == []
    record = await store.get_manifest("team/app", "v1")
    assert record is not None
    assert record.digest == tree.index.digest

    await _put(writes, "team/app", tree.index, "v1")  # re-pushing the same content is fine
    await writes.delete_tag("team/app", "stable", actor="alice")  # another tag is not held
    await writes.delete_manifest("team/app", other.digest, actor="alice")

    await writes.release_hold(hold.id, "closed", actor="legal")
    await writes.delete_tag("team/app", "v1", actor="alice")
    await writes.delete_manifest("team/app", tree.index.digest, actor="alice")


async def test_a_repository_hold_protects_everything_in_it_but_allows_new_pushes(
    store: MetadataStore,
    writes: Writes,
) -> None:
    tree = Tree()
    await tree.push(writes, "team/app")
    await tree.push(writes, "team/other")
    hold = await writes.place_hold("team/app", None, "case", actor="legal")

    with pytest.raises(Denied) as caught:
        await writes.unlink_blob("team/app", LOOSE.sha256, actor="alice")
    _legal_hold(caught, hold.id)
    with pytest.raises(Denied):
        await writes.delete_tag("team/app", "stable", actor="alice")
    with pytest.raises(Denied):
        await writes.delete_manifest("team/app", tree.signature.digest, actor="alice")

    fresh = image(CONFIG, [LAYER, LAYER2])
    await _put(writes, "team/app", fresh, "v9")  # adding content destroys nothing
    with pytest.raises(Denied):
        await writes.delete_manifest("team/app", fresh.digest, actor="alice")

    await writes.delete_manifest("team/other", tree.signature.digest, actor="alice")
    await writes.release_hold(hold.id, "closed", actor="legal")
    await writes.delete_manifest("team/app", fresh.digest, actor="alice")
    await writes.unlink_blob("team/app", LOOSE.sha256, actor="alice")


async def test_holds_survive_a_rebuild_of_the_views(store: MetadataStore, writes: Writes) -> None:
    tree = Tree()
    await tree.push(writes, "team/app")
    kept = await writes.place_hold("team/app", "v1", "kept", actor="legal")
    gone = await writes.place_hold("team/app", None, "gone", actor="legal")
    await writes.release_hold(gone.id, "closed", actor="legal")
    before = await store.list_holds()
    await store.rebuild_views()
    assert await store.list_holds() == before == [kept]
    with pytest.raises(Denied):
        await writes.delete_manifest("team/app", tree.amd64.digest, actor="alice")


# -- immutable tags -----------------------------------------------------------------


async def test_immutable_tags_cannot_be_moved_or_deleted_without_an_override(
    store: MetadataStore,
) -> None:
    writes = Writes(
        store, Rules(immutable_tags=lambda repo, tag: repo == "team/app" and tag.startswith("v"))
    )
    first, second = image(CONFIG, [LAYER]), image(CONFIG, [LAYER2])
    await _commit(writes, "team/app", CONFIG, LAYER, LAYER2)
    await _put(writes, "team/app", first, "v1", "latest")
    await _put(writes, "team/app", second, "v2")
    start = await _head(store)

    await _put(writes, "team/app", first, "v1")  # the same digest again: not a move
    with pytest.raises(Denied, match="immutable") as caught:
        await _put(writes, "team/app", second, "v1")
    assert caught.value.detail == {"tag": "v1", "reason": "immutable"}
    with pytest.raises(Denied, match="immutable"):
        await writes.delete_tag("team/app", "v1", actor="alice")
    with pytest.raises(Denied, match="immutable"):
        await writes.delete_manifest("team/app", first.digest, actor="alice")
    assert await _types_after(store, start) == ["manifest.put"]
    await _put(writes, "team/app", second, "latest")  # a mutable tag moves

    mark = await _head(store)
    await _put(writes, "team/app", second, "v1", actor="root", override="INC-7 rebuild")
    record = await store.get_manifest("team/app", "v1")
    assert record is not None
    assert record.digest == second.digest
    overridden, put = await store.events(mark, 10)
    assert (overridden.type, overridden.actor) == ("tag.overridden", "root")
    assert overridden.event == TagOverridden("team/app", "v1", "move", "INC-7 rebuild")
    assert (put.type, put.seq) == ("manifest.put", overridden.seq + 1)

    mark = await _head(store)
    await writes.delete_tag("team/app", "v2", actor="root", override="INC-8")
    await writes.delete_manifest("team/app", second.digest, actor="root", override="INC-9")
    found = [(e.type, getattr(e.event, "tag", None)) for e in await store.events(mark, 10)]
    assert found == [
        ("tag.overridden", "v2"),
        ("tag.deleted", "v2"),
        ("tag.overridden", "v1"),
        ("manifest.deleted", None),
    ]
    assert await store.get_manifest("team/app", "v1") is None


async def test_an_override_does_not_lift_a_legal_hold(store: MetadataStore) -> None:
    writes = Writes(store, Rules(immutable_tags=lambda repo, tag: True))
    pushed = image(CONFIG, [LAYER])
    await _commit(writes, "r", CONFIG, LAYER)
    await _put(writes, "r", pushed, "v1")
    await writes.place_hold("r", "v1", "case", actor="legal")
    start = await _head(store)
    with pytest.raises(Denied, match="legal hold"):
        await writes.delete_tag("r", "v1", actor="root", override="admin")
    with pytest.raises(Denied, match="legal hold"):
        await writes.delete_manifest("r", pushed.digest, actor="root", override="admin")
    assert await _types_after(store, start) == []


# -- retention extension ------------------------------------------------------------


def _native_image(until: dt.datetime | None) -> Pushed:
    """An OCI image carrying a native manifest whose retention says keep until ``until``."""
    files = (native.NativeFile("a.txt", LAYER.size, "text/plain", LAYER.sha256, LAYER.blake3),)
    retention = native.Retention("release", until)
    m = native.NativeManifest("team/app", "1.0", files, created=NOW, retention=retention)
    embedded = base64.b64encode(native.encode_cbor(m)).decode()
    return image(CONFIG, [LAYER], annotations={native.ANNOTATION_MANIFEST: embedded})


async def _retain_until(store: MetadataStore, repo: str, digest: Digest) -> dt.datetime | None:
    async with store.reading() as conn:
        query = sa.select(manifests.c.retain_until).where(
            manifests.c.repository == repo, manifests.c.digest == str(digest)
        )
        value: dt.datetime | None = (await conn.execute(query)).scalar_one()
        return value


async def test_retention_can_only_be_extended(store: MetadataStore, writes: Writes) -> None:
    until = (NOW + dt.timedelta(days=30)).replace(microsecond=0)
    pushed = _native_image(until)
    await _commit(writes, "team/app", CONFIG, LAYER)
    await _put(writes, "team/app", pushed, "1.0")
    assert await _retain_until(store, "team/app", pushed.digest) == until
    start = await _head(store)

    for earlier in (until - dt.timedelta(days=1), until):
        with pytest.raises(Denied, match="only be extended") as caught:
            await writes.extend_retention("team/app", pushed.digest, earlier, actor="alice")
        assert caught.value.detail["until"] == until.isoformat()
    with pytest.raises(ValueError, match="naive"):
        await writes.extend_retention(
            "team/app", pushed.digest, until.replace(tzinfo=None), actor="alice"
        )
    later = until + dt.timedelta(days=1)
    with pytest.raises(ManifestUnknown):
        await writes.extend_retention("team/app", CONFIG.sha256, later, actor="alice")
    assert await _types_after(store, start) == []

    later = until + dt.timedelta(days=60)
    offset = dt.timezone(dt.timedelta(hours=2))
    assert (
        await writes.extend_retention(
            "team/app", pushed.digest, later.astimezone(offset), actor="alice"
        )
        == later
    )
    assert await _retain_until(store, "team/app", pushed.digest) == later
    [event] = await store.events(start, 10)
    assert event.actor == "alice"
    assert event.event == RetentionExtended("team/app", pushed.digest, later.isoformat())
    await store.rebuild_views()
    assert await _retain_until(store, "team/app", pushed.digest) == later


async def test_retention_of_a_manifest_without_a_date_must_end_in_the_future(
    store: MetadataStore,
    writes: Writes,
) -> None:
    pushed = image(CONFIG, [LAYER])
    await _commit(writes, "r", CONFIG, LAYER)
    await _put(writes, "r", pushed, "v1")
    assert await _retain_until(store, "r", pushed.digest) is None
    with pytest.raises(Denied, match="future") as caught:
        await writes.extend_retention("r", pushed.digest, NOW - dt.timedelta(days=1), actor="a")
    assert caught.value.detail == {"reason": "retention", "until": None}
    until = NOW + dt.timedelta(days=1)
    await writes.extend_retention("r", pushed.digest, until, actor="a")
    assert await _retain_until(store, "r", pushed.digest) == until


# -- pulls --------------------------------------------------------------------------


async def test_record_pulls_marks_present_manifests_once_each(
    store: MetadataStore, writes: Writes
) -> None:
    first, second = image(CONFIG, [LAYER]), image(CONFIG, [LAYER2])
    await _commit(writes, "r", CONFIG, LAYER, LAYER2)
    await _put(writes, "r", first, "v1")
    await _put(writes, "r", second, "v2")
    await writes.delete_manifest("r", second.digest, actor="alice")
    start = await _head(store)
    pulled = [
        ("r", str(first.digest)),
        ("r", str(first.digest)),
        ("r", str(second.digest)),  # deleted since
        ("elsewhere", str(first.digest)),
        ("r", "sha256:not-a-digest"),
    ]
    assert await writes.record_pulls(pulled, actor="puller") == 1
    [event] = await store.events(start, 10)
    assert (event.type, event.actor, event.repository) == ("manifest.pulled", "puller", "r")
    async with store.reading() as conn:
        row = (
            await conn.execute(
                sa.select(manifests.c.pulled_at, manifests.c.created_at).where(
                    manifests.c.digest == str(first.digest)
                )
            )
        ).one()
    assert row.pulled_at == event.ts
    assert row.pulled_at >= row.created_at
    assert await writes.record_pulls([], actor="puller") == 0


# -- garbage collection's primitives ------------------------------------------------


def _presence(answer: bool) -> tuple[list[int], Callable[[], Awaitable[bool]]]:
    calls: list[int] = []

    async def present() -> bool:
        calls.append(1)
        return answer

    return calls, present


async def test_commit_blob_refuses_a_blob_whose_bytes_were_collected(
    store: MetadataStore,
    writes: Writes,
) -> None:
    calls, gone = _presence(False)
    with pytest.raises(BlobUploadInvalid, match="upload it again"):
        await writes.commit_blob("a", LAYER, actor="alice", present=gone)
    assert calls == [1]
    assert await store.events(0, 10) == []
    assert await store.get_blob("a", LAYER.sha256) is None

    calls, there = _presence(True)
    await writes.commit_blob("a", LAYER, actor="alice", present=there)
    assert calls == [1]
    # With a row, the bytes are GC's to delete only under the lock after the
    # row goes; so a known blob is not re-checked.
    calls, gone = _presence(False)
    await writes.commit_blob("b", LAYER, actor="alice", present=gone)
    assert calls == []
    assert await store.get_blob("b", LAYER.sha256) is not None
