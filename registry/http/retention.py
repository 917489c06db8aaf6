"""Retention under /api/v1/, the pull hook and the immutable-tag override (docs/lifecycle.md).

- ``GET /api/v1/retention/plan[?repository=R]``: the plan as JSON: ``now``,
  ``repository``, ``digest``, ``deletions`` (each with its rule, reason,
  detail and the protections found absent) and ``kept`` (eligible by a rule
  but protected, and by what).
- ``POST /api/v1/retention/apply``: with no body (or ``{"repository": R}``),
  computes a plan now and applies it. With ``{"plan": <a plan as GET
  returned it>}``, applies exactly that reviewed plan: the server checks the
  plan's digest against its contents, recomputes the plan at the plan's own
  ``now`` (never trusting the client's copy for anything but which items to
  delete), and deletes only the items present in both, each re-checked
  under the write lock; an item the recomputation no longer lists is
  reported as skipped. ``"dry_run": true`` re-checks and changes nothing.
  The answer is the report: ``deleted`` and ``skipped`` (with why).

Both are registry-admin only when auth is on: the auth middleware closes
every path it does not map (registry/auth/scope.py) to global admins.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any, ClassVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from oci.errors import ErrorCode, ManifestTooLarge, SpecError
from oci.reference import validate_repository
from registry.http.request import registry_of
from registry.lifecycle import retention
from registry.lifecycle.eligibility import PlanItem
from registry.native.uploads import QueryInvalid

__all__ = ["PlanChanged", "routes"]

_MAX_BODY = 16 * 1024 * 1024
# A plan's clock may run this far ahead of ours (another replica's clock).
_SKEW = dt.timedelta(minutes=5)


class PlanChanged(SpecError):
    """the reviewed plan does not match its digest"""

    code: ClassVar[ErrorCode] = ErrorCode.DENIED
    status: ClassVar[int] = 409


def _repository(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise QueryInvalid("repository must be a string", detail={"field": "repository"})
    return validate_repository(value)


async def get_plan(request: Request) -> Response:
    repository = _repository(request.query_params.get("repository"))
    found = await retention.plan(registry_of(request), repository=repository)
    return JSONResponse(found.to_json())


async def _document(request: Request) -> dict[str, Any]:
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_BODY:
            raise ManifestTooLarge(f"request body exceeds {_MAX_BODY} bytes")
    if not raw.strip():
        return {}
    try:
        document = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise QueryInvalid("the request body must be a JSON object") from None
    if not isinstance(document, dict):
        raise QueryInvalid("the request body must be a JSON object")
    return document


def _reviewed(document: dict[str, Any]) -> tuple[dt.datetime, str | None, list[PlanItem], str]:
    """The reviewed plan's time, scope, items and digest; the digest must match the rest."""
    try:
        now = dt.datetime.fromisoformat(document["now"].replace("Z", "+00:00"))
        if now.tzinfo is None:
            raise ValueError(now)
        items = [
            PlanItem(
                kind=raw["kind"],
                repository=raw["repository"],
                digest=raw["digest"],
                tag=raw.get("tag"),
                rule=raw["rule"],
                reason=raw["reason"],
                detail=str(raw.get("detail", "")),
                unprotected=(),
            )  # fmt: skip
            for raw in document["deletions"]
        ]
        digest = document["digest"]
        scope = _repository(document.get("repository"))
        if not isinstance(digest, str) or any(i.kind not in ("tag", "manifest") for i in items):
            raise ValueError(digest)
    except (KeyError, TypeError, ValueError, AttributeError):
        raise QueryInvalid(
            "plan must be a retention plan as GET /api/v1/retention/plan returns it"
        ) from None
    actual = retention.RetentionPlan(now, scope, tuple(items), ()).digest
    if actual != digest:
        raise PlanChanged(
            "the plan's contents do not match its digest; fetch a fresh plan",
            detail={"reason": "plan-changed", "digest": digest, "contents": actual},
        )
    return now, scope, items, digest


async def apply_plan(request: Request) -> Response:
    registry = registry_of(request)
    document = await _document(request)
    dry_run = document.get("dry_run", False)
    if not isinstance(dry_run, bool):
        raise QueryInvalid("dry_run must be true or false", detail={"field": "dry_run"})
    reviewed = document.get("plan")
    if reviewed is None:
        fresh = await retention.plan(registry, repository=_repository(document.get("repository")))
        report = await retention.apply(registry, fresh, dry_run=dry_run)
        return JSONResponse(report.to_json())
    if not isinstance(reviewed, dict):
        raise QueryInvalid("plan must be a JSON object", detail={"field": "plan"})
    now, scope, items, digest = _reviewed(reviewed)
    if now > dt.datetime.now(dt.UTC) + _SKEW:
        raise QueryInvalid("the plan's time is in the future", detail={"now": reviewed["now"]})
    recomputed = await retention.plan(registry, now=now, repository=scope)
    selected = recomputed.only({item.key for item in items})
    report = await retention.apply(registry, selected, dry_run=dry_run)
    report.plan_digest = digest
    listed = {item.key for item in selected.deletions}
    report.skipped[:0] = [
        retention.Skipped(item, "no longer eligible at the plan's time")
        for item in items
        if item.key not in listed
    ]
    return JSONResponse(report.to_json())


routes = [
    Route("/api/v1/retention/plan", get_plan, methods=["GET"]),
    Route("/api/v1/retention/apply", apply_plan, methods=["POST"]),
]
