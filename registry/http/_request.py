"""What every route module reads off a request: the actor and capped bodies."""

from __future__ import annotations

from starlette.requests import Request

from oci.errors import ManifestTooLarge
from registry.auth.middleware import principal_of

__all__ = ["actor", "read_capped"]


def actor(request: Request) -> str:
    """Who the event log records: the authenticated principal, else "anonymous"."""
    principal = principal_of(request)
    return "anonymous" if principal is None else principal.name


async def read_capped(request: Request, limit: int) -> bytes:
    """A manifest body of at most ``limit`` bytes; 413 SIZE_INVALID past it, never unbounded."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ManifestTooLarge(
            f"manifest of {declared} bytes exceeds the {limit}-byte limit",
            detail={"size": int(declared), "limit": limit},
        )
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ManifestTooLarge(
                f"manifest exceeds the {limit}-byte limit", detail={"limit": limit}
            )
    return bytes(body)
