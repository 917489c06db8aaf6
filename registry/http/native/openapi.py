"""The native API's part of the /api/v1/ contract: artifacts, upload sessions, files.

Built into the one document by ``registry.http.openapi``; served at
/api/v1/openapi.json (``registry.http.apidoc``).
"""

from __future__ import annotations

from registry.http.openapi import NAME_PARAMETER as _NAME
from registry.http.openapi import Section, errors, json_response, ref

__all__ = ["SECTION"]

_DIGEST = {"type": "string", "pattern": "^(sha256|blake3):[a-f0-9]{64}$"}
_VERSION = {
    "name": "version",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "pattern": "^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$"},
}
_UPLOAD = {"name": "upload", "in": "path", "required": True, "schema": {"type": "string"}}


_FILE = {
    "type": "object",
    "required": ["path", "size", "type", "sha256"],
    "additionalProperties": False,
    "properties": {
        "path": {"type": "string"},
        "size": {"type": "integer", "minimum": 0},
        "type": {"type": "string"},
        "sha256": _DIGEST,
        "blake3": _DIGEST,
    },
}
_MANIFEST = {
    "type": "object",
    "description": "The native manifest (docs/native-manifest.md), JSON representation.",
    "required": ["v", "name", "version", "files"],
    "additionalProperties": False,
    "properties": {
        "v": {"const": 1},
        "name": {"type": "string"},
        "version": {"type": "string"},
        "files": {"type": "array", "items": ref("File")},
        "created": {"type": "string"},
        "producer": {"type": "string"},
        "run": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "links": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["system", "id"],
                "additionalProperties": False,
                "properties": {
                    "system": {"type": "string"},
                    "id": {"type": "string"},
                    "url": {"type": "string"},
                },
            },
        },
        "retention": {
            "type": "object",
            "required": ["class"],
            "additionalProperties": False,
            "properties": {"class": {"type": "string"}, "until": {"type": "string"}},
        },
        "tier": {"enum": ["hot", "warm", "cold", "archive"]},
        "synth": {"const": True},
    },
}
_ARTIFACT = {
    "type": "object",
    "required": ["digest", "manifest"],
    "properties": {"digest": _DIGEST, "manifest": ref("Manifest")},
}
_UPLOAD_STATE = {
    "type": "object",
    "required": ["id", "offset"],
    "properties": {"id": {"type": "string"}, "offset": {"type": "integer", "minimum": 0}},
}

_upload_ops = {
    "parameters": [_NAME, _UPLOAD],
    "get": {
        "summary": "Upload session status: how many bytes are staged (resume from there).",
        "responses": {"200": json_response(ref("Upload"), "The session."), **errors(400, 404)},
    },
    "patch": {
        "summary": "Append a chunk; Content-Range 'START-END' must start at the offset.",
        "requestBody": {"content": {"application/octet-stream": {"schema": {}}}},
        "responses": {"200": json_response(ref("Upload"), "New offset."), **errors(400, 404, 416)},
    },
    "put": {
        "summary": "Append an optional last chunk and commit under the given digest(s).",
        "parameters": [
            {"name": "sha256", "in": "query", "schema": _DIGEST},
            {"name": "blake3", "in": "query", "schema": _DIGEST},
        ],
        "requestBody": {"content": {"application/octet-stream": {"schema": {}}}},
        "responses": {
            "201": json_response(ref("Committed"), "Committed blob."),
            **errors(400, 404, 416),
        },
    },
    "delete": {
        "summary": "Cancel the session and discard its bytes.",
        "responses": {"204": {"description": "Cancelled."}, **errors(400, 404)},
    },
}

_version_ops = {
    "parameters": [_NAME, _VERSION],
    "get": {
        "summary": "The artifact: JSON by default, canonical CBOR for that Accept.",
        "responses": {
            "200": {
                "description": "The artifact.",
                "content": {
                    "application/json": {"schema": ref("Artifact")},
                    "application/vnd.artifactstore.manifest.v1+cbor": {"schema": {}},
                },
            },
            **errors(400, 404),
        },
    },
    "put": {
        "summary": "Publish a version; every file must be a committed blob of the repository.",
        "requestBody": {
            "required": True,
            "content": {
                "application/vnd.artifactstore.manifest.v1+cbor": {"schema": ref("Manifest")},
                "application/vnd.artifactstore.manifest.v1+json": {"schema": ref("Manifest")},
            },
        },
        "responses": {
            "201": json_response(ref("Artifact"), "Published."),
            **errors(400, 404, 405, 413, 415),
        },
    },
    "delete": {
        "summary": "Untag the version (history keeps it).",
        "responses": {"204": {"description": "Deleted."}, **errors(400, 404)},
    },
}

