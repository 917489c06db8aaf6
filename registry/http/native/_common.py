"""What the /api/v1/artifacts modules share: the prefix, the name convertor, JSON shapes."""

from __future__ import annotations

from typing import Any

from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from oci import native
from oci.digest import Digest
from oci.errors import DigestInvalid
from oci.reference import validate_repository
from registry.native import artifacts

__all__ = ["PREFIX", "artifact_json", "digest_param", "json_response", "name_of"]

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


def name_of(request: Request) -> str:
    return validate_repository(request.path_params["name"])


def json_response(
    document: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return JSONResponse(document, status, headers=headers)


def artifact_json(artifact: artifacts.Artifact) -> dict[str, Any]:
    return {"digest": str(artifact.digest), "manifest": native.to_json(artifact.manifest)}


def digest_param(request: Request, algorithm: str) -> Digest | None:
    value = request.query_params.get(algorithm)
    if value is None:
        return None
    digest = Digest.parse(value)
    if digest.algorithm != algorithm:
        raise DigestInvalid(f"{algorithm}= must name a {algorithm} digest, got {value!r}")
    return digest
