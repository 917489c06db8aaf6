"""Manifests over /v2/: push every kind, pull by tag and digest, delete, list."""

from __future__ import annotations

import json

import pytest

from oci.digest import Digest
from oci.mediatype import DOCKER_MANIFEST, DOCKER_MANIFEST_LIST, OCI_INDEX, OCI_MANIFEST
from tests.http._oci import (
    Blob,
    Pushed,
    descriptor,
    docker_image,
    error_code,
    image,
    index,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
)
from tests.http.conftest import Served

REPO = "team/app"


async def _assert_served(served: Served, reference: str, body: bytes, media_type: str) -> None:
    digest = Digest.compute(body)
    for method in ("GET", "HEAD"):
        response = await served.client.request(
            method, f"/v2/{REPO}/manifests/{reference}", headers={"Accept": media_type}
        )
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == media_type
        assert response.headers["Docker-Content-Digest"] == str(digest)
        assert response.headers["Content-Length"] == str(len(body))
        assert response.headers["ETag"] == f'"{digest}"'
        assert response.content == (body if method == "GET" else b"")


@pytest.mark.anyio
async def test_oci_manifest_by_tag_and_digest(served: Served) -> None:
    pushed = await push_image(served.client, REPO, "v1")
    await _assert_served(served, "v1", pushed.body, OCI_MANIFEST)
    await _assert_served(served, str(pushed.digest), pushed.body, OCI_MANIFEST)


@pytest.mark.anyio
async def test_push_location_points_at_the_digest(served: Served) -> None:
    config, layer = Blob(b"{}"), random_blob()
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, layer)
    body = json.dumps(image(config, [layer])).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/latest", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 201
    digest = Digest.compute(body)
    assert response.headers["Location"].endswith(f"/v2/{REPO}/manifests/{digest}")
    assert "OCI-Subject" not in response.headers


@pytest.mark.anyio
async def test_several_accept_header_lines(served: Served) -> None:
    pushed = await push_image(served.client, REPO, "v1")
    response = await served.client.get(
        f"/v2/{REPO}/manifests/v1",
        headers=[
            ("Accept", DOCKER_MANIFEST),
            ("Accept", f"{OCI_INDEX}, {DOCKER_MANIFEST_LIST}"),
            ("Accept", OCI_MANIFEST),
        ],
    )
    assert response.status_code == 200
    assert response.content == pushed.body
    assert response.headers["Content-Type"] == OCI_MANIFEST


@pytest.mark.anyio
async def test_oci_index_needs_its_children(served: Served) -> None:
    child = await push_image(served.client, REPO)
    missing = random_blob()
    orphan = index([child, Pushed(missing.digest, missing.data, OCI_MANIFEST)])
    body = json.dumps(orphan).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/multi", content=body, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"

    pushed = await push_manifest(served.client, REPO, "multi", index([child]))
    await _assert_served(served, "multi", pushed.body, OCI_INDEX)


@pytest.mark.anyio
async def test_docker_schema2_and_manifest_list(served: Served) -> None:
    config, layer = Blob(b'{"architecture":"amd64"}'), random_blob()
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, layer)
    child = await push_manifest(served.client, REPO, "amd64", docker_image(config, [layer]))
    await _assert_served(served, "amd64", child.body, DOCKER_MANIFEST)
    listed = await push_manifest(
        served.client, REPO, "list", index([child], media_type=DOCKER_MANIFEST_LIST)
    )
    await _assert_served(served, "list", listed.body, DOCKER_MANIFEST_LIST)


@pytest.mark.anyio
async def test_artifact_with_arbitrary_artifact_type(served: Served) -> None:
    artifact_type = "application/vnd.example.sbom.v7+json"
    empty = Blob(b"{}")
    await push_blob(served.client, REPO, empty)
    document = image(
        empty, [empty], config_type="application/vnd.oci.empty.v1+json", artifact_type=artifact_type
    )
    pushed = await push_manifest(served.client, REPO, "sbom", document)
    await _assert_served(served, "sbom", pushed.body, OCI_MANIFEST)
    record = await served.registry.meta.get_manifest(REPO, str(pushed.digest))
    assert record is not None
    assert record.artifact_type == artifact_type


@pytest.mark.anyio
async def test_tag_query_parameters_tag_a_push_by_digest(served: Served) -> None:
    pushed = await push_image(served.client, REPO)
    config, layer = Blob(b"{}"), random_blob()
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, layer)
    second = await push_manifest(
        served.client, REPO, None, image(config, [layer]), params={"tag": ["a", "b"]}
    )
    tags = (await served.client.get(f"/v2/{REPO}/tags/list")).json()["tags"]
    assert tags == ["a", "b"]
    for tag in ("a", "b"):
        response = await served.client.get(f"/v2/{REPO}/manifests/{tag}")
        assert response.headers["Docker-Content-Digest"] == str(second.digest)
    assert pushed.digest != second.digest


