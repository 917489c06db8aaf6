"""What the manifest routes of /v2/ and the native API call for the lifecycle.

- ``record_pull``: a manifest GET notes (repository, digest) for the pull
  recorder (registry/lifecycle/pulls.py); no I/O on the request path.
- ``override_of``: an immutable tag moves or goes only with the header
  ``X-Artifact-Store-Override: <reason>``, honoured for an admin of the
  repository when auth is on, and for anyone when it is off (the header is
  then a guard against accidents, not an authorization). The store records
  the reason as a ``tag.overridden`` event (docs/lifecycle.md).
"""

from __future__ import annotations

from starlette.requests import Request

from oci.digest import Digest
from oci.errors import Denied
from registry.auth.middleware import principal_of

__all__ = ["OVERRIDE_HEADER", "override_of", "record_pull"]

OVERRIDE_HEADER = "X-Artifact-Store-Override"
_MAX_REASON = 1024


def record_pull(request: Request, repository: str, digest: Digest) -> None:
    """The manifest GET hook: note the pull for the recorder (no I/O; HEADs are not pulls)."""
    if request.method == "GET":
        recorder = getattr(request.app.state, "pulls", None)
        if recorder is not None:
            recorder.note(repository, str(digest))


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
    if "admin" in await request.app.state.auth.permitted(principal, repository):
        return reason
    raise Denied(
        f"only an admin of {repository} may override immutable tags",
        detail={"reason": "override", "name": repository},
    )
