"""Manifest operations: push, pull, delete, and the discovery listings."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from oci.digest import Digest
from oci.errors import DigestInvalid, ManifestUnknown, NameUnknown
from oci.manifest import Descriptor, Manifest, parse_manifest
from oci.mediatype import base_type
from oci.reference import TAG, validate_tag
from registry.meta.records import ManifestRecord
from registry.service.registry import Registry

__all__ = [
    "ReferrersPage",
    "StoredManifest",
    "delete_manifest",
    "get_manifest",
    "is_digest",
    "put_manifest",
    "referrers",
]


def is_digest(reference: str) -> bool:
    return ":" in reference


def _is_tag(reference: str) -> bool:
    return TAG.fullmatch(reference) is not None


async def get_manifest(registry: Registry, repo: str, reference: str) -> ManifestRecord:
    """The manifest ``reference`` names: 404 when it names none, a malformed tag included.

    No manifest can be stored under a malformed tag (a push is refused with
    TAG_INVALID), so fetching one is fetching something unknown: the spec's
    GET and HEAD answer 404 for that (end-3), as distribution does; its
    conformance suite asks for ``.INVALID_MANIFEST_NAME`` and expects 404.
    A malformed digest is still 400 DIGEST_INVALID.
    """
    if is_digest(reference):
        record = await registry.meta.get_manifest(repo, str(Digest.parse(reference)))
    elif _is_tag(reference):
        record = await registry.meta.get_manifest(repo, reference)
    else:
        record = None
    if record is None:
        await _unknown(registry, repo, reference)
    return record


async def _unknown(registry: Registry, repo: str, reference: str) -> NoReturn:
    if not await registry.meta.repository_exists(repo):
        raise NameUnknown(f"repository {repo} is not known", detail={"name": repo})
    raise ManifestUnknown(
        f"manifest {reference} is unknown to repository {repo}",
        detail={"reference": reference},
    )


@dataclass(frozen=True, slots=True)
class StoredManifest:
    digest: Digest
    manifest: Manifest
    # Every tag the push pointed at it, in the order named, each once.
    tags: tuple[str, ...]


async def put_manifest(
    registry: Registry,
    repo: str,
    reference: str,
    body: bytes,
    content_type: str | None,
    extra_tags: Sequence[str],
    *,
    actor: str,
    override: str | None = None,
) -> StoredManifest:
    """Validate and store a manifest pushed by tag or by digest (plus ``?tag=`` tags).

    The digest is computed over the exact bytes received; a push by digest
    must name those bytes (DIGEST_INVALID otherwise). ``override`` (an
    admin's reason) lets the push move an immutable tag, recorded as an event.
    """
    tags = [validate_tag(tag) for tag in extra_tags]
    if is_digest(reference):
        claimed = Digest.parse(reference)
        digest = Digest.compute(body, claimed.algorithm)
        if digest != claimed:
            raise DigestInvalid(
                f"manifest body has digest {digest}, not {claimed}",
                detail={"expected": str(claimed), "actual": str(digest)},
            )
    else:
        tags.insert(0, validate_tag(reference))
        digest = Digest.compute(body)
    manifest = parse_manifest(body, content_type)
    media_type = manifest.media_type or base_type(content_type) or ""
    applied = tuple(dict.fromkeys(tags))
    await registry.writes.put_manifest(
        repo, digest, manifest, body, media_type, applied, actor=actor, override=override
    )
    return StoredManifest(digest, manifest, applied)


async def delete_manifest(
    registry: Registry, repo: str, reference: str, *, actor: str, override: str | None = None
) -> None:
    """By digest: the manifest and its tags. By tag: only the tag.

    Held content is refused (DENIED); so is an immutable tag, unless
    ``override`` gives an admin's reason, recorded as a tag.overridden event.
    """
    if is_digest(reference):
        await registry.writes.delete_manifest(
            repo, Digest.parse(reference), actor=actor, override=override
        )
    elif _is_tag(reference):
        await registry.writes.delete_tag(repo, reference, actor=actor, override=override)
    else:  # no such tag can exist: unknown, as for GET
        await _unknown(registry, repo, reference)


@dataclass(frozen=True, slots=True)
class ReferrersPage:
    descriptors: list[Descriptor]
    # The digest to pass as ``last`` for the next page; None on the last page.
    next_last: str | None


async def referrers(
    registry: Registry,
    repo: str,
    subject: Digest,
    artifact_type: str | None,
    n: int | None = None,
    last: str | None = None,
) -> ReferrersPage:
    """One page of the referrers of ``subject``, in digest order, after ``last``.

    The spec lets a registry paginate the referrers index with a Link header
    ("the registry MAY ... use the Link header"):
    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
    A page holds at most ``referrers_page_size`` descriptors, or ``n`` if smaller.
    """
    found = await registry.meta.referrers(repo, subject, artifact_type)
    ordered = sorted(found, key=lambda d: str(d.digest))
    if last is not None:
        ordered = [d for d in ordered if str(d.digest) > last]
    size = registry.settings.server.referrers_page_size
    if n is not None:
        size = min(size, n)
    page = ordered[:size]
    more = len(ordered) > len(page) and bool(page)
    return ReferrersPage(page, str(page[-1].digest) if more else None)
