"""The OpenAPI description of the retention endpoints (registry/http/retention.py).

Built into the one /api/v1/ document by ``registry.http.openapi``, so the
schemathesis run over that document (tests/native/test_openapi.py) holds
these routes to it too.
"""

from __future__ import annotations

from typing import Any

from registry.http.openapi import REPOSITORY_PATTERN, Section, errors, json_response, ref

__all__ = ["SECTION"]

_TEXT = {"type": "string"}
_NULLABLE_TEXT = {"type": ["string", "null"]}
_KIND = {"type": "string", "enum": ["tag", "manifest"]}
_ITEM_FIELDS = {
    "kind": _KIND,
    "repository": _TEXT,
    "digest": _TEXT,
    "tag": {**_NULLABLE_TEXT, "description": "Set for a tag deletion; null for a manifest."},
    "rule": {**_TEXT, "description": "The rule's name, or native-retention."},
    "reason": _TEXT,
    "detail": _TEXT,
    "unprotected": {
        "type": "array",
        "items": _TEXT,
        "description": "Each protection checked, and why it does not apply.",
    },
}


_SCHEMAS: dict[str, Any] = {
    "RetentionItem": {"type": "object", "required": list(_ITEM_FIELDS), "properties": _ITEM_FIELDS},
    "RetentionPlan": {
        "type": "object",
        "required": ["now", "repository", "digest", "deletions", "kept"],
        "properties": {
            "now": {"type": "string", "format": "date-time"},
            "repository": _NULLABLE_TEXT,
            "digest": {**_TEXT, "description": "Names the plan's time, scope and deletions."},
            "deletions": {"type": "array", "items": ref("RetentionItem")},
            "kept": {
                "type": "array",
                "items": {
                    "type": "object",
                    "required": ["kind", "repository", "digest", "tag", "rule", "reason"],
                    "properties": {
                        "kind": _KIND,
                        "repository": _TEXT,
                        "digest": _TEXT,
                        "tag": _NULLABLE_TEXT,
                        "rule": _TEXT,
                        "reason": _TEXT,
                        "protected_by": _TEXT,
                    },
                },
            },
        },
    },
    "RetentionReport": {
        "type": "object",
        "required": ["plan", "dry_run", "deleted", "skipped"],
        "properties": {
            "plan": _TEXT,
            "dry_run": {"type": "boolean"},
            "deleted": {"type": "array", "items": ref("RetentionItem")},
            "skipped": {
                "type": "array",
                "items": {
                    "allOf": [
                        ref("RetentionItem"),
                        {
                            "type": "object",
                            "required": ["skipped"],
                            "properties": {"skipped": _TEXT},
                        },
                    ]
                },
            },
        },
    },
}

_PATHS: dict[str, Any] = {
    "/api/v1/retention/plan": {
        "get": {
            "summary": "What retention would delete now, each with its rule and why nothing "
            "protects it; and what a rule would delete but something protects.",
            "parameters": [
                {
                    "name": "repository",
                    "in": "query",
                    "description": "Only this repository (default: all).",
                    "schema": {"type": "string", "pattern": REPOSITORY_PATTERN},
                }
            ],
            "responses": {
                "200": json_response(ref("RetentionPlan"), "The plan; nothing was changed."),
                **errors(400, 401, 403),
            },
        }
    },
    "/api/v1/retention/apply": {
        "post": {
            "summary": "Apply a fresh plan, or exactly a reviewed one (docs/lifecycle.md).",
            "requestBody": {
                "required": False,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "repository": {"type": "string", "pattern": REPOSITORY_PATTERN},
                                "dry_run": {"type": "boolean"},
                                "plan": ref("RetentionPlan"),
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": json_response(
                    ref("RetentionReport"), "What was deleted and what was skipped."
                ),
                **errors(400, 401, 403, 409, 413),
            },
        }
    },
}

SECTION = Section(_PATHS, _SCHEMAS)