@pytest.mark.anyio
@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_tags_a_push_by_digest_applied_are_named_in_oci_tag(
    served: Served, algorithm: str
) -> None:
    """The spec's registry that takes ``?tag=`` MUST answer with ``OCI-Tag`` naming each
    accepted tag (clients fall back to one PUT per tag without it); the tags point at
    the digest the client pushed by, sha512 included."""
    config, layer = Blob(b"{}"), random_blob()
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, layer)
    body = json.dumps(image(config, [layer])).encode()
    digest = Digest.compute(body, algorithm)
    response = await served.client.put(
        f"/v2/{REPO}/manifests/{digest}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
        params={"tag": ["1.2.3", "1.2", "latest", "1.2"]},
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == str(digest)
    assert response.headers["OCI-Tag"] == "1.2.3, 1.2, latest"
    for tag in ("1.2.3", "1.2", "latest"):
        response = await served.client.get(f"/v2/{REPO}/manifests/{tag}")
        assert response.headers["Docker-Content-Digest"] == str(digest)
        assert response.content == body
    plain = await served.client.put(
        f"/v2/{REPO}/manifests/{Digest.compute(body)}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert plain.status_code == 201
    assert "OCI-Tag" not in plain.headers  # no ?tag=, no header


@pytest.mark.anyio
@pytest.mark.parametrize(
    "layer_type",
    [
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
    ],
)
async def test_a_non_distributable_layer_with_urls_need_not_be_pushed(
    served: Served, layer_type: str
) -> None:
    """Such a layer's bytes live at its ``urls`` (Windows base layers): the manifest is
    accepted without them, as distribution does. Without ``urls`` it is an ordinary
    reference, and one not pushed is MANIFEST_BLOB_UNKNOWN."""
    config, pushed, foreign = Blob(b"{}"), random_blob(), random_blob()
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, pushed)
    document = image(config, [pushed])
    external = descriptor(
        layer_type, foreign.digest, foreign.size, urls=["https://example.com/layer.tar.gz"]
    )
    document["layers"].insert(0, external)
    stored = await push_manifest(served.client, REPO, "windows", document)
    response = await served.client.get(f"/v2/{REPO}/manifests/windows")
    assert response.content == stored.body

    del external["urls"]
    body = json.dumps(document).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/no-urls", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.anyio
async def test_manifest_over_four_mib_is_413(served: Served) -> None:
    config = Blob(b"{}")
    await push_blob(served.client, REPO, config)
    document = image(config, [], annotations={"padding": "x" * (4 * 1024 * 1024)})
    body = json.dumps(document).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/big", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 413
    assert error_code(response) == "SIZE_INVALID"
    assert (await served.client.get(f"/v2/{REPO}/manifests/big")).status_code == 404


@pytest.mark.anyio
async def test_manifest_naming_a_missing_blob(served: Served) -> None:
    config = Blob(b"{}")
    await push_blob(served.client, REPO, config)
    body = json.dumps(image(config, [random_blob()])).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/v1", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_code(response) == "MANIFEST_BLOB_UNKNOWN"


@pytest.mark.parametrize("field", ["config", "layers"])
@pytest.mark.anyio
async def test_descriptor_size_must_match_the_stored_blob(served: Served, field: str) -> None:
    """image-spec descriptor.md: ``size`` "MUST" be the size of the content, which a
    client verifies before using it; a wrong one is refused here rather than served.
    MANIFEST_INVALID, not SIZE_INVALID: the spec's SIZE_INVALID is an upload whose
    length does not match its content. Distribution 2.8.2 accepts it (201)."""
    config, layer = Blob(b"{}"), Blob(b"1234567")
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, layer)
    document = image(config, [layer])
    wrong = document[field][0] if field == "layers" else document[field]
    wrong["size"] = 999
    body = json.dumps(document).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/sized", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "MANIFEST_INVALID"
    stored = config if field == "config" else layer
    detail = response.json()["errors"][0]["detail"]
    assert detail == {"digest": str(stored.digest), "size": 999, "stored": stored.size}
    assert (await served.client.get(f"/v2/{REPO}/manifests/sized")).status_code == 404


@pytest.mark.anyio
async def test_index_child_size_must_match_the_stored_manifest(served: Served) -> None:
    child = await push_image(served.client, REPO)
    document = index([child])
    document["manifests"][0]["size"] = len(child.body) + 1
    body = json.dumps(document).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/multi", content=body, headers={"Content-Type": OCI_INDEX}
    )
    assert response.status_code == 400, response.text
    assert error_code(response) == "MANIFEST_INVALID"
    detail = response.json()["errors"][0]["detail"]
    assert detail == {
        "digest": str(child.digest),
        "size": len(child.body) + 1,
        "stored": len(child.body),
    }


