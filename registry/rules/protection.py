"""Legal holds, immutable tags and overrides: may this tag move, this manifest go?

One decision per kind of change, asked by every path that makes it: a
client's ``/v2/`` or native push and delete, retention and garbage
collection. A legal hold refuses the change outright (no override lifts a
hold); an immutable tag refuses it unless an admin's ``override`` reason
is given, which the decision returns as a ``TagOverridden`` event so it is
recorded in the same transaction as the change. What an immutable tag
points at (child manifests and blobs, through indexes) cannot be deleted
while it does, and no override lifts that: the override is for the tag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncConnection

from oci.errors import Denied, ManifestUnknown
from registry.meta import holds, queries
from registry.meta.events import TagOverridden
from registry.meta.holds import Protected

__all__ = ["ImmutableTags", "Rules", "held_denial", "never_immutable"]

# (repository, tag) -> is the tag immutable? Configured per repository pattern.
ImmutableTags = Callable[[str, str], bool]


def never_immutable(_repository: str, _tag: str) -> bool:
    return False


def held_denial(repo: str, held: Protected, what: str) -> Denied:
    """The DENIED a legal hold answers with: reason legal-hold and the hold ids."""
    return Denied(
        f"{what} in {repo} is under legal hold",
        detail={"reason": "legal-hold", "holds": list(held.hold_ids)},
    )


class Rules:
    """The protection rules, from plain data given at construction."""

    def __init__(self, immutable_tags: ImmutableTags = never_immutable) -> None:
        self._immutable_tags = immutable_tags

    def immutable(self, repo: str, tag: str) -> bool:
        return self._immutable_tags(repo, tag)

    def _tag_override(
        self,
        repo: str,
        tag: str,
        held: Protected,
        action: Literal["move", "delete"],
        override: str | None,
        what: str,
    ) -> TagOverridden | None:
        """The one hold / immutable / override decision for changing ``repo:tag``."""
        if held.covers_tag(tag):
            raise held_denial(repo, held, f"tag {tag}")
        if not self.immutable(repo, tag):
            return None
        if override is None:
            raise Denied(
                f"tag {tag} in {repo} is immutable; {what}",
                detail={"tag": tag, "reason": "immutable"},
            )
        return TagOverridden(repo, tag, action, override)

    async def decide_tag_moves(
        self,
        conn: AsyncConnection,
        repo: str,
        digest: str,
        tags: tuple[str, ...],
        override: str | None,
    ) -> list[TagOverridden]:
        """May ``tags`` be pointed at ``repo@digest``? The overrides to record if so."""
        overrides: list[TagOverridden] = []
        held: Protected | None = None
        for tag in tags:
            current = await queries.tag_digest(conn, repo, tag)
            if current is None or current == digest:
                continue
            held = held or await holds.protected(conn, repo)
            used = self._tag_override(repo, tag, held, "move", override, "it cannot be moved")
            if used is not None:
                overrides.append(used)
        return overrides

    async def decide_manifest_delete(
        self, conn: AsyncConnection, repo: str, digest: str, override: str | None
    ) -> list[TagOverridden]:
        """May ``repo@digest`` be deleted now? The overrides to record if so."""
        if await queries.manifest_row(conn, repo, digest) is None:
            raise ManifestUnknown(
                f"manifest {digest} is not in repository {repo}", detail={"digest": digest}
            )
        held = await holds.protected(conn, repo)
        if held.covers_manifest(digest):
            raise held_denial(repo, held, f"manifest {digest}")
        overrides: list[TagOverridden] = []
        for tag in await holds.tags_of(conn, repo, digest):
            what = f"manifest {digest} cannot be deleted"
            used = self._tag_override(repo, tag, held, "delete", override, what)
            if used is not None:
                overrides.append(used)
        # A child of an immutable tag's index (the tags pointing at it were decided above).
        parent = await self._immutable_tag_over(
            conn, repo, lambda c: digest in c.manifests, skip_root=digest
        )
        if parent is not None:
            raise _content_denial(repo, parent, f"manifest {digest}", digest)
        return overrides

    async def decide_tag_delete(
        self, conn: AsyncConnection, repo: str, tag: str, override: str | None
    ) -> list[TagOverridden]:
        """May ``repo:tag`` be deleted now? The override to record if so."""
        if await queries.tag_digest(conn, repo, tag) is None:
            raise ManifestUnknown(f"tag {tag} is not in repository {repo}", detail={"tag": tag})
        held = await holds.protected(conn, repo)
        used = self._tag_override(repo, tag, held, "delete", override, "it cannot be deleted")
        return [] if used is None else [used]

    async def check_blob_unlink(
        self, conn: AsyncConnection, repo: str, sha256: str, named: str | None = None
    ) -> None:
        """Raise DENIED if a legal hold on ``repo`` covers the blob ``sha256``, or if a
        manifest an immutable tag of ``repo`` points at references it (``named``: the
        digest the client named it by, for the denial)."""
        held = await holds.protected(conn, repo)
        if held.covers_blob(sha256):
            raise held_denial(repo, held, f"blob {sha256}")
        tag = await self._immutable_tag_over(conn, repo, lambda c: sha256 in c.blobs)
        if tag is not None:
            raise _content_denial(repo, tag, f"blob {named or sha256}", named or sha256)

    async def _immutable_tag_over(
        self,
        conn: AsyncConnection,
        repo: str,
        contains: Callable[[holds.Content], bool],
        skip_root: str | None = None,
    ) -> str | None:
        """The first immutable tag of ``repo`` whose content ``contains`` says yes to;
        tags pointing at ``skip_root`` are not asked (the caller decided those).

        No override lifts this: an override changes a tag, and the content
        is protected for as long as the tag points at it (move or delete the
        tag with an override first). All the immutable tags' content is
        read at once; only a denial looks for the tag to name.
        """
        roots: dict[str, list[str]] = {}
        for tag, digest in await holds.tag_digests(conn, repo):
            if digest != skip_root and self.immutable(repo, tag):
                roots.setdefault(digest, []).append(tag)
        if not roots or not contains(await holds.content_of(conn, repo, set(roots))):
            return None
        for digest, tags in roots.items():
            if contains(await holds.content_of(conn, repo, {digest})):
                return tags[0]
        return None  # pragma: no cover - the union contained it, so one root does


def _content_denial(repo: str, tag: str, what: str, digest: str) -> Denied:
    return Denied(
        f"{what} in {repo} is part of immutable tag {tag}",
        detail={"reason": "immutable", "tag": tag, "digest": digest},
    )
