"""Upload sessions belong to the principal that opened them.

Another writer of the same repository who learns a session's id gets what
the spec answers for an unknown session (404 BLOB_UPLOAD_UNKNOWN), on /v2/
and on the native API alike, and the session is untouched; the opener and
a registry-wide admin may continue, query and cancel it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import httpx
import pytest

from registry.service.blobs import get_upload
from tests.http._oci import error_code, random_blob

from .conftest import AuthServed

pytestmark = pytest.mark.anyio

REPO = "acme/app"


async def _open_v2(client: httpx.AsyncClient) -> str:
    started = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert started.status_code == 202, started.text
    location = started.headers["Location"]
    assert isinstance(location, str)
    return location


async def _patch(
    client: httpx.AsyncClient, location: str, data: bytes, start: int
) -> httpx.Response:
    headers = {
        "Content-Type": "application/octet-stream",
        "Content-Range": f"{start}-{start + len(data) - 1}",
    }
    return await client.patch(location, content=data, headers=headers)


async def test_another_writer_cannot_see_or_touch_a_v2_session(authed: AuthServed) -> None:
    alice, carol = authed.as_user("alice"), authed.as_user("carol")
    blob = random_blob(64)
    location = await _open_v2(alice)
    assert (await _patch(alice, location, blob.data[:5], 0)).status_code == 202
    attempts: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: carol.get(location),
        lambda: _patch(carol, location, blob.data[5:10], 5),
        lambda: carol.put(location, params={"digest": str(blob.digest)}),
        lambda: carol.delete(location),
    ]
    for attempt in attempts:
        answer = await attempt()
        assert answer.status_code == 404, answer.text
        assert error_code(answer) == "BLOB_UPLOAD_UNKNOWN"
    status = await alice.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-4"
    assert (await _patch(alice, location, blob.data[5:], 5)).status_code == 202
    done = await alice.put(location, params={"digest": str(blob.digest)}, content=b"")
    assert done.status_code == 201, done.text


async def test_an_admin_may_query_and_cancel_a_writers_session(authed: AuthServed) -> None:
    alice, root = authed.as_user("alice"), authed.as_user("root")
    location = await _open_v2(alice)
    assert (await root.get(location)).status_code == 204
    assert (await root.delete(location)).status_code == 204
    assert (await alice.get(location)).status_code == 404


async def test_another_writer_cannot_touch_a_native_session(authed: AuthServed) -> None:
    alice, carol = authed.as_user("alice"), authed.as_user("carol")
    created = await alice.post(f"/api/v1/artifacts/{REPO}/uploads")
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    attempts: list[Callable[[], Awaitable[httpx.Response]]] = [
        lambda: carol.get(location),
        lambda: carol.patch(location, content=b"xyz"),
        lambda: carol.delete(location),
    ]
    for attempt in attempts:
        answer = await attempt()
        assert answer.status_code == 404, answer.text
    assert (await alice.get(location)).json()["offset"] == 0
    assert (await alice.delete(location)).status_code == 204


async def test_the_opener_survives_a_rebuild_of_the_views(authed: AuthServed) -> None:
    alice = authed.as_user("alice")
    location = await _open_v2(alice)
    upload_id = location.rsplit("/", 1)[1]
    await authed.registry.meta.rebuild_views()
    upload = await get_upload(authed.registry, REPO, upload_id, opened_by="alice")
    assert upload.opened_by == "alice"
    assert (await authed.as_user("carol").get(location)).status_code == 404
