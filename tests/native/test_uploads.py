"""One-request uploads: one event each, nothing for a re-push, both digests checked first,
and concurrent ones committed together (group commit), on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Sequence
from typing import Any

import httpx
import pytest

from registry.service.registry import Registry
from tests.native.conftest import digests

pytestmark = pytest.mark.anyio

NAME = "team/files"
URL = f"/api/v1/artifacts/{NAME}/uploads"


async def _types(registry: Registry) -> list[str]:
    return [e.type for e in await registry.meta.events(0, 1000, repo=NAME)]


async def test_a_one_request_upload_is_one_event_and_a_repush_none(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    data = b"a small file"
    sha, b3 = digests(data)
    created = await api.post(URL, params={"sha256": sha, "blake3": b3}, content=data)
    assert created.status_code == 201, created.text
    assert created.json() == {"sha256": sha, "blake3": b3, "size": len(data)}
    assert await _types(registry) == ["blob.committed"]
    # The repository holds it: 200, checked against the bytes sent, nothing recorded.
    again = await api.post(URL, params={"sha256": sha}, content=data)
    assert again.status_code == 200, again.text
    assert again.json()["blake3"] == b3
    forged = await api.post(URL, params={"sha256": sha}, content=b"other bytes")
    assert forged.status_code == 400
    assert forged.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert await _types(registry) == ["blob.committed"]
    assert (await api.get(f"/v2/{NAME}/blobs/{sha}")).content == data


async def test_a_repush_is_hashed_in_worker_threads_a_mebibyte_at_a_time(
    api: httpx.AsyncClient, registry: Registry, hashed_pieces: list[int]
) -> None:
    """Re-pushed bytes are only hashed, but not on the event loop (0.7 ms of it per MiB)."""
    data = os.urandom((3 << 20) + 5)
    sha, b3 = digests(data)
    assert (await api.post(URL, params={"sha256": sha}, content=data)).status_code == 201
    hashed_pieces.clear()  # from here on, only the re-push

    async def body() -> AsyncIterator[bytes]:  # as a server receives it: 64 KiB at a time
        for start in range(0, len(data), 64 << 10):
            yield data[start : start + (64 << 10)]

    again = await api.post(URL, params={"sha256": sha, "blake3": b3}, content=body())
    assert again.status_code == 200, again.text
    assert hashed_pieces == [1 << 20] * 3 + [5]


async def test_a_wrong_second_digest_or_size_records_nothing(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    data = b"named twice"
    sha, _ = digests(data)
    _, other_b3 = digests(b"something else")
    wrong = await api.post(URL, params={"sha256": sha, "blake3": other_b3}, content=data)
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert await _types(registry) == []
    assert (await api.head(f"/v2/{NAME}/blobs/{sha}")).status_code == 404


async def test_concurrent_uploads_are_all_committed_with_one_event_each(
    api: httpx.AsyncClient, registry: Registry
) -> None:
    files = [os.urandom(100 + i) for i in range(40)]
    batches: list[int] = []
    commit_blobs = registry.writes.commit_blobs

    async def counting(items: Sequence[Any]) -> list[Any]:
        batches.append(len(items))
        return await commit_blobs(items)

    registry.writes.commit_blobs = counting  # type: ignore[method-assign]

    async def send(data: bytes) -> int:
        sha, b3 = digests(data)
        response = await api.post(URL, params={"sha256": sha, "blake3": b3}, content=data)
        return response.status_code

    assert await asyncio.gather(*(send(data) for data in files)) == [201] * len(files)
    events = await registry.meta.events(0, 1000, repo=NAME)
    assert [e.type for e in events] == ["blob.committed"] * len(files)
    assert [e.seq for e in events] == list(range(1, len(files) + 1))  # no gaps, in order
    assert sum(batches) == len(files)
    assert max(batches) > 1  # they shared transactions
    for data in files:
        sha, _ = digests(data)
        assert (await api.get(f"/v2/{NAME}/blobs/{sha}")).content == data
