"""The OpenAPI description of the hold and retention-extension endpoints (registry/http/holds.py).

Built into the one /api/v1/ document by ``registry.http.openapi``, so the
schemathesis run over that document (tests/native/test_openapi.py) holds
these routes to it too.
"""

from __future__ import annotations

from typing import Any

from registry.http.openapi import (
    NAME_PARAMETER,
    REPOSITORY_PATTERN,
    Section,
    errors,
    json_response,
    ref,
)

__all__ = ["SECTION"]

_SCOPE = {
    "name": "repository",
    "in": "query",
    "description": "Scope the request to one repository (what a repository's admins may do); "
    "without it the request needs a registry-wide admin.",
    "schema": {"type": "string", "pattern": REPOSITORY_PATTERN},
}
_ID = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
_TIME = {"type": "string", "format": "date-time"}
_NULLABLE_TEXT = {"type": ["string", "null"]}


_SCHEMAS: dict[str, Any] = {
    "Hold": {
        "type": "object",
        "required": ["id", "repository", "digest", "tag", "reason", "placed_by", "placed_at"],
        "properties": {
            "id": {"type": "string"},
            "repository": {"type": "string"},
            "digest": {
                **_NULLABLE_TEXT,
                "description": "The held manifest; null when the whole repository is held.",
            },
            "tag": {
                **_NULLABLE_TEXT,
                "description": "The held tag or artifact version, when the hold named one.",
            },
            "reason": {"type": "string"},
            "placed_by": {"type": "string"},
            "placed_at": _TIME,
        },
    },
    "HoldRequest": {
        "type": "object",
        "required": ["repository", "reason"],
        "properties": {
            "repository": {"type": "string", "pattern": REPOSITORY_PATTERN},
            "reference": {
                **_NULLABLE_TEXT,
                "description": "A manifest digest, a tag or an artifact version; "
                "absent or null holds the whole repository.",
            },
            "reason": {"type": "string", "minLength": 1, "maxLength": 4096},
        },
    },
    "RetentionExtension": {
        "type": "object",
        "required": ["name", "version", "digest", "until"],
        "properties": {
            "name": {"type": "string"},
            "version": {"type": "string"},
            "digest": {"type": "string"},
            "until": _TIME,
        },
    },
}

_PATHS: dict[str, Any] = {
    "/api/v1/holds": {
        "post": {
            "summary": "Place a legal hold on a repository, a manifest or an artifact version.",
            "parameters": [_SCOPE],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": ref("HoldRequest")}},
            },
            "responses": {
                "201": json_response(ref("Hold"), "The hold, now active."),
                **errors(400, 401, 403, 404, 413),
            },
        },
        "get": {
            "summary": "The active legal holds, oldest first.",
            "parameters": [_SCOPE],
            "responses": {
                "200": json_response(
                    {
                        "type": "object",
                        "required": ["holds"],
                        "properties": {"holds": {"type": "array", "items": ref("Hold")}},
                    },
                    "The holds.",
                ),
                **errors(400, 401, 403),
            },
        },
    },
    "/api/v1/holds/{id}": {
        "parameters": [_ID],
        "get": {
            "summary": "One active legal hold.",
            "parameters": [_SCOPE],
            "responses": {
                "200": json_response(ref("Hold"), "The hold."),
                **errors(400, 401, 403, 404),
            },
        },
        "delete": {
            "summary": "Release a legal hold; the reason goes into the event log.",
            "parameters": [
                _SCOPE,
                {"name": "reason", "in": "query", "schema": {"type": "string", "minLength": 1}},
            ],
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {"reason": {"type": "string", "minLength": 1}},
                        }
                    }
                },
            },
            "responses": {
                "200": json_response(
                    {
                        "allOf": [
                            ref("Hold"),
                            {
                                "type": "object",
                                "required": ["released"],
                                "properties": {
                                    "released": {
                                        "type": "object",
                                        "required": ["reason", "by"],
                                        "properties": {
                                            "reason": {"type": "string"},
                                            "by": {"type": "string"},
                                        },
                                    }
                                },
                            },
                        ]
                    },
                    "The hold as it was, and who released it why.",
                ),
                **errors(400, 401, 403, 404, 413),
            },
        },
    },
    "/api/v1/artifacts/{name}/versions/{version}/retention": {
        "parameters": [
            NAME_PARAMETER,
            {
                "name": "version",
                "in": "path",
                "required": True,
                "description": "An artifact version (tag), or a manifest digest.",
                "schema": {"type": "string"},
            },
        ],
        "post": {
            "summary": "Keep a version until a later date; never shortens (403 DENIED).",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["until"],
                            "properties": {"until": _TIME},
                        }
                    }
                },
            },
            "responses": {
                "200": json_response(ref("RetentionExtension"), "The new keep-until date."),
                **errors(400, 401, 403, 404, 413),
            },
        },
    },
}

SECTION = Section(_PATHS, _SCHEMAS)
