"""What every route module reads off a request: the app's parts, the actor, capped bodies.

- ``registry_of`` / ``authority_of``: the registry and the authority of the
  app serving the request (``registry.http.state``).
- ``principal_of`` / ``actor``: who the auth middleware authenticated, and
  the name the event log records for them.
- ``path_for`` / ``url_for``: a path of this app as a client must send it,
  behind the root path the app is served under (a ``Mount`` prefix, a
  proxy's ``root_path``), for ``Location`` and ``Link`` headers.
- ``read_capped``: a body of at most a given size, never unbounded.
- ``record_pull``: a manifest GET notes (repository, digest) for the pull
  recorder (registry/lifecycle/pulls.py); no I/O on the request path.
- ``override_of``: an immutable tag moves or goes only with the header
  ``X-Artifact-Store-Override: <reason>``, honoured for an admin of the
  repository when auth is on, and for anyone when it is off (the header is
  then a guard against accidents, not an authorization). The store records
  the reason as a ``tag.overridden`` event (docs/lifecycle.md).
"""

from __future__ import annotations

from starlette.requests import HTTPConnection, Request

from oci.digest import Digest
from oci.errors import Denied, ManifestTooLarge
from registry.auth import Authority, Principal
from registry.http.state import state_of
from registry.meta import UploadRecord
from registry.service import blobs
from registry.service.registry import Registry

__all__ = [
    "OVERRIDE_HEADER",
    "actor",
    "authority_of",
    "override_of",
    "path_for",
    "principal_of",
    "read_capped",
    "record_pull",
    "registry_of",
    "session_owner",
    "upload_of",
    "url_for",
]

OVERRIDE_HEADER = "X-Artifact-Store-Override"
_MAX_REASON = 1024


def path_for(request: HTTPConnection, path: str) -> str:
    """``path``, a path of this app (``/v2/...``), as the client must send it.

    ASGI puts the prefix an app is served under in ``root_path``: a parent
    application's ``Mount("/registry", app)`` sets it, as does a proxy's
    root path. A ``Location`` or ``Link`` without it would send the client
    following it past this app. (Starlette's ``base_url`` holds the
    outermost app's root path only, not a mount's.)
    """
    root: str = request.scope.get("root_path", "")
    return root.rstrip("/") + path


def url_for(request: HTTPConnection, path: str) -> str:
    """``path_for`` as an absolute URL, on the scheme and host the request came to."""
    return f"{request.url.scheme}://{request.url.netloc}{path_for(request, path)}"


def registry_of(request: HTTPConnection) -> Registry:
    """The registry of the app serving ``request``."""
    return state_of(request).require_registry()


def authority_of(request: HTTPConnection) -> Authority:
    """The authority of the app serving ``request`` (auth is on)."""
    return state_of(request).require_auth()


def principal_of(request: HTTPConnection) -> Principal | None:
    """The principal the middleware authenticated, or None when auth is off."""
    found = request.scope.get("state", {}).get("principal")
    return found if isinstance(found, Principal) else None


def actor(request: Request) -> str:
    """Who the event log records: the authenticated principal, else "anonymous"."""
    principal = principal_of(request)
    return "anonymous" if principal is None else principal.name


async def upload_of(request: Request, name: str) -> UploadRecord:
    """The upload session the URL names, if the caller may use it (``session_owner``);
    BLOB_UPLOAD_UNKNOWN otherwise, as for a session that does not exist."""
    return await blobs.get_upload(
        registry_of(request), name, request.path_params["upload"], opened_by=session_owner(request)
    )


def session_owner(request: Request) -> str | None:
    """Whose upload sessions the caller may use: its own, or (None) any when auth is off
    or the caller is a registry-wide admin."""
    principal = principal_of(request)
    if principal is None or principal.is_global_admin:
        return None
    return principal.name


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


def record_pull(request: Request, repository: str, digest: Digest) -> None:
    """The manifest GET hook: note the pull for the recorder (no I/O; HEADs are not pulls)."""
    if request.method == "GET":
        state_of(request).pulls.note(repository, str(digest))


async def override_of(request: Request, repository: str) -> str | None:
    """The override reason a manifest PUT or DELETE carries, if its sender may override."""
    raw = request.headers.get(OVERRIDE_HEADER)
    if raw is None:
        return None
    reason = raw.strip()
    if not reason or len(reason) > _MAX_REASON:
        raise Denied(
            f"{OVERRIDE_HEADER} must give a reason of 1 to {_MAX_REASON} characters",
            detail={"reason": "override", "header": OVERRIDE_HEADER},
        )
    principal = principal_of(request)
    if principal is None or principal.is_global_admin:
        return reason
    if "admin" in await authority_of(request).permitted(principal, repository):
        return reason
    raise Denied(
        f"only an admin of {repository} may override immutable tags",
        detail={"reason": "override", "name": repository},
    )
