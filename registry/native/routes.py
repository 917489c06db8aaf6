"""The native API under /api/v1/: upload sessions, artifacts, files, history.

Handlers parse requests into calls of ``registry.native.artifacts`` and the
shared upload service (``registry.service.blobs``: one session mechanism for
/v2/ and /api/v1/), and shape JSON or CBOR responses. Errors are raised as
``oci.errors`` exceptions; the one renderer in ``registry.http.errors`` writes
them. The contract is ``registry.native.openapi``.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any
from urllib.parse import quote, urlencode

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from oci import native
from oci.digest import Digest
from oci.errors import (
    DigestInvalid,
    PaginationNumberInvalid,
)
from oci.mediatype import base_type
from oci.reference import validate_repository, validate_tag
from registry.http._lifecycle import override_of
from registry.http._request import actor, read_capped
from registry.http.ranges import parse_range
from registry.native import artifacts
from registry.native.openapi import OPENAPI
from registry.native.uploads import QueryInvalid, commit_upload, push_blob
from registry.service import blobs
from registry.service.registry import Registry
from storage.base import BlobInfo

__all__ = ["routes"]

PREFIX = "/api/v1/artifacts"


class _Repository(Convertor[str]):
    """Any text, matched lazily: the name grammar forbids no word, so a file path
    holding ``/versions/`` must not extend the name, and the shortest name that
    lets the rest of the route match wins. The handler validates the name, so a
    malformed one is NAME_INVALID (400) rather than an unknown endpoint."""

    regex = r".+?"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("repository", _Repository())


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


def _name(request: Request) -> str:
    return validate_repository(request.path_params["name"])


def _json(document: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse(document, status, headers=headers)


def _artifact_json(artifact: artifacts.Artifact) -> dict[str, Any]:
    return {"digest": str(artifact.digest), "manifest": native.to_json(artifact.manifest)}


# -- upload sessions -----------------------------------------------------------


def _upload_json(request: Request, name: str, upload_id: str, offset: int) -> Response:
    location = f"{PREFIX}/{name}/uploads/{quote(upload_id)}"
    return _json(
        {"id": upload_id, "offset": offset},
        headers={"Location": location, "Upload-Offset": str(offset)},
    )


async def create_upload(request: Request) -> Response:
    """Open a session; with sha256= and/or blake3= the body is the whole blob, committed at once
    (one request and one event instead of three of each: what makes many small files cheap)."""
    name = _name(request)
    registry = _registry(request)
    sha256, blake3 = _digest(request, "sha256"), _digest(request, "blake3")
    if sha256 is None and blake3 is None:
        upload_id = await blobs.new_upload(registry, name, actor=actor(request))
        response = _upload_json(request, name, upload_id, 0)
        response.status_code = 201
        return response
    info, created = await push_blob(
        registry, name, sha256, blake3, request.stream(),
        request.headers.get("content-length"), actor=actor(request),
    )  # fmt: skip
    return _committed(info, 201 if created else 200)


def _committed(info: BlobInfo, status: int = 201) -> Response:
    document = {"sha256": str(info.sha256), "blake3": str(info.blake3), "size": info.size}
    return _json(document, status)


async def upload_status(request: Request) -> Response:
    name = _name(request)
    upload = await blobs.upload_status(
        _registry(request), name, request.path_params["upload"], actor=actor(request)
    )
    return _upload_json(request, name, upload.id, upload.offset)


async def append_upload(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    upload = await blobs.get_upload(registry, name, request.path_params["upload"])
    offset = await blobs.append(
        registry,
        upload,
        request.stream(),
        request.headers.get("content-range"),
        request.headers.get("content-length"),
        actor=actor(request),
    )
    return _upload_json(request, name, upload.id, offset)


def _digest(request: Request, algorithm: str) -> Digest | None:
    value = request.query_params.get(algorithm)
    if value is None:
        return None
    digest = Digest.parse(value)
    if digest.algorithm != algorithm:
        raise DigestInvalid(f"{algorithm}= must name a {algorithm} digest, got {value!r}")
    return digest


async def finish_upload(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    sha256, blake3 = _digest(request, "sha256"), _digest(request, "blake3")
    upload = await blobs.get_upload(registry, name, request.path_params["upload"])
    info = await commit_upload(
        registry,
        upload,
        sha256,
        blake3,
        request.stream(),
        request.headers.get("content-range"),
        request.headers.get("content-length"),
        actor=actor(request),
    )
    return _committed(info)


async def cancel_upload(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    upload = await blobs.get_upload(registry, name, request.path_params["upload"])
    await blobs.cancel_upload(registry, upload, actor=actor(request))
    return Response(None, 204)


# -- artifacts -----------------------------------------------------------------


async def put_version(request: Request) -> Response:
    name = _name(request)
    version = validate_tag(request.path_params["version"])
    registry = _registry(request)
    body = await read_capped(request, registry.settings.server.max_manifest_bytes)
    m = artifacts.decode_body(body, request.headers.get("content-type"))
    override = await override_of(request, name)
    artifact = await artifacts.publish(
        registry, name, version, m, actor=actor(request), override=override
    )
    return _json(
        _artifact_json(artifact),
        201,
        headers={"Location": f"{PREFIX}/{name}/versions/{version}"},
    )


def _wants_cbor(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    kinds = [base_type(part) for part in accept.split(",")]
    return native.NATIVE_MANIFEST_CBOR in kinds


async def get_version(request: Request) -> Response:
    name = _name(request)
    artifact = await artifacts.get_artifact(
        _registry(request), name, request.path_params["version"]
    )
    headers = {"Artifact-Digest": str(artifact.digest), "Vary": "Accept"}
    if _wants_cbor(request):
        body = native.encode_cbor(artifact.manifest)
        return Response(body, 200, headers=headers, media_type=native.NATIVE_MANIFEST_CBOR)
    return _json(_artifact_json(artifact), headers=headers)


async def delete_version(request: Request) -> Response:
    name = _name(request)
    await artifacts.delete_artifact(
        _registry(request),
        name,
        request.path_params["version"],
        actor=actor(request),
        override=await override_of(request, name),
    )
    return Response(None, 204)


_LABEL = re.compile(r"([\x21-\x3c\x3e-\x7e]+)=(.*)", re.DOTALL)


async def list_versions(request: Request) -> Response:
    name = _name(request)
    raw = request.query_params.get("n", "100")
    if not raw.isdigit() or not 1 <= int(raw) <= 1000:
        raise PaginationNumberInvalid(f"n must be an integer in 1..1000, got {raw!r}")
    n = int(raw)
    last = request.query_params.get("last")
    labels: dict[str, str] = {}
    for item in request.query_params.getlist("label"):
        match = _LABEL.fullmatch(item)
        if match is None:
            raise QueryInvalid(f"label filter must be KEY=VALUE, got {item!r}")
        labels[match.group(1)] = match.group(2)
    found, more = await artifacts.list_artifacts(_registry(request), name, n, last, labels)
    headers = {}
    if more:
        query = urlencode([("n", n), ("last", found[-1].manifest.version)] +
                          [("label", f"{k}={v}") for k, v in labels.items()])  # fmt: skip
        headers["Link"] = f'<{PREFIX}/{name}/versions?{query}>; rel="next"'
    return _json(
        {
            "name": name,
            "versions": [{"version": a.manifest.version, **_artifact_json(a)} for a in found],
        },
        headers=headers,
    )


async def get_file(request: Request) -> Response:
    name = _name(request)
    registry = _registry(request)
    layer = await artifacts.find_file(
        registry, name, request.path_params["version"], request.path_params["path"]
    )
    blob = await blobs.require_blob(registry, name, layer.digest)
    headers = {
        "Accept-Ranges": "bytes",
        "Digest-SHA256": str(blob.sha256),
        "Digest-BLAKE3": str(blob.blake3),
        "ETag": f'"{blob.sha256}"',
    }
    wanted = parse_range(request.headers.get("range"), blob.size)
    if wanted is None:
        offset, length, status = 0, blob.size, 200
    else:
        offset, length = wanted
        status = 206
        headers["Content-Range"] = f"bytes {offset}-{offset + length - 1}/{blob.size}"
    chunks = await registry.blobs.read(blob.sha256, offset, length)
    headers["Content-Length"] = str(length)
    return StreamingResponse(chunks, status, headers=headers, media_type=layer.media_type)


def _time(value: str | None) -> dt.datetime:
    if value is None:
        return dt.datetime.now(dt.UTC)
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise QueryInvalid(
            f"at must be an RFC 3339 time with an offset, got {value!r}", detail={"at": value}
        )
    return parsed.astimezone(dt.UTC)


async def history(request: Request) -> Response:
    name = _name(request)
    at = _time(request.query_params.get("at"))
    version = request.query_params.get("version")
    mapping = await artifacts.history(_registry(request), name, at, version)
    return _json(
        {
            "name": name,
            "at": native.format_time(at),
            "versions": {tag: str(digest) for tag, digest in mapping.items()},
        }
    )


async def openapi(request: Request) -> Response:
    return Response(json.dumps(OPENAPI), 200, media_type="application/json")


_N = "{name:repository}"
routes = [
    Route("/api/v1/openapi.json", openapi, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/uploads", create_upload, methods=["POST"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", upload_status, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", append_upload, methods=["PATCH"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", finish_upload, methods=["PUT"]),
    Route(f"{PREFIX}/{_N}/uploads/{{upload}}", cancel_upload, methods=["DELETE"]),
    Route(f"{PREFIX}/{_N}/versions", list_versions, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}", get_version, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}", put_version, methods=["PUT"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}", delete_version, methods=["DELETE"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}/files/{{path:path}}", get_file, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/history", history, methods=["GET"]),
]
