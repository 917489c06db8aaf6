"""Malformed requests: each is answered with its spec code in a JSON error body, never a 500."""

from __future__ import annotations

import json
from collections.abc import MutableMapping
from typing import Any

import pytest

from tests.http._oci import Blob, error_code, push_blob, random_blob
from tests.http.conftest import Served

REPO = "team/app"
BLOB = Blob(b"0123456789" * 10)
ZERO = "sha256:" + "0" * 64


async def _raw(served: Served, method: str, path: str) -> tuple[int, dict[str, Any]]:
    """Send ``path`` byte for byte: httpx would resolve ``..`` before it left the client."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"registry.test")],
        "client": ("127.0.0.1", 1),
        "server": ("registry.test", 80),
        "state": {},
    }
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    await served.app(scope, receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    return status, json.loads(body)


DOT_PATHS = [
    "/v2/team/../etc/tags/list",
    "/v2/../team/tags/list",
    "/v2/team/./app/tags/list",
    "/v2/team/../../manifests/latest",
    "/v2/team/../x/blobs/" + ZERO,
]


@pytest.mark.anyio
async def test_dot_segments_in_names(served: Served) -> None:
    for path in DOT_PATHS:
        status, body = await _raw(served, "GET", path)
        assert (status, body["errors"][0]["code"]) == (400, "NAME_INVALID"), path


# (method, path, status, code); code None: a HEAD, whose answer has no body.
BAD_REQUESTS: list[tuple[str, str, int, str | None]] = [
    # repository names
    ("GET", "/v2/Team/app/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/team//app/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2//team/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/team/app//manifests/latest", 400, "NAME_INVALID"),
    ("GET", "/v2/" + "a" * 256 + "/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/" + "/".join(["abcdefgh"] * 40) + "/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/team%2Fapp/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/team%2fapp/manifests/latest", 400, "NAME_INVALID"),
    ("POST", "/v2/team%2Fapp/blobs/uploads/", 400, "NAME_INVALID"),
    ("GET", "/v2/team/%2E%2E/app/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/-team/app/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/team_/app/tags/list", 400, "NAME_INVALID"),
    ("POST", f"/v2/{REPO}/blobs/uploads/?mount={ZERO}&from=Bad/Name", 400, "NAME_INVALID"),
    # digests
    ("GET", f"/v2/{REPO}/blobs/sha256:abc", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{REPO}/blobs/{ZERO.upper()}", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{REPO}/blobs/md5:{'0' * 32}", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{REPO}/blobs/sha256{'0' * 64}", 400, "DIGEST_INVALID"),
    ("HEAD", f"/v2/{REPO}/blobs/sha256:xyz", 400, None),
    ("DELETE", f"/v2/{REPO}/blobs/sha256:xyz", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{REPO}/manifests/sha256:xyz", 400, "DIGEST_INVALID"),
    ("DELETE", f"/v2/{REPO}/manifests/sha512:{'0' * 64}", 400, "DIGEST_INVALID"),
    ("GET", f"/v2/{REPO}/referrers/not-a-digest", 400, "DIGEST_INVALID"),
    ("POST", f"/v2/{REPO}/blobs/uploads/?digest=sha256:zz", 400, "DIGEST_INVALID"),
    ("POST", f"/v2/{REPO}/blobs/uploads/?mount=bogus&from=other", 400, "DIGEST_INVALID"),
    # tags
    # no manifest can be stored under a malformed tag: fetching one finds nothing (spec end-3);
    # a deliberate choice, see docs/conformance.md "Tags outside the grammar"
    ("GET", f"/v2/{REPO}/manifests/-leading-dash", 404, "MANIFEST_UNKNOWN"),
    ("HEAD", f"/v2/{REPO}/manifests/.INVALID_MANIFEST_NAME", 404, None),
    ("GET", f"/v2/{REPO}/manifests/{'t' * 129}", 404, "MANIFEST_UNKNOWN"),
    ("DELETE", f"/v2/{REPO}/manifests/{'t' * 129}", 404, "MANIFEST_UNKNOWN"),
    ("GET", "/v2/never/pushed/manifests/-leading-dash", 404, "NAME_UNKNOWN"),
    ("PUT", f"/v2/{REPO}/manifests/-leading-dash", 400, "TAG_INVALID"),
    ("PUT", f"/v2/{REPO}/manifests/v1?tag=..", 400, "TAG_INVALID"),
    ("PUT", f"/v2/{REPO}/manifests/{'t' * 129}", 400, "TAG_INVALID"),
    # pagination
    ("GET", "/v2/_catalog?n=abc", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/_catalog?n=-1", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", "/v2/_catalog?n=1e3", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", f"/v2/{REPO}/tags/list?n=1.5", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", f"/v2/{REPO}/tags/list?n=99999999999999", 400, "PAGINATION_NUMBER_INVALID"),
    ("GET", f"/v2/{REPO}/referrers/{ZERO}?n=x", 400, "PAGINATION_NUMBER_INVALID"),
    # uploads
    ("GET", f"/v2/{REPO}/blobs/uploads/no-such-upload", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("PATCH", f"/v2/{REPO}/blobs/uploads/%2E%2E", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("PUT", f"/v2/{REPO}/blobs/uploads/{'x' * 300}?digest={ZERO}", 404, "BLOB_UPLOAD_UNKNOWN"),
    ("DELETE", f"/v2/{REPO}/blobs/uploads/a.b", 404, "BLOB_UPLOAD_UNKNOWN"),
    # routes and methods
    ("GET", "/v2/team/app/nothing/here", 404, "NAME_UNKNOWN"),
    ("POST", f"/v2/{REPO}/manifests/latest", 405, "UNSUPPORTED"),
    ("PATCH", f"/v2/{REPO}/blobs/{ZERO}", 405, "UNSUPPORTED"),
]


@pytest.mark.anyio
async def test_bad_requests(served: Served) -> None:
    """One app answers the whole table (a fresh store per row would cost minutes)."""
    await push_blob(served.client, REPO, BLOB)
    wrong = []
    for method, path, status, code in BAD_REQUESTS:
        response = await served.client.request(method, path)
        if code is None:
            got: tuple[int, str | None] = (response.status_code, None)
            assert response.content == b"", path
        else:
            got = (response.status_code, error_code(response))
        if got != (status, code):
            wrong.append(f"{method} {path[:80]}: {got}, expected {(status, code)}")
    assert not wrong, "\n".join(wrong)


@pytest.mark.anyio
async def test_malformed_range(served: Served) -> None:
    await push_blob(served.client, REPO, BLOB)
    url = f"/v2/{REPO}/blobs/{BLOB.digest}"
    for header in ("bytes=abc", "bytes=5-2", "bytes=-", "bytes=-0", "bytes=1-x", "BYTES=100-"):
        response = await served.client.get(url, headers={"Range": header})
        assert response.status_code == 416, header
        assert response.headers["Content-Range"] == "bytes */100"
        assert error_code(response) == "BLOB_UPLOAD_INVALID"
    # RFC 9110 §14.2: an unknown unit MUST be ignored; several ranges MAY be.
    for header in ("items=0-5", "bytes=0-1,5-6"):
        response = await served.client.get(url, headers={"Range": header})
        assert response.status_code == 200, header
        assert response.content == BLOB.data


CONTENT_RANGES = [
    ("abc", 400),
    ("0-", 400),
    ("-5", 400),
    ("0 - 3", 400),
    ("0-99999999999999999999", 400),
    ("5-2", 416),
    ("1-4", 416),
    ("4-7", 416),
]


@pytest.mark.anyio
async def test_malformed_content_range(served: Served) -> None:
    response = await served.client.post(f"/v2/{REPO}/blobs/uploads/")
    location = response.headers["Location"]
    for content_range, status in CONTENT_RANGES:
        response = await served.client.patch(
            location, content=b"abcd", headers={"Content-Range": content_range}
        )
        assert response.status_code == status, content_range
        assert error_code(response) == "BLOB_UPLOAD_INVALID"
        # the session is untouched
        status_response = await served.client.get(location)
        assert status_response.status_code == 204
        assert status_response.headers["Range"] == "0-0"


@pytest.mark.anyio
async def test_short_chunk_keeps_metadata_and_bytes_in_step(served: Served) -> None:
    """A chunk shorter than announced is refused and dropped: the status says nothing moved."""
    blob = random_blob(10)
    location = (await served.client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    response = await served.client.patch(
        location, content=blob.data[:4], headers={"Content-Length": "6"}
    )
    assert response.status_code == 400
    assert error_code(response) == "SIZE_INVALID"
    status = await served.client.get(location)
    assert status.headers["Range"] == "0-0"
    response = await served.client.patch(
        location, content=blob.data, headers={"Content-Range": "0-9"}
    )
    assert response.status_code == 202, response.text
    response = await served.client.put(location, params={"digest": str(blob.digest)})
    assert response.status_code == 201
    assert (await served.client.get(f"/v2/{REPO}/blobs/{blob.digest}")).content == blob.data


MALFORMED_MANIFESTS: list[tuple[bytes, str | None]] = [
    (b"not json", "application/vnd.oci.image.manifest.v1+json"),
    (b"{}", "application/vnd.oci.image.manifest.v1+json"),
    (b'{"schemaVersion":1}', "application/vnd.docker.distribution.manifest.v1+json"),
    (
        b'{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json"}',
        "application/vnd.oci.image.manifest.v1+json",
    ),
    (b'{"schemaVersion":2,"config":{"digest":"sha256:zz"},"layers":[]}', None),
]


@pytest.mark.anyio
async def test_malformed_manifest(served: Served) -> None:
    for body, content_type in MALFORMED_MANIFESTS:
        headers = {"Content-Type": content_type} if content_type else {}
        response = await served.client.put(
            f"/v2/{REPO}/manifests/v1", content=body, headers=headers
        )
        assert response.status_code == 400, body
        assert error_code(response) in {"MANIFEST_INVALID", "DIGEST_INVALID"}
