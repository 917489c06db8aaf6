"""SQLite's inline reads (``_sqlite_reads.py``) answer exactly as the generic queries do.

The fast path is an optimisation of the reads a pull makes most; each of
its answers must equal what ``registry.meta.queries`` returns through the
async engine on the same database, or a pull would see something the rest
of the registry does not. Every query both implement is compared here on
one database holding tags, digests by every algorithm, unknown names,
deletions and pagination edges.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from oci.digest import Digest
from registry.meta import MetadataStore, queries
from registry.meta._sqlite_reads import SqliteReads
from registry.rules import Rules
from registry.service.writes import Writes

from ._content import blob, image, index

pytestmark = pytest.mark.anyio

CONFIG = blob(b'{"architecture":"amd64"}')
LAYERS = [blob(f"layer {n}".encode()) for n in range(3)]
SHA512 = Digest.compute(b"layer 0", "sha512")
REPOS = ["a", "a/b", "b", "b-c", "team/app", "team/app2", "zz", "missing"]
TAGS = ["1.0", "A", "B", "V1", "_x", "a", "latest", "v1", "v1.0", "v10", "v2"]


@pytest.fixture
async def stocked(tmp_path: Path) -> AsyncIterator[tuple[MetadataStore, SqliteReads]]:
    """One SQLite database with a bit of everything, and the fast path over it."""
    path = tmp_path / "meta.db"
    store = await MetadataStore.open(f"sqlite:///{path}")
    writes = Writes(store, Rules())
    fast = SqliteReads(str(path))
    try:
        for repo in REPOS[:-1]:
            await writes.commit_blob(repo, CONFIG, actor="t")
            await writes.commit_blob(repo, LAYERS[0], actor="t", sha512=SHA512)
            await writes.commit_blob(repo, LAYERS[1], actor="t")
        first = image(CONFIG, [LAYERS[0]])
        second = image(CONFIG, [LAYERS[1]], layer_digest="blake3", annotations={"k": "v"})
        signature = image(CONFIG, [LAYERS[0]], subject=first, artifact_type="application/x.sig")
        for repo in ("team/app", "a", "zz"):
            for pushed, tags in ((first, TAGS[:6]), (second, TAGS[6:]), (signature, [])):
                await writes.put_manifest(
                    repo, pushed.digest, pushed.manifest, pushed.body, pushed.media_type,
                    tags, actor="t",
                )  # fmt: skip
            children = index([first, second])
            await writes.put_manifest(
                repo, children.digest, children.manifest, children.body, children.media_type,
                ["multi"], actor="t",
            )  # fmt: skip
        await writes.delete_tag("a", "v2", actor="t")
        await writes.delete_manifest("zz", second.digest, actor="t")
        await writes.unlink_blob("b", LAYERS[1].sha256, actor="t")
        yield store, fast
    finally:
        fast.close()
        await store.close()


def _pages(values: list[str]) -> list[tuple[int | None, str | None]]:
    """(n, last) pairs around every edge: none, zero, one, all, past the end, in between."""
    lasts: list[str | None] = [None, "", *values, values[-1] + "~", "0", "~"]
    return list(itertools.product([None, 0, 1, 2, len(values), 1000], lasts))


async def test_manifests_by_tag_and_digest_agree(
    stocked: tuple[MetadataStore, SqliteReads],
) -> None:
    store, fast = stocked
    references = [*TAGS, "multi", "nope", "sha256:" + "0" * 64]
    async with store.reading() as conn:
        for repo in REPOS:
            for tag in TAGS:
                found = await queries.manifest_by_reference(conn, repo, tag)
                if found is not None:
                    references.append(str(found.digest))
            for reference in references:
                expected = await queries.manifest_by_reference(conn, repo, reference)
                assert fast.manifest(repo, reference) == expected, (repo, reference)


async def test_blobs_by_every_digest_agree(stocked: tuple[MetadataStore, SqliteReads]) -> None:
    store, fast = stocked
    digests = [SHA512, Digest.compute(b"absent"), Digest.compute(b"absent", "blake3")]
    for info in (CONFIG, *LAYERS):
        digests += [info.sha256, info.blake3]
    async with store.reading() as conn:
        for repo in REPOS:
            for digest in digests:
                expected = await queries.linked_blob(conn, repo, digest)
                assert fast.blob(repo, digest) == expected, (repo, digest)


async def test_tag_lists_agree_on_every_page(stocked: tuple[MetadataStore, SqliteReads]) -> None:
    store, fast = stocked
    async with store.reading() as conn:
        for repo in REPOS:
            for n, last in _pages([*TAGS, "multi"]):
                expected = await queries.list_tags(conn, repo, n, last)
                assert fast.tags(repo, n, last) == expected, (repo, n, last)


async def test_catalog_pages_agree(stocked: tuple[MetadataStore, SqliteReads]) -> None:
    store, fast = stocked
    async with store.reading() as conn:
        for n, last in _pages(REPOS):
            assert fast.catalog(n, last) == await queries.catalog(conn, n, last), (n, last)


async def test_repository_existence_and_seq_agree(
    stocked: tuple[MetadataStore, SqliteReads],
) -> None:
    store, fast = stocked
    async with store.reading() as conn:
        for repo in [*REPOS, "", "team"]:
            assert fast.repository_exists(repo) == await queries.repository_exists(conn, repo)
            assert fast.repository_seq(repo) == await queries.repository_seq(conn, repo)
