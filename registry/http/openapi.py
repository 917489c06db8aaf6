"""The OpenAPI 3.1 builder: what every /api/v1/ section shares, written once.

Hand-written rather than generated: the routes are plain Starlette handlers,
and a contract written down separately is one that a schemathesis run can
hold the code to (tests/native/test_openapi.py). Each resource declares its
paths and schemas as a ``Section`` beside its routes
(``registry.http.native.openapi``, ``holds_openapi``, ``retention_openapi``);
``build`` adds the scaffolding: the document header, the error envelope every
error status refers to, and a check that no two sections claim the same path
or schema name.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ERROR_SCHEMA",
    "NAME_PARAMETER",
    "REPOSITORY_PATTERN",
    "Section",
    "build",
    "errors",
    "json_response",
    "ref",
]

# The distribution spec's repository name grammar, path components and all.
REPOSITORY_PATTERN = "^[a-z0-9]+(?:[._-][a-z0-9]+)*(?:/[a-z0-9]+(?:[._-][a-z0-9]+)*)*$"

# The {name} path parameter of /api/v1/artifacts/{name}/...: the pattern is one
# component's, which is what schemathesis can put into a path segment.
NAME_PARAMETER: dict[str, Any] = {
    "name": "name",
    "in": "path",
    "required": True,
    "description": "Repository name of the distribution spec (may contain '/').",
    "schema": {"type": "string", "pattern": "^[a-z0-9]+(?:[._-][a-z0-9]+)*$"},
}

# The distribution spec's error envelope, https://github.com/opencontainers/
# distribution-spec/blob/v1.1.0/spec.md#error-codes, as registry.http.errors writes it.
ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["errors"],
    "properties": {
        "errors": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "detail": {},
                },
            },
        }
    },
}


def ref(name: str) -> dict[str, str]:
    """A reference to the component schema ``name``."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_response(schema: dict[str, Any], description: str) -> dict[str, Any]:
    """A response (or body) of ``application/json`` with ``schema``."""
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def errors(*statuses: int) -> dict[str, Any]:
    """Responses for error statuses, each the shared error envelope."""
    return {str(s): {"$ref": "#/components/responses/Error"} for s in statuses}


@dataclass(frozen=True, slots=True)
class Section:
    """One resource's part of the document: its paths and the schemas they refer to."""

    paths: dict[str, Any]
    schemas: dict[str, Any] = field(default_factory=dict)


def build(title: str, version: str, *sections: Section) -> dict[str, Any]:
    """The OpenAPI 3.1 document of ``sections``, with the shared error envelope."""
    paths: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for section in sections:
        for into, part in ((paths, section.paths), (schemas, section.schemas)):
            clash = into.keys() & part.keys()
            if clash:
                raise ValueError(f"OpenAPI sections both declare {sorted(clash)}")
            into.update(part)
    if "Error" in schemas:
        raise ValueError("the Error schema is the builder's")
    schemas["Error"] = ERROR_SCHEMA
    return {
        "openapi": "3.1.0",
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "responses": {
                "Error": json_response(ref("Error"), "The distribution spec's error envelope.")
            },
        },
    }
