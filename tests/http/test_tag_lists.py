"""Tag lists are rendered once and reused while the repository's log stands still,
and a change made through another replica is seen at once (registry/http/_listing.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from registry.config import Settings
from registry.http._listing import TagListCache
from registry.http.app import create_app
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.http._oci import push_image
from tests.meta.conftest import UrlFactory

REPO = "team/app"


@dataclass
class Replica:
    client: httpx.AsyncClient
    meta: MetadataStore
    listings: list[str]  # the repositories whose tags this replica read from the database


def _count_listings(meta: MetadataStore) -> list[str]:
    """Note each repository whose tags ``meta`` reads from the database."""
    listings: list[str] = []
    read_tags = meta.list_tags

    async def counted(repo: str, n: int | None, last: str | None) -> list[str]:
        listings.append(repo)
        return await read_tags(repo, n, last)

    meta.list_tags = counted  # type: ignore[method-assign]
    return listings


@pytest.fixture
async def replicas(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[tuple[Replica, Replica]]:
    """Two registries on one database and one blob directory, as two server processes."""
    url = make_url()
    settings = Settings(data_dir=str(tmp_path / "data"))
    made: list[Replica] = []
    try:
        for _ in range(2):
            meta = await MetadataStore.open(url)
            listings = _count_listings(meta)
            app = create_app(settings, Registry(meta, FsBlobStore(tmp_path / "blobs"), settings))
            transport = httpx.ASGITransport(app=app)
            client = httpx.AsyncClient(transport=transport, base_url="http://registry.test")
            made.append(Replica(client, meta, listings))
        yield made[0], made[1]
    finally:
        for replica in made:
            await replica.client.aclose()
            await replica.meta.close()


async def _tags(replica: Replica, query: str = "") -> httpx.Response:
    response = await replica.client.get(f"/v2/{REPO}/tags/list{query}")
    assert response.status_code == 200, response.text
    return response


@pytest.mark.anyio
async def test_a_change_through_another_replica_is_listed_at_once(
    replicas: tuple[Replica, Replica],
) -> None:
    reader, writer = replicas
    await push_image(writer.client, REPO, "v1")
    assert (await _tags(reader)).json() == {"name": REPO, "tags": ["v1"]}
    assert (await _tags(reader)).json()["tags"] == ["v1"]
    assert reader.listings == [REPO]  # the second answer was the rendered list

    await push_image(writer.client, REPO, "v2")
    assert (await _tags(reader)).json()["tags"] == ["v1", "v2"]
    assert (await writer.client.delete(f"/v2/{REPO}/manifests/v1")).status_code == 202
    assert (await _tags(reader)).json()["tags"] == ["v2"]
    assert reader.listings == [REPO] * 3


@pytest.mark.anyio
async def test_pages_are_kept_apart_with_their_links(replicas: tuple[Replica, Replica]) -> None:
    reader, writer = replicas
    for tag in ("a", "b", "c"):
        await push_image(writer.client, REPO, tag)
    for _ in range(2):
        first = await _tags(reader, "?n=2")
        assert first.json()["tags"] == ["a", "b"]
        assert first.headers["Link"] == f'</v2/{REPO}/tags/list?n=2&last=b>; rel="next"'
        rest = await _tags(reader, "?n=2&last=b")
        assert rest.json()["tags"] == ["c"]
        assert "Link" not in rest.headers
        assert (await _tags(reader)).json()["tags"] == ["a", "b", "c"]
    assert len(reader.listings) == 3


@pytest.mark.anyio
async def test_an_unknown_repository_is_never_filed(replicas: tuple[Replica, Replica]) -> None:
    reader, writer = replicas
    for _ in range(2):
        response = await reader.client.get(f"/v2/{REPO}/tags/list")
        assert response.status_code == 404
    await push_image(writer.client, REPO, "v1")
    assert (await _tags(reader)).json()["tags"] == ["v1"]


def test_the_cache_is_bounded() -> None:
    cache = TagListCache(entries=2, max_body=10)
    cache.put(("a", None, None), 1, b"a", None)
    cache.put(("b", None, None), 1, b"b", None)
    assert cache.get(("a", None, None), 1) == (b"a", None)  # now the most recently used
    cache.put(("c", None, None), 1, b"c", None)
    assert cache.get(("b", None, None), 1) is None
    assert cache.get(("a", None, None), 1) == (b"a", None)
    assert cache.get(("a", None, None), 2) is None  # another seq: stale
    cache.put(("big", None, None), 1, b"x" * 11, None)
    assert cache.get(("big", None, None), 1) is None
