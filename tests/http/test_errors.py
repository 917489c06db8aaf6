"""The one error renderer: spec errors as the spec's envelope, everything else bare."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from oci.errors import BackendUnavailable, BlobUnknown, Corruption, TooManyRequests
from registry.http.errors import exception_handlers

pytestmark = pytest.mark.anyio


async def _spec(request: Request) -> Response:
    raise TooManyRequests("slow down", detail={"limit": 5}, retry_after=3)


async def _unknown(request: Request) -> Response:
    raise BlobUnknown("blob sha256:abc is unknown", detail={"digest": "sha256:abc"})


async def _backend(request: Request) -> Response:
    raise BackendUnavailable("postgresql://secret@db/meta refused the connection")


async def _corrupt(request: Request) -> Response:
    raise Corruption("blob /srv/data/blobs/ab/cd does not hash to its name")


async def _crash(request: Request) -> Response:
    raise RuntimeError("a bug with a secret in it")


APP = Starlette(
    routes=[
        Route("/spec", _spec),
        Route("/unknown", _unknown, methods=["GET", "HEAD"]),
        Route("/backend", _backend),
        Route("/corrupt", _corrupt),
        Route("/crash", _crash),
    ],
    exception_handlers=exception_handlers,
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    # The app re-raises unexpected exceptions after answering (as under Hypercorn,
    # which logs them); the client must see the answer.
    transport = httpx.ASGITransport(app=APP, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://registry.test") as http:
        yield http


async def test_spec_error_envelope_status_and_headers(client: httpx.AsyncClient) -> None:
    response = await client.get("/spec")
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "3"
    assert response.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert response.json() == {
        "errors": [{"code": "TOOMANYREQUESTS", "message": "slow down", "detail": {"limit": 5}}]
    }


async def test_head_error_has_no_body(client: httpx.AsyncClient) -> None:
    get = await client.get("/unknown")
    head = await client.head("/unknown")
    assert get.status_code == head.status_code == 404
    assert get.json()["errors"][0]["code"] == "BLOB_UNKNOWN"
    assert head.content == b""
    assert head.headers["Content-Length"] == str(len(get.content))


@pytest.mark.parametrize(("path", "status"), [("/backend", 503), ("/corrupt", 500)])
async def test_operational_errors_leak_nothing(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture, path: str, status: int
) -> None:
    with caplog.at_level(logging.ERROR, logger="artifact_store.http"):
        response = await client.get(path)
    assert response.status_code == status
    error = response.json()["errors"][0]
    assert error["code"] == "UNKNOWN"
    assert "secret" not in response.text
    assert "/srv" not in response.text
    # The operator finds the cause in the log under the id the client was given.
    request_id = error["detail"]["request_id"]
    assert any(request_id in record.getMessage() for record in caplog.records)


async def test_anything_else_is_a_bare_500_logged_with_an_id(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="artifact_store.http"):
        response = await client.get("/crash")
    assert response.status_code == 500
    assert "secret" not in response.text
    assert "errors" not in response.text
    [record] = [r for r in caplog.records if r.name == "artifact_store.http"]
    assert "crashed [" in record.getMessage()
    assert record.exc_info is not None


async def test_unrouted_paths_and_methods_use_spec_codes(client: httpx.AsyncClient) -> None:
    missing = await client.get("/nowhere")
    assert missing.status_code == 404
    assert missing.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    wrong = await client.post("/spec")
    assert wrong.status_code == 405
    assert wrong.json()["errors"][0]["code"] == "UNSUPPORTED"
