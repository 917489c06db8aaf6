"""The OpenAPI description of the retention endpoints (registry/http/retention.py).

Merged into the one /api/v1/ document by ``registry.native.openapi``, so the
schemathesis run over that document (tests/native/test_openapi.py) holds
these routes to it too.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PATHS", "SCHEMAS"]

_NAME_PATTERN = "^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"
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


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    return {str(s): {"$ref": "#/components/responses/Error"} for s in statuses}


SCHEMAS: dict[str, Any] = {
    "RetentionItem": {"type": "object", "required": list(_ITEM_FIELDS), "properties": _ITEM_FIELDS},
    "RetentionPlan": {
        "type": "object",
        "required": ["now", "repository", "digest", "deletions", "kept"],
        "properties": {
            "now": {"type": "string", "format": "date-time"},
            "repository": _NULLABLE_TEXT,
            "digest": {**_TEXT, "description": "Names the plan's time, scope and deletions."},
            "deletions": {"type": "array", "items": _ref("RetentionItem")},
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
            "deleted": {"type": "array", "items": _ref("RetentionItem")},
            "skipped": {
                "type": "array",
                "items": {
                    "allOf": [
                        _ref("RetentionItem"),
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

PATHS: dict[str, Any] = {
    "/api/v1/retention/plan": {
        "get": {
            "summary": "What retention would delete now, each with its rule and why nothing "
            "protects it; and what a rule would delete but something protects.",
            "parameters": [
                {
                    "name": "repository",
                    "in": "query",
                    "description": "Only this repository (default: all).",
                    "schema": {"type": "string", "pattern": _NAME_PATTERN},
                }
            ],
            "responses": {
                "200": _json(_ref("RetentionPlan"), "The plan; nothing was changed."),
                **_errors(400, 401, 403),
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
                                "repository": {"type": "string", "pattern": _NAME_PATTERN},
                                "dry_run": {"type": "boolean"},
                                "plan": _ref("RetentionPlan"),
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("RetentionReport"), "What was deleted and what was skipped."),
                **_errors(400, 401, 403, 409, 413),
            },
        }
    },
}