SECTION = Section(
    paths={
        "/api/v1/artifacts/{name}/uploads": {
            "parameters": [_NAME],
            "post": {
                "summary": "Open an upload session (the same mechanism as /v2/ uploads); "
                "with sha256= and/or blake3= the body is the whole blob, committed at once.",
                "parameters": [
                    {"name": "sha256", "in": "query", "schema": _DIGEST},
                    {"name": "blake3", "in": "query", "schema": _DIGEST},
                ],
                "requestBody": {"content": {"application/octet-stream": {"schema": {}}}},
                "responses": {
                    "200": json_response(
                        ref("Committed"), "The repository already held the blob: nothing stored."
                    ),
                    "201": json_response(
                        {"oneOf": [ref("Upload"), ref("Committed")]},
                        "Session opened, or blob committed.",
                    ),
                    **errors(400, 404),
                },
            },
        },
        "/api/v1/artifacts/{name}/uploads/{upload}": _upload_ops,
        "/api/v1/artifacts/{name}/versions": {
            "parameters": [_NAME],
            "get": {
                "summary": "Versions in tag order, filtered by labels (all must match).",
                "parameters": [
                    {
                        "name": "n",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                    {"name": "last", "in": "query", "schema": {"type": "string"}},
                    {
                        "name": "label",
                        "in": "query",
                        "description": "KEY=VALUE, repeatable",
                        "schema": {"type": "array", "items": {"type": "string"}},
                        "style": "form",
                        "explode": True,
                    },
                ],  # fmt: skip
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["name", "versions"],
                            "properties": {
                                "name": {"type": "string"},
                                "versions": {"type": "array", "items": ref("Artifact")},
                            },
                        },
                        "A page; a Link header names the next one.",
                    ),
                    **errors(400, 404),
                },
            },
        },
        "/api/v1/artifacts/{name}/versions/{version}": _version_ops,
        "/api/v1/artifacts/{name}/versions/{version}/files/{path}": {
            "parameters": [
                _NAME,
                _VERSION,
                {"name": "path", "in": "path", "required": True, "schema": {"type": "string"}},
            ],
            "get": {
                "summary": "One file's bytes, streamed; a single Range is honoured.",
                "responses": {
                    "200": {"description": "The file.", "content": {"*/*": {"schema": {}}}},
                    "206": {"description": "A range.", "content": {"*/*": {"schema": {}}}},
                    **errors(400, 404, 416),
                },
            },
        },
        "/api/v1/artifacts/{name}/history": {
            "parameters": [_NAME],
            "get": {
                "summary": "version -> manifest digest as it stood at a time (default now).",
                "parameters": [
                    {
                        "name": "at",
                        "in": "query",
                        "schema": {"type": "string", "format": "date-time"},
                    },
                    {"name": "version", "in": "query", "schema": _VERSION["schema"]},
                ],  # fmt: skip
                "responses": {
                    "200": json_response(
                        {
                            "type": "object",
                            "required": ["name", "at", "versions"],
                            "properties": {
                                "name": {"type": "string"},
                                "at": {"type": "string"},
                                "versions": {
                                    "type": "object",
                                    "additionalProperties": _DIGEST,
                                },
                            },
                        },
                        "The mapping.",
                    ),
                    **errors(400, 404),
                },
            },
        },
    },
    schemas={
        "File": _FILE,
        "Manifest": _MANIFEST,
        "Artifact": _ARTIFACT,
        "Upload": _UPLOAD_STATE,
        "Committed": {
            "type": "object",
            "required": ["sha256", "blake3", "size"],
            "properties": {"sha256": _DIGEST, "blake3": _DIGEST, "size": {"type": "integer"}},
        },
    },
)
