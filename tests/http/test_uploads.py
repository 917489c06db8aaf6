"""Blob upload sessions over /v2/: every way a client pushes, and every way it goes wrong."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from oci.digest import Digest
from registry.config import Settings, StorageSettings
from registry.service.registry import expire_uploads
from storage._fs_writer import FsWriter
from tests.http._oci import error_code, random_blob
from tests.http.conftest import Served

REPO = "team/app"


async def _start(client: httpx.AsyncClient) -> str:
    response = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert response.status_code == 202
    assert response.headers["Range"] == "0-0"
    assert response.headers["Docker-Upload-UUID"]
    location = response.headers["Location"]
    assert location.startswith("http://")
    return location


async def _content(client: httpx.AsyncClient, digest: Digest) -> bytes:
    response = await client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 200
    return response.content


def _staged(served: Served) -> list[Path]:
    uploads = served.blob_root / "uploads"
    return [p for p in uploads.iterdir() if p.is_file()] if uploads.exists() else []


@pytest.mark.anyio
async def test_post_then_put(served: Served) -> None:
    blob = random_blob(5000)
    location = await _start(served.client)
    response = await served.client.put(
        location, params={"digest": str(blob.digest)}, content=blob.data
    )
    assert response.status_code == 201
    assert response.headers["Docker-Content-Digest"] == str(blob.digest)
    assert response.headers["Location"].endswith(f"/v2/{REPO}/blobs/{blob.digest}")
    assert await _content(served.client, blob.digest) == blob.data
    # the session is over
    assert (await served.client.get(location)).status_code == 404


@pytest.mark.anyio
async def test_monolithic_post(served: Served) -> None:
    blob = random_blob(5000)
    response = await served.client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": str(blob.digest)}, content=blob.data
    )
    assert response.status_code == 201
    assert response.headers["Location"].endswith(f"/v2/{REPO}/blobs/{blob.digest}")
    assert await _content(served.client, blob.digest) == blob.data
    assert _staged(served) == []


@pytest.mark.anyio
async def test_chunked_with_content_range_and_a_wrong_offset(served: Served) -> None:
    blob = random_blob(3000)
    location = await _start(served.client)
    response = await served.client.patch(
        location,
        content=blob.data[:1000],
        headers={"Content-Range": "0-999", "Content-Type": "application/octet-stream"},
    )
    assert response.status_code == 202
    assert response.headers["Range"] == "0-999"
    location = response.headers["Location"]

    # a chunk that does not continue at 1000 is refused and changes nothing
    response = await served.client.patch(
        location, content=blob.data[1500:2000], headers={"Content-Range": "1500-1999"}
    )
    assert response.status_code == 416
    assert error_code(response) == "BLOB_UPLOAD_INVALID"
    assert response.headers["Range"] == "0-999"
    status = await served.client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-999"

    response = await served.client.patch(
        location, content=blob.data[1000:2000], headers={"Content-Range": "1000-1999"}
    )
    assert response.status_code == 202
    assert response.headers["Range"] == "0-1999"
    response = await served.client.put(
        response.headers["Location"],
        params={"digest": str(blob.digest)},
        content=blob.data[2000:],
        headers={"Content-Range": "2000-2999"},
    )
    assert response.status_code == 201, response.text
    assert await _content(served.client, blob.digest) == blob.data


@pytest.mark.anyio
async def test_patch_streamed_without_content_range_or_length(served: Served) -> None:
    blob = random_blob(200_000)

    async def stream(data: bytes) -> AsyncIterator[bytes]:
        for start in range(0, len(data), 7000):
            yield data[start : start + 7000]

    location = await _start(served.client)
    request = served.client.build_request("PATCH", location, content=stream(blob.data[:150_000]))
    assert "content-length" not in request.headers
    assert request.headers["transfer-encoding"] == "chunked"
    response = await served.client.send(request)
    assert response.status_code == 202
    assert response.headers["Range"] == "0-149999"
    response = await served.client.patch(response.headers["Location"], content=blob.data[150_000:])
    assert response.headers["Range"] == "0-199999"
    response = await served.client.put(
        response.headers["Location"], params={"digest": str(blob.digest)}
    )
    assert response.status_code == 201
    assert await _content(served.client, blob.digest) == blob.data


@pytest.mark.anyio
async def test_status_of_a_session(served: Served) -> None:
    location = await _start(served.client)
    response = await served.client.get(location)
    assert response.status_code == 204
    assert response.headers["Range"] == "0-0"
    uuid = response.headers["Docker-Upload-UUID"]
    assert location.endswith(uuid)
    await served.client.patch(location, content=b"abcde")
    response = await served.client.get(location)
    assert response.status_code == 204
    assert response.headers["Range"] == "0-4"
    assert response.headers["Location"] == location


@pytest.mark.anyio
async def test_cancel(served: Served) -> None:
    location = await _start(served.client)
    await served.client.patch(location, content=b"some bytes")
    assert _staged(served)
    response = await served.client.delete(location)
    assert response.status_code == 204
    assert _staged(served) == []
    for method in ("GET", "PATCH", "PUT", "DELETE"):
        response = await served.client.request(
            method, location, params={"digest": "sha256:" + "0" * 64}
        )
        assert response.status_code == 404, method
        assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


@pytest.mark.anyio
async def test_unknown_session(served: Served) -> None:
    response = await served.client.get(f"/v2/{REPO}/blobs/uploads/no-such-session")
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


@pytest.mark.anyio
async def test_session_belongs_to_its_repository(served: Served) -> None:
    location = await _start(served.client)
    other = location.replace(f"/v2/{REPO}/", "/v2/other/")
    response = await served.client.get(other)
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=str(tmp_path / "data"), storage=StorageSettings(upload_idle_seconds=0.5)
    )


@pytest.mark.anyio
async def test_idle_sessions_expire(served: Served) -> None:
    import anyio

    location = await _start(served.client)
    await served.client.patch(location, content=b"staged")
    assert len(_staged(served)) == 1
    assert await expire_uploads(served.registry) == 0
    await anyio.sleep(0.8)
    assert await expire_uploads(served.registry) == 1
    assert _staged(served) == []
    response = await served.client.get(location)
    assert response.status_code == 404
    assert error_code(response) == "BLOB_UPLOAD_UNKNOWN"
    events = await served.registry.meta.events(0, 100, repo=REPO, types=["upload.ended"])
    assert [getattr(e.event, "reason", None) for e in events] == ["expired"]


@pytest.mark.anyio
async def test_digest_mismatch_keeps_nothing(served: Served) -> None:
    blob, other = random_blob(), random_blob()
    location = await _start(served.client)
    response = await served.client.put(
        location, params={"digest": str(other.digest)}, content=blob.data
    )
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert _staged(served) == []
    for digest in (blob.digest, other.digest):
        assert (await served.client.head(f"/v2/{REPO}/blobs/{digest}")).status_code == 404
    assert not (served.blob_root / "blobs" / "sha256" / blob.digest.hex[:2]).exists()
    response = await served.client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": str(other.digest)}, content=blob.data
    )
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"
    assert _staged(served) == []


@pytest.mark.anyio
async def test_put_without_digest(served: Served) -> None:
    location = await _start(served.client)
    response = await served.client.put(location, content=b"data")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.anyio
async def test_sha512_upload(served: Served) -> None:
    blob = random_blob(4096)
    digest = Digest.parse("sha512:" + hashlib.sha512(blob.data).hexdigest())
    location = await _start(served.client)
    response = await served.client.put(location, params={"digest": str(digest)}, content=blob.data)
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == str(digest)
    response = await served.client.get(f"/v2/{REPO}/blobs/{digest}")
    assert response.status_code == 200
    assert response.content == blob.data
    assert response.headers["Docker-Content-Digest"] == str(digest)
    assert await _content(served.client, blob.digest) == blob.data


@pytest.mark.anyio
async def test_staging_no_session_owns_is_removed_once_idle(served: Served) -> None:
    """What a process that died mid-request left: staged bytes without a session row."""
    import anyio

    stray = await served.registry.blobs.upload("died-mid-request")
    await stray.write(b"half a blob")
    await stray.close()  # staged and kept, as a crash would leave it
    location = await _start(served.client)
    await served.client.patch(location, content=b"a live session's bytes")
    assert len(_staged(served)) == 2
    await expire_uploads(served.registry)
    assert len(_staged(served)) == 2  # neither has been idle long enough
    await anyio.sleep(0.8)
    await served.client.patch(  # the live session keeps writing: never taken
        location, content=b"more", headers={"Content-Range": "22-25"}
    )
    await expire_uploads(served.registry)
    assert len(_staged(served)) == 1
    status = await served.client.get(location)
    assert status.status_code == 204
    assert status.headers["Range"] == "0-25"


async def _patched(served: Served, location: str, data: bytes, start: int) -> httpx.Response:
    return await served.client.patch(
        location, content=data, headers={"Content-Range": f"{start}-{start + len(data) - 1}"}
    )


@pytest.mark.anyio
async def test_bytes_staged_but_never_recorded_are_where_the_client_resumes(
    served: Served,
) -> None:
    """The process died while a chunk arrived: part of it staged, its offset not recorded."""
    blob = random_blob(3000)
    location = await _start(served.client)
    assert (await _patched(served, location, blob.data[:1000], 0)).status_code == 202
    (staged,) = _staged(served)
    with staged.open("ab") as file:  # what reached the disk before the crash
        file.write(blob.data[1000:1500])

    response = await _patched(served, location, blob.data[1000:2000], 1000)
    assert response.status_code == 416
    assert response.headers["Range"] == "0-1499"  # the staged bytes, not the stale record
    status = await served.client.get(location)
    assert status.headers["Range"] == "0-1499"
    response = await _patched(served, location, blob.data[1500:], 1500)
    assert response.status_code == 202
    assert response.headers["Range"] == "0-2999"
    response = await served.client.put(location, params={"digest": str(blob.digest)})
    assert response.status_code == 201, response.text
    assert await _content(served.client, blob.digest) == blob.data


@pytest.mark.anyio
async def test_a_record_ahead_of_the_staged_bytes_falls_back_to_them(served: Served) -> None:
    """A store that lost unsynced bytes in a power cut: the record names more than is there."""
    blob = random_blob(3000)
    location = await _start(served.client)
    assert (await _patched(served, location, blob.data[:1000], 0)).status_code == 202
    (staged,) = _staged(served)
    os.truncate(staged, 600)

    response = await _patched(served, location, blob.data[1000:2000], 1000)
    assert response.status_code == 416
    assert response.headers["Range"] == "0-599"
    assert (await served.client.get(location)).headers["Range"] == "0-599"
    assert (await _patched(served, location, blob.data[600:], 600)).status_code == 202
    response = await served.client.put(location, params={"digest": str(blob.digest)})
    assert response.status_code == 201, response.text
    assert await _content(served.client, blob.digest) == blob.data


@pytest.mark.anyio
async def test_a_status_request_after_a_crash_reports_the_staged_bytes(served: Served) -> None:
    """A client that asks first (GET) is told what is staged, either way the record is off."""
    location = await _start(served.client)
    assert (await _patched(served, location, b"a" * 1000, 0)).status_code == 202
    (staged,) = _staged(served)
    with staged.open("ab") as file:
        file.write(b"b" * 500)
    assert (await served.client.get(location)).headers["Range"] == "0-1499"
    os.truncate(staged, 600)
    assert (await served.client.get(location)).headers["Range"] == "0-599"
    assert (await _patched(served, location, b"c" * 400, 600)).status_code == 202


@pytest.mark.anyio
async def test_an_offset_is_recorded_only_once_its_bytes_are_durable(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The writer's close (the fsync) comes before the offset is recorded."""
    steps: list[str] = []
    close, progress = FsWriter.close, served.registry.writes.progress_upload

    async def closing(writer: FsWriter) -> None:
        await close(writer)
        steps.append("durable")

    async def recording(upload_id: str, offset: int, *, actor: str) -> None:
        steps.append(f"recorded {offset}")
        await progress(upload_id, offset, actor=actor)

    monkeypatch.setattr(FsWriter, "close", closing)
    monkeypatch.setattr(served.registry.writes, "progress_upload", recording)
    location = await _start(served.client)
    response = await _patched(served, location, b"x" * 1000, 0)
    assert response.status_code == 202
    assert steps[:2] == ["durable", "recorded 1000"]
    assert (await served.client.get(location)).headers["Range"] == "0-999"


@pytest.mark.anyio
async def test_a_chunk_cut_short_is_dropped_and_the_offset_stays(served: Served) -> None:
    """A chunk is kept whole or not at all: the client resends it from the same offset."""
    blob = random_blob(3000)
    location = await _start(served.client)
    assert (await _patched(served, location, blob.data[:1000], 0)).status_code == 202

    async def short() -> AsyncIterator[bytes]:
        yield blob.data[1000:1500]  # of the 1,000 bytes the Content-Range announces

    response = await served.client.patch(
        location, content=short(), headers={"Content-Range": "1000-1999"}
    )
    assert response.status_code == 400
    assert error_code(response) == "SIZE_INVALID"
    (staged,) = _staged(served)
    assert staged.stat().st_size == 1000
    assert (await served.client.get(location)).headers["Range"] == "0-999"
    assert (await _patched(served, location, blob.data[1000:], 1000)).status_code == 202
    response = await served.client.put(location, params={"digest": str(blob.digest)})
    assert response.status_code == 201, response.text
    assert await _content(served.client, blob.digest) == blob.data
