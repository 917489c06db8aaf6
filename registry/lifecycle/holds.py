"""Legal holds and retention extensions as plain operations (no Request in sight).

A legal hold names a repository (all of it), a manifest by digest, or an
artifact version / tag; what it protects is decided under the write lock by
``registry.meta.holds`` whenever something would be deleted, so content
pushed after the hold (a late signature of a held image) is covered too.
These functions validate what a caller sent, resolve names, and leave every
check that must not race with a writer to ``MetadataStore``.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from oci.digest import Digest
from oci.errors import Denied, ManifestUnknown, NameUnknown, Unsupported
from oci.reference import validate_repository, validate_tag
from registry.meta import HoldRecord
from registry.service.registry import Registry

__all__ = [
    "MAX_REASON",
    "Extension",
    "RequestInvalid",
    "check_reason",
    "extend_retention",
    "get_hold",
    "list_holds",
    "place_hold",
    "refuse_mismatch",
    "release_hold",
]

# A reason is a case number and a sentence, not a document; the log keeps it forever.
MAX_REASON = 4096


class RequestInvalid(Unsupported):
    """the request body or a parameter is malformed"""

    # UNSUPPORTED is the spec's code for a request the registry will not serve
    # as sent; a malformed body is the client's error, hence 400.
    status = 400


@dataclass(frozen=True, slots=True)
class Extension:
    """A retention extension as recorded: which manifest, and the new keep-until date."""

    repository: str
    reference: str
    digest: Digest
    until: dt.datetime


def check_reason(reason: object, what: str) -> str:
    if not isinstance(reason, str) or not reason.strip():
        raise RequestInvalid(f"{what} needs a reason", detail={"field": "reason"})
    if len(reason) > MAX_REASON:
        raise RequestInvalid(
            f"a reason is at most {MAX_REASON} characters", detail={"field": "reason"}
        )
    return reason


def _reference(reference: str) -> str:
    """A digest (``algorithm:hex``) or a tag, validated; the store tells the two apart by ':'."""
    if ":" in reference:
        return str(Digest.parse(reference))
    return validate_tag(reference)


async def _require_repository(registry: Registry, repository: str) -> str:
    validate_repository(repository)
    if not await registry.meta.repository_exists(repository):
        raise NameUnknown(f"repository {repository} is not known", detail={"name": repository})
    return repository


async def place_hold(
    registry: Registry, repository: str, reference: str | None, reason: str, *, actor: str
) -> HoldRecord:
    """Hold ``repository`` (``reference`` None), or the manifest a digest or tag names."""
    reason = check_reason(reason, "a legal hold")
    ref = None if reference is None else _reference(reference)
    await _require_repository(registry, repository)
    return await registry.writes.place_hold(repository, ref, reason, actor=actor)


async def list_holds(registry: Registry, repository: str | None = None) -> list[HoldRecord]:
    if repository is not None:
        validate_repository(repository)
    return await registry.meta.list_holds(repository)


async def get_hold(registry: Registry, hold_id: str, repository: str | None = None) -> HoldRecord:
    """The active hold ``hold_id``; with ``repository``, only if it is that repository's."""
    for hold in await list_holds(registry, repository):
        if hold.id == hold_id:
            return hold
    where = "" if repository is None else f" in repository {repository}"
    raise ManifestUnknown(f"no active legal hold {hold_id}{where}", detail={"hold": hold_id})


async def release_hold(
    registry: Registry, hold_id: str, reason: str, *, actor: str, repository: str | None = None
) -> HoldRecord:
    """Release an active hold; with ``repository``, only one placed on that repository."""
    reason = check_reason(reason, "releasing a legal hold")
    if repository is not None:
        await get_hold(registry, hold_id, repository)
    return await registry.writes.release_hold(hold_id, reason, actor=actor)


async def extend_retention(
    registry: Registry, repository: str, reference: str, until: dt.datetime, *, actor: str
) -> Extension:
    """Keep ``repository``'s version (tag) or manifest (digest) until ``until``.

    Never shortens: a date not later than the one recorded (or than now) is
    DENIED by the store, under the write lock, with the current date in the detail.
    """
    if until.tzinfo is None:
        raise RequestInvalid("until must carry a time zone offset", detail={"field": "until"})
    validate_repository(repository)
    ref = _reference(reference)
    record = await registry.meta.get_manifest(repository, ref)
    if record is None:
        await _require_repository(registry, repository)
        raise ManifestUnknown(
            f"manifest {reference} is unknown to repository {repository}",
            detail={"reference": reference},
        )
    kept = await registry.writes.extend_retention(repository, record.digest, until, actor=actor)
    return Extension(repository, ref, record.digest, kept)


def refuse_mismatch(authorized: str | None, named: str) -> None:
    """A request authorized for one repository (``?repository=``) must not act on another."""
    if authorized is not None and authorized != named:
        raise Denied(
            f"the request names repository {named} but was made for {authorized}",
            detail={"name": named},
        )
