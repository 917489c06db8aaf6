"""Manifest ``Accept`` negotiation over /v2/ (rule: registry/http/_accept.py)."""

from __future__ import annotations

import json

import httpx
import pytest

from oci.mediatype import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1_SIGNED_MANIFEST,
    OCI_INDEX,
    OCI_MANIFEST,
)
from registry.http._accept import acceptable
from registry.http.state import state_of
from tests.http._oci import (
    Blob,
    Pushed,
    docker_image,
    error_code,
    index,
    push_blob,
    push_image,
    push_manifest,
    random_blob,
)
from tests.http.conftest import Served

REPO = "team/app"

# What containers/image (skopeo, podman) sends: one Accept line per type.
SKOPEO_LINES = [
    ("Accept", OCI_MANIFEST),
    ("Accept", DOCKER_MANIFEST),
    ("Accept", DOCKER_SCHEMA1_SIGNED_MANIFEST),
    ("Accept", "application/vnd.docker.distribution.manifest.v1+json"),
    ("Accept", DOCKER_MANIFEST_LIST),
    ("Accept", OCI_INDEX),
]
# What oras sends: one line listing them all.
ORAS_LINE = [
    ("Accept", ", ".join([OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST]))
]
DOCKER_ONLY = [("Accept", f"{DOCKER_MANIFEST}, {DOCKER_MANIFEST_LIST}")]


async def _get(
    served: Served, method: str, reference: str, accept: list[tuple[str, str]] | None
) -> httpx.Response:
    """A request with exactly these Accept lines; None sends no Accept header at all."""
    url = f"/v2/{REPO}/manifests/{reference}"
    if accept is None:
        request = served.client.build_request(method, url)
        del request.headers["accept"]  # httpx sends "*/*" unless told otherwise
    else:
        # Request headers replace the client's default Accept, every line kept.
        request = served.client.build_request(method, url, headers=accept)
    assert request.headers.get_list("accept") == [value for _, value in accept or []]
    return await served.client.send(request)


async def _index(served: Served) -> Pushed:
    child = await push_image(served.client, REPO)
    return await push_manifest(served.client, REPO, "multi", index([child]))


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["GET", "HEAD"])
async def test_an_index_is_unknown_to_a_client_that_accepts_only_docker_types(
    served: Served, method: str
) -> None:
    pushed = await _index(served)
    for reference in ("multi", str(pushed.digest)):
        response = await _get(served, method, reference, DOCKER_ONLY)
        assert response.status_code == 404, response.text
        if method == "GET":
            assert error_code(response) == "MANIFEST_UNKNOWN"
            assert response.json()["errors"][0]["detail"]["mediaType"] == OCI_INDEX
        else:
            assert response.content == b""


@pytest.mark.anyio
@pytest.mark.parametrize(
    "accept",
    [SKOPEO_LINES, ORAS_LINE, None, [("Accept", "*/*")], [("Accept", "application/*")]],
    ids=["skopeo-lines", "oras-line", "no-accept", "any", "application-any"],
)
async def test_clients_that_accept_the_type_get_the_stored_bytes(
    served: Served, accept: list[tuple[str, str]] | None
) -> None:
    pushed = await _index(served)
    for method in ("GET", "HEAD"):
        response = await _get(served, method, "multi", accept)
        assert response.status_code == 200, response.text
        assert response.headers["Content-Type"] == OCI_INDEX
        assert response.headers["Content-Length"] == str(len(pushed.body))
        assert response.content == (pushed.body if method == "GET" else b"")


@pytest.mark.anyio
async def test_docker_schema2_is_unknown_to_an_oci_only_client(served: Served) -> None:
    config, layer = Blob(b'{"architecture":"amd64"}'), random_blob()
    await push_blob(served.client, REPO, config)
    await push_blob(served.client, REPO, layer)
    await push_manifest(served.client, REPO, "d", docker_image(config, [layer]))
    refused = await _get(served, "GET", "d", [("Accept", f"{OCI_MANIFEST}, {OCI_INDEX}")])
    assert refused.status_code == 404
    assert error_code(refused) == "MANIFEST_UNKNOWN"
    served_lines = await _get(served, "GET", "d", SKOPEO_LINES)
    assert served_lines.status_code == 200
    assert served_lines.headers["Content-Type"] == DOCKER_MANIFEST


@pytest.mark.anyio
async def test_q_zero_refuses_even_beside_a_wildcard(served: Served) -> None:
    await _index(served)
    refused = await _get(served, "GET", "multi", [("Accept", f"*/*, {OCI_INDEX};q=0")])
    assert refused.status_code == 404
    allowed = await _get(served, "GET", "multi", [("Accept", f"*/*;q=0.1, {OCI_MANIFEST}")])
    assert allowed.status_code == 200


@pytest.mark.anyio
async def test_a_refused_get_is_not_a_pull(served: Served) -> None:
    await _index(served)
    recorder = state_of(served.app).pulls
    assert recorder.pending == 0
    assert (await _get(served, "GET", "multi", DOCKER_ONLY)).status_code == 404
    assert recorder.pending == 0
    assert (await _get(served, "GET", "multi", ORAS_LINE)).status_code == 200
    assert recorder.pending == 1


@pytest.mark.anyio
async def test_unknown_manifest_stays_unknown_whatever_the_accept(served: Served) -> None:
    await push_image(served.client, REPO, "v1")
    response = await _get(served, "GET", "absent", ORAS_LINE)
    assert response.status_code == 404
    assert error_code(response) == "MANIFEST_UNKNOWN"
    body = json.loads(response.content)
    assert "mediaType" not in (body["errors"][0].get("detail") or {})


@pytest.mark.parametrize(
    ("lines", "media_type", "expected"),
    [
        ([], OCI_INDEX, True),
        ([""], OCI_INDEX, True),  # blank: no usable range, as if absent
        (["not a media type"], OCI_INDEX, True),
        ([DOCKER_MANIFEST], OCI_INDEX, False),
        ([DOCKER_MANIFEST, OCI_INDEX], OCI_INDEX, True),
        ([f"{DOCKER_MANIFEST},{OCI_INDEX}"], OCI_INDEX, True),
        ([OCI_INDEX.upper()], OCI_INDEX, True),
        ([f"{OCI_INDEX} ; q=0.5"], OCI_INDEX, True),
        ([f"{OCI_INDEX};q=0"], OCI_INDEX, False),
        ([f"{OCI_INDEX};q=0.000"], OCI_INDEX, False),
        ([f"{OCI_INDEX};q=0.001"], OCI_INDEX, True),
        ([f"{OCI_INDEX};q=2"], OCI_INDEX, True),  # malformed q: the range is skipped
        ([f"{OCI_INDEX};q=2", DOCKER_MANIFEST], OCI_INDEX, False),
        ([f"{OCI_INDEX};charset=utf-8"], OCI_INDEX, True),
        (["application/*"], OCI_INDEX, True),
        (["text/*"], OCI_INDEX, False),
        (["application/*;q=0", "*/*"], OCI_INDEX, False),
        (["application/*;q=0", OCI_INDEX], OCI_INDEX, True),
        ([OCI_INDEX, f"{OCI_INDEX};q=0"], OCI_INDEX, True),  # one line offers it
        ([DOCKER_MANIFEST], "", True),  # a manifest stored without a type is served
    ],
)
def test_acceptable(lines: list[str], media_type: str, expected: bool) -> None:
    assert acceptable(lines, media_type) is expected