@pytest.mark.anyio
async def test_manifest_digest_must_match_the_body(served: Served) -> None:
    config = Blob(b"{}")
    await push_blob(served.client, REPO, config)
    body = json.dumps(image(config, [])).encode()
    wrong = Digest.compute(body + b" ")
    response = await served.client.put(
        f"/v2/{REPO}/manifests/{wrong}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.anyio
async def test_missing_subject_is_allowed_and_echoed(served: Served) -> None:
    config = Blob(b"{}")
    await push_blob(served.client, REPO, config)
    ghost = random_blob()
    document = image(config, [], subject=Pushed(ghost.digest, ghost.data, OCI_MANIFEST))
    body = json.dumps(document).encode()
    response = await served.client.put(
        f"/v2/{REPO}/manifests/{Digest.compute(body)}",
        content=body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    assert response.status_code == 201, response.text
    assert response.headers["OCI-Subject"] == str(ghost.digest)


@pytest.mark.anyio
async def test_delete_by_tag_removes_only_the_tag(served: Served) -> None:
    pushed = await push_image(served.client, REPO, "v1")
    response = await served.client.delete(f"/v2/{REPO}/manifests/v1")
    assert response.status_code == 202
    response = await served.client.get(f"/v2/{REPO}/manifests/v1")
    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"
    response = await served.client.get(f"/v2/{REPO}/manifests/{pushed.digest}")
    assert response.status_code == 200
    assert response.content == pushed.body


@pytest.mark.anyio
async def test_delete_by_digest_removes_its_tags(served: Served) -> None:
    pushed = await push_image(served.client, REPO, "v1")
    await push_manifest(served.client, REPO, "v2", json.loads(pushed.body))
    response = await served.client.delete(f"/v2/{REPO}/manifests/{pushed.digest}")
    assert response.status_code == 202
    for reference in ("v1", "v2", str(pushed.digest)):
        response = await served.client.get(f"/v2/{REPO}/manifests/{reference}")
        assert response.status_code == 404
        assert error_code(response) == "MANIFEST_UNKNOWN"
    response = await served.client.delete(f"/v2/{REPO}/manifests/{pushed.digest}")
    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"
    assert (await served.client.get(f"/v2/{REPO}/tags/list")).json()["tags"] == []


@pytest.mark.anyio
async def test_unknown_repository_and_manifest(served: Served) -> None:
    response = await served.client.get("/v2/nobody/here/manifests/latest")
    assert response.status_code == 404
    assert error_code(response) == "NAME_UNKNOWN"
    await push_image(served.client, REPO, "v1")
    response = await served.client.head(f"/v2/{REPO}/manifests/v9")
    assert response.status_code == 404
    assert response.content == b""
    response = await served.client.delete(f"/v2/{REPO}/manifests/v9")
    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"


@pytest.mark.anyio
async def test_tags_list_paginates_in_order(served: Served) -> None:
    pushed = await push_image(served.client, REPO, "b")
    document = json.loads(pushed.body)
    for tag in ("c", "a", "B", "a1"):
        await push_manifest(served.client, REPO, tag, document)
    response = await served.client.get(f"/v2/{REPO}/tags/list")
    assert response.json() == {"name": REPO, "tags": ["B", "a", "a1", "b", "c"]}
    assert "Link" not in response.headers

    seen: list[str] = []
    url = f"/v2/{REPO}/tags/list?n=2"
    while url:
        response = await served.client.get(url)
        assert response.status_code == 200
        page = response.json()["tags"]
        assert len(page) <= 2
        seen += page
        link = response.headers.get("Link")
        url = link[1 : link.index(">")] if link else ""
        if link:
            assert link.endswith('rel="next"')
    assert seen == ["B", "a", "a1", "b", "c"]

    response = await served.client.get(f"/v2/{REPO}/tags/list", params={"last": "a1"})
    assert response.json()["tags"] == ["b", "c"]
    response = await served.client.get(f"/v2/{REPO}/tags/list", params={"n": "0"})
    assert response.json()["tags"] == []
    response = await served.client.get("/v2/no/such/tags/list")
    assert response.status_code == 404
    assert error_code(response) == "NAME_UNKNOWN"


@pytest.mark.anyio
async def test_catalog_paginates_in_order(served: Served) -> None:
    names = ["zeta", "alpha/one", "alpha", "beta/x/y"]
    for name in names:
        await push_blob(served.client, name, random_blob())
    response = await served.client.get("/v2/_catalog")
    assert response.status_code == 200
    assert response.json() == {"repositories": sorted(names)}

    first = await served.client.get("/v2/_catalog", params={"n": "3"})
    assert first.json()["repositories"] == sorted(names)[:3]
    link = first.headers["Link"]
    assert link.startswith("</v2/_catalog?")
    assert "n=3" in link
    nxt = await served.client.get(link[1 : link.index(">")])
    assert nxt.json()["repositories"] == sorted(names)[3:]
    assert "Link" not in nxt.headers
