"""Blobs over /v2/: reads, ranges, the blake3 alias, mounts and deletes."""

from __future__ import annotations

import pytest

from oci.digest import Digest
from tests.http._oci import Blob, error_code, push_blob, random_blob
from tests.http.conftest import Served

REPO = "team/app"


@pytest.mark.anyio
async def test_get_and_head(served: Served) -> None:
    blob = random_blob(1000)
    await push_blob(served.client, REPO, blob)
    response = await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}")
    assert response.status_code == 200
    assert response.content == blob.data
    assert response.headers["Docker-Content-Digest"] == str(blob.digest)
    assert response.headers["Content-Length"] == "1000"
    head = await served.client.head(f"/v2/{REPO}/blobs/{blob.digest}")
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["Content-Length"] == "1000"
    assert head.headers["Docker-Content-Digest"] == str(blob.digest)


@pytest.mark.anyio
async def test_blake3_digest_resolves_to_the_same_bytes(served: Served) -> None:
    blob = random_blob(300)
    await push_blob(served.client, REPO, blob)
    blake3 = Digest.compute(blob.data, "blake3")
    response = await served.client.get(f"/v2/{REPO}/blobs/{blake3}")
    assert response.status_code == 200
    assert response.content == blob.data
    head = await served.client.head(f"/v2/{REPO}/blobs/{blake3}")
    assert head.headers["Content-Length"] == "300"


@pytest.mark.parametrize(
    ("header", "status", "expected"),
    [
        ("bytes=0-9", 206, (0, 10)),
        ("bytes=90-", 206, (90, 10)),
        ("bytes=-5", 206, (95, 5)),
        ("bytes=-1000", 206, (0, 100)),  # a suffix longer than the blob is the whole blob
        ("bytes=50-1000", 206, (50, 50)),
        # RFC 9110 §14.1.2: a last-pos past the end is clamped, whatever its length
        ("bytes=0-99999999999999999999999", 206, (0, 100)),
        ("bytes=00000000000000000001-2", 206, (1, 2)),  # leading zeros are digits
        ("bytes=-99999999999999999999999", 206, (0, 100)),
        ("bytes=99999999999999999999999-", 416, None),
        ("bytes=100-", 416, None),
        ("bytes=500-600", 416, None),
    ],
)
@pytest.mark.anyio
async def test_ranges(
    served: Served, header: str, status: int, expected: tuple[int, int] | None
) -> None:
    blob = random_blob(100)
    await push_blob(served.client, REPO, blob)
    response = await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}", headers={"Range": header})
    assert response.status_code == status, response.text
    if expected is None:
        assert response.headers["Content-Range"] == "bytes */100"
        assert error_code(response) == "BLOB_UPLOAD_INVALID"
        return
    start, length = expected
    assert response.content == blob.data[start : start + length]
    assert response.headers["Content-Range"] == f"bytes {start}-{start + length - 1}/100"
    assert response.headers["Content-Length"] == str(length)


@pytest.mark.anyio
async def test_unknown_blob(served: Served) -> None:
    await push_blob(served.client, REPO, random_blob())
    digest = random_blob().digest
    response = await served.client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"
    head = await served.client.head(f"/v2/{REPO}/blobs/{digest}")
    assert head.status_code == 404
    assert head.content == b""


@pytest.mark.anyio
async def test_blob_is_only_visible_in_its_repository(served: Served) -> None:
    blob = random_blob()
    await push_blob(served.client, REPO, blob)
    response = await served.client.get(f"/v2/other/blobs/{blob.digest}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


@pytest.mark.anyio
async def test_delete_blob(served: Served) -> None:
    blob = random_blob()
    await push_blob(served.client, REPO, blob)
    response = await served.client.delete(f"/v2/{REPO}/blobs/{blob.digest}")
    assert response.status_code == 202
    response = await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"
    response = await served.client.delete(f"/v2/{REPO}/blobs/{blob.digest}")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UNKNOWN"


@pytest.mark.anyio
async def test_mount_from_a_repository_that_holds_the_blob(served: Served) -> None:
    blob = random_blob()
    await push_blob(served.client, "source", blob)
    response = await served.client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"mount": str(blob.digest), "from": "source"}
    )
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == str(blob.digest)
    assert response.headers["Location"].endswith(f"/v2/{REPO}/blobs/{blob.digest}")
    fetched = await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}")
    assert fetched.content == blob.data


@pytest.mark.anyio
async def test_mount_falls_back_to_an_upload_session(served: Served) -> None:
    blob = random_blob()
    await push_blob(served.client, "source", blob)
    missing = random_blob()
    for params in (
        {"mount": str(missing.digest), "from": "source"},
        {"mount": str(blob.digest), "from": "elsewhere"},
        {"mount": str(blob.digest)},
    ):
        response = await served.client.post(f"/v2/{REPO}/blobs/uploads/", params=params)
        assert response.status_code == 202, params
        location = response.headers["Location"]
        assert "/blobs/uploads/" in location
        finished = await served.client.put(
            location, params={"digest": str(blob.digest)}, content=blob.data
        )
        assert finished.status_code == 201
    # a mount without `from` must not have linked the blob by itself: the upload did
    assert (await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}")).content == blob.data


@pytest.mark.anyio
async def test_mount_without_from_does_not_link(served: Served) -> None:
    blob = random_blob()
    await push_blob(served.client, "source", blob)
    response = await served.client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"mount": str(blob.digest)}
    )
    assert response.status_code == 202
    response = await served.client.head(f"/v2/{REPO}/blobs/{blob.digest}")
    assert response.status_code == 404


@pytest.mark.anyio
async def test_empty_blob(served: Served) -> None:
    blob = Blob(b"")
    await push_blob(served.client, REPO, blob)
    response = await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}")
    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["Content-Length"] == "0"
