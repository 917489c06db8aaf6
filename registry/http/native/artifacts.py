"""Native artifacts: ``/api/v1/artifacts/{name}/versions[/{version}[/files/{path}]]``, history.

Handlers parse requests into calls of ``registry.native.artifacts`` and
shape JSON or CBOR responses. Errors are raised as ``oci.errors``
exceptions; the one renderer in ``registry.http.errors`` writes them.
"""

from __future__ import annotations

import datetime as dt
import re
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from oci import native
from oci.errors import PaginationNumberInvalid
from oci.mediatype import base_type
from oci.reference import validate_tag
from registry.http.native._common import PREFIX, artifact_json, json_response, name_of
from registry.http.ranges import parse_range
from registry.http.request import actor, override_of, path_for, read_capped, registry_of
from registry.native import artifacts
from registry.native.uploads import QueryInvalid
from registry.service import blobs

__all__ = ["routes"]


async def put_version(request: Request) -> Response:
    name = name_of(request)
    version = validate_tag(request.path_params["version"])
    registry = registry_of(request)
    body = await read_capped(request, registry.settings.server.max_manifest_bytes)
    m = artifacts.decode_body(body, request.headers.get("content-type"))
    override = await override_of(request, name)
    artifact = await artifacts.publish(
        registry, name, version, m, actor=actor(request), override=override
    )
    return json_response(
        artifact_json(artifact),
        201,
        headers={"Location": path_for(request, f"{PREFIX}/{name}/versions/{version}")},
    )


def _wants_cbor(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    kinds = [base_type(part) for part in accept.split(",")]
    return native.NATIVE_MANIFEST_CBOR in kinds


async def get_version(request: Request) -> Response:
    name = name_of(request)
    artifact = await artifacts.get_artifact(
        registry_of(request), name, request.path_params["version"]
    )
    headers = {"Artifact-Digest": str(artifact.digest), "Vary": "Accept"}
    if _wants_cbor(request):
        body = native.encode_cbor(artifact.manifest)
        return Response(body, 200, headers=headers, media_type=native.NATIVE_MANIFEST_CBOR)
    return json_response(artifact_json(artifact), headers=headers)


async def delete_version(request: Request) -> Response:
    name = name_of(request)
    await artifacts.delete_artifact(
        registry_of(request),
        name,
        request.path_params["version"],
        actor=actor(request),
        override=await override_of(request, name),
    )
    return Response(None, 204)


_LABEL = re.compile(r"([\x21-\x3c\x3e-\x7e]+)=(.*)", re.DOTALL)


async def list_versions(request: Request) -> Response:
    name = name_of(request)
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
    found, more = await artifacts.list_artifacts(registry_of(request), name, n, last, labels)
    headers = {}
    if more:
        query = urlencode([("n", n), ("last", found[-1].manifest.version)] +
                          [("label", f"{k}={v}") for k, v in labels.items()])  # fmt: skip
        headers["Link"] = f'<{path_for(request, f"{PREFIX}/{name}/versions")}?{query}>; rel="next"'
    return json_response(
        {
            "name": name,
            "versions": [{"version": a.manifest.version, **artifact_json(a)} for a in found],
        },
        headers=headers,
    )


async def get_file(request: Request) -> Response:
    name = name_of(request)
    registry = registry_of(request)
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
    name = name_of(request)
    at = _time(request.query_params.get("at"))
    version = request.query_params.get("version")
    mapping = await artifacts.history(registry_of(request), name, at, version)
    return json_response(
        {
            "name": name,
            "at": native.format_time(at),
            "versions": {tag: str(digest) for tag, digest in mapping.items()},
        }
    )


_N = "{name:repository}"
routes = [
    Route(f"{PREFIX}/{_N}/versions", list_versions, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}", get_version, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}", put_version, methods=["PUT"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}", delete_version, methods=["DELETE"]),
    Route(f"{PREFIX}/{_N}/versions/{{version}}/files/{{path:path}}", get_file, methods=["GET"]),
    Route(f"{PREFIX}/{_N}/history", history, methods=["GET"]),
]
