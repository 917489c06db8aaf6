"""The native API over HTTP: upload sessions, publish, read, list, files, history, delete."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Any

import cbor2
import httpx
import pytest

from oci import native
from tests.native.conftest import cbor_of, file_entry, manifest_json, upload_blob

pytestmark = pytest.mark.anyio

NAME = "team/app"
CBOR = native.NATIVE_MANIFEST_CBOR


async def publish(
    api: httpx.AsyncClient, version: str, files: dict[str, bytes], **extra: object
) -> httpx.Response:
    for data in files.values():
        await upload_blob(api, NAME, data)
    document = manifest_json(NAME, version, [file_entry(p, d) for p, d in files.items()], **extra)
    return await api.put(
        f"/api/v1/artifacts/{NAME}/versions/{version}",
        content=cbor_of(document),
        headers={"Content-Type": CBOR},
    )


async def test_upload_session_resumes_from_status_and_rejects_gaps(api: httpx.AsyncClient) -> None:
    data = b"0123456789abcdef"
    opened = await api.post(f"/api/v1/artifacts/{NAME}/uploads")
    location = opened.headers["location"]
    await api.patch(location, content=data[:5], headers={"Content-Range": "0-4"})
    status = await api.get(location)
    assert status.json()["offset"] == 5
    gap = await api.patch(
        location, content=data[7:], headers={"Content-Range": f"7-{len(data) - 1}"}
    )
    assert gap.status_code == 416
    assert gap.json()["errors"][0]["code"] == "BLOB_UPLOAD_INVALID"
    await api.patch(location, content=data[5:], headers={"Content-Range": f"5-{len(data) - 1}"})
    done = await api.put(location, params={"sha256": "sha256:" + hashlib.sha256(data).hexdigest()})
    assert done.status_code == 201
    assert done.json()["size"] == len(data)
    assert (await api.head(f"/v2/{NAME}/blobs/{done.json()['blake3']}")).status_code == 200


async def test_commit_with_wrong_blake3_links_nothing(api: httpx.AsyncClient) -> None:
    data = b"payload"
    opened = await api.post(f"/api/v1/artifacts/{NAME}/uploads")
    location = opened.headers["location"]
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    r = await api.put(
        location, content=data, params={"sha256": sha, "blake3": "blake3:" + "0" * 64}
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert (await api.head(f"/v2/{NAME}/blobs/{sha}")).status_code == 404


async def test_cancel_ends_the_session(api: httpx.AsyncClient) -> None:
    opened = await api.post(f"/api/v1/artifacts/{NAME}/uploads")
    location = opened.headers["location"]
    assert (await api.delete(location)).status_code == 204
    assert (await api.get(location)).status_code == 404


async def test_publish_then_read_as_cbor_json_oci_and_files(api: httpx.AsyncClient) -> None:
    files = {"logs/run.log": b"line 1\nline 2\n", "result.json": b'{"ok": true}'}
    put = await publish(api, "1.0", files, labels={"branch": "main"})
    assert put.status_code == 201, put.text
    digest = put.json()["digest"]

    as_json = await api.get(f"/api/v1/artifacts/{NAME}/versions/1.0")
    assert as_json.json()["digest"] == digest
    assert [f["path"] for f in as_json.json()["manifest"]["files"]] == [
        "logs/run.log",
        "result.json",
    ]
    as_cbor = await api.get(f"/api/v1/artifacts/{NAME}/versions/1.0", headers={"Accept": CBOR})
    assert as_cbor.headers["content-type"] == CBOR
    assert native.decode_cbor(as_cbor.content).labels == {"branch": "main"}

    oci = await api.get(f"/v2/{NAME}/manifests/1.0")
    assert oci.headers["docker-content-digest"] == digest
    config = oci.json()["config"]
    assert config["mediaType"] == CBOR
    assert (await api.get(f"/v2/{NAME}/blobs/{config['digest']}")).content == as_cbor.content

    got = await api.get(f"/api/v1/artifacts/{NAME}/versions/1.0/files/logs/run.log")
    assert got.content == files["logs/run.log"]
    ranged = await api.get(
        f"/api/v1/artifacts/{NAME}/versions/1.0/files/logs/run.log", headers={"Range": "bytes=7-"}
    )
    assert ranged.status_code == 206
    assert ranged.content == b"line 2\n"
    missing = await api.get(f"/api/v1/artifacts/{NAME}/versions/1.0/files/nope")
    assert missing.status_code == 404


async def test_same_content_twice_gives_the_same_digest(api: httpx.AsyncClient) -> None:
    files = {"a.txt": b"same"}
    first = await publish(api, "2.0", files)
    second = await publish(api, "2.0", files)
    assert first.json()["digest"] == second.json()["digest"]


async def test_json_body_is_accepted_and_stored_as_canonical_cbor(api: httpx.AsyncClient) -> None:
    await upload_blob(api, NAME, b"x")
    document = manifest_json(NAME, "j1", [file_entry("x", b"x")], labels={})
    r = await api.put(
        f"/api/v1/artifacts/{NAME}/versions/j1",
        json=document,
        headers={"Content-Type": native.NATIVE_MANIFEST_JSON},
    )
    assert r.status_code == 201, r.text
    cbor = await api.get(f"/api/v1/artifacts/{NAME}/versions/j1", headers={"Accept": CBOR})
    assert cbor.content == cbor_of(document)


async def test_list_filters_by_label_and_paginates(api: httpx.AsyncClient) -> None:
    for i in range(5):
        branch = "main" if i % 2 == 0 else "dev"
        r = await publish(api, f"v{i}", {"f": f"{i}".encode()}, labels={"branch": branch})
        assert r.status_code == 201
    page = await api.get(
        f"/api/v1/artifacts/{NAME}/versions", params={"label": "branch=main", "n": 2}
    )
    assert [v["version"] for v in page.json()["versions"]] == ["v0", "v2"]
    assert 'rel="next"' in page.headers["link"]
    next_url = page.headers["link"].split(">")[0].lstrip("<")
    rest = await api.get(next_url)
    assert [v["version"] for v in rest.json()["versions"]] == ["v4"]
    assert "link" not in rest.headers
    unknown = await api.get("/api/v1/artifacts/no/such/versions")
    assert unknown.status_code == 404


async def test_delete_untags_and_history_remembers(api: httpx.AsyncClient) -> None:
    first = await publish(api, "rel", {"f": b"one"})
    between = dt.datetime.now(dt.UTC)
    second = await publish(api, "rel", {"f": b"two"}, run="r2")
    assert first.json()["digest"] != second.json()["digest"]
    assert (await api.delete(f"/api/v1/artifacts/{NAME}/versions/rel")).status_code == 204
    assert (await api.get(f"/api/v1/artifacts/{NAME}/versions/rel")).status_code == 404
    then = await api.get(f"/api/v1/artifacts/{NAME}/history", params={"at": between.isoformat()})
    assert then.json()["versions"] == {"rel": first.json()["digest"]}
    now = await api.get(f"/api/v1/artifacts/{NAME}/history")
    assert now.json()["versions"] == {}


async def test_openapi_is_served(api: httpx.AsyncClient) -> None:
    spec = (await api.get("/api/v1/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    assert "/api/v1/artifacts/{name}/versions/{version}" in spec["paths"]


def _noncanonical() -> bytes:
    # The same document with its map keys in insertion order, not RFC 8949 §4.2.1 order.
    document = manifest_json(NAME, "bad", [file_entry("x", b"x")])
    return cbor2.dumps(dict(reversed(list(document.items()))))


JSON = native.NATIVE_MANIFEST_JSON
X = file_entry("x", b"x")


def _j(files: list[dict[str, Any]], name: str = NAME, **extra: Any) -> bytes:
    return json.dumps(manifest_json(name, "bad", files, **extra)).encode()


INVALID = (400, "MANIFEST_INVALID")
BAD: dict[str, tuple[bytes, str, tuple[int, str]]] = {
    "non-canonical CBOR": (_noncanonical(), CBOR, INVALID),
    "unknown field": (_j([X], colour="blue"), JSON, INVALID),
    "unknown file field": (_j([{**X, "mode": 493}]), JSON, INVALID),
    "missing blob": (_j([file_entry("y", b"never")]), JSON, (400, "MANIFEST_BLOB_UNKNOWN")),
    "dot-dot path": (_j([file_entry("a/../x", b"x")]), JSON, INVALID),
    "absolute path": (_j([file_entry("/etc/x", b"x")]), JSON, INVALID),
    "NUL in path": (_j([file_entry("x\x00y", b"x")]), JSON, INVALID),
    "name mismatch": (_j([X], name="other/app"), JSON, INVALID),
    "size mismatch": (_j([{**X, "size": 2}]), JSON, INVALID),
    "oversized": (
        _j([X], labels={"a": "v" * 60000, "b": "w" * 10000}),
        JSON,
        (413, "SIZE_INVALID"),
    ),
    "not a manifest type": (b"{}", "text/plain", (405, "UNSUPPORTED")),
    "not JSON": (b"{", JSON, INVALID),
}


@pytest.mark.parametrize("case", list(BAD))
async def test_bad_input_is_a_4xx_and_stores_nothing(api: httpx.AsyncClient, case: str) -> None:
    body, content_type, (status, code) = BAD[case]
    await upload_blob(api, NAME, b"x")
    blobs_before = await api.get(f"/v2/{NAME}/tags/list")
    r = await api.put(
        f"/api/v1/artifacts/{NAME}/versions/bad",
        content=body,
        headers={"Content-Type": content_type},
    )
    assert r.status_code == status, r.text
    error = r.json()["errors"][0]
    assert error["code"] == code
    assert error["message"]
    assert blobs_before.json()["tags"] == []
    assert (await api.get(f"/v2/{NAME}/tags/list")).json()["tags"] == []


async def test_one_request_upload_commits_or_links_nothing(api: httpx.AsyncClient) -> None:
    data = b"small file"
    sha = "sha256:" + hashlib.sha256(data).hexdigest()
    url = f"/api/v1/artifacts/{NAME}/uploads"
    wrong = await api.post(url, content=data, params={"sha256": "sha256:" + "0" * 64})
    assert wrong.status_code == 400
    assert wrong.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert (await api.head(f"/v2/{NAME}/blobs/{sha}")).status_code == 404
    done = await api.post(url, content=data, params={"sha256": sha})
    assert done.status_code == 201
    assert done.json()["size"] == len(data)
    assert (await api.get(f"/v2/{NAME}/blobs/{sha}")).content == data


async def test_file_path_holding_versions_segment(api: httpx.AsyncClient) -> None:
    r = await publish(api, "p1", {"a/versions/b/files/c": b"deep"})
    assert r.status_code == 201, r.text
    got = await api.get(f"/api/v1/artifacts/{NAME}/versions/p1/files/a/versions/b/files/c")
    assert got.content == b"deep"
