"""A registry for the retention tests: content pushed through MetadataStore, rules from TOML.

Time is controlled, never waited for: events carry the real clock, and a
test captures ``mark()`` between two pushes, then plans at ``mark() + d``, so
whatever was pushed before the mark is older than ``d`` and whatever after
is younger.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import itertools
import tomllib

import sqlalchemy as sa

from oci import native
from oci.digest import Digest
from registry.config import LifecycleSettings
from registry.meta import EventRecord, MetadataStore
from registry.meta.tables import manifests, tags
from registry.rules.policy import parse_policy
from registry.service.registry import Registry, rules_of
from registry.service.writes import Writes
from tests.meta._content import Pushed, blob, image, index

__all__ = ["SIGNATURE", "World", "mark"]

SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"
_counter = itertools.count()


def mark() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class World:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.meta: MetadataStore = registry.meta

    @property
    def writes(self) -> Writes:
        return self.registry.writes

    def configure(self, text: str) -> None:
        """Rules as the server's TOML file would give them; wires immutable tags as serve does.

        The registry is shared with the app under test, so it is rebuilt in
        place, as a restart with this configuration would build it.
        """
        tables = tomllib.loads(text)
        parse_policy(tables)  # a bad table fails here, as it would at start-up
        lifecycle = LifecycleSettings(policy=tables)
        settings = dataclasses.replace(self.registry.settings, lifecycle=lifecycle)
        self.registry.settings = settings
        self.registry.rules = rules_of(settings)
        self.registry.writes = Writes(self.meta, self.registry.rules)

    async def push(
        self,
        repo: str,
        *tag_names: str,
        subject: Pushed | None = None,
        annotations: dict[str, str] | None = None,
    ) -> Pushed:
        """A fresh image (its own config and layer) tagged ``tag_names``."""
        n = next(_counter)
        config = blob(f'{{"n":{n}}}'.encode())
        layer = blob(f"layer {n}".encode())
        for info in (config, layer):
            await self.writes.commit_blob(repo, info, actor="test")
        pushed = image(
            config,
            [layer],
            subject=subject,
            artifact_type=None if subject is None else SIGNATURE,
            annotations=annotations,
        )
        await self.put(repo, pushed, *tag_names)
        return pushed

    async def put(self, repo: str, pushed: Pushed, *tag_names: str) -> None:
        await self.writes.put_manifest(
            repo, pushed.digest, pushed.manifest, pushed.body, pushed.media_type,
            list(tag_names), actor="test",
        )  # fmt: skip

    async def index(self, repo: str, children: list[Pushed], *tag_names: str) -> Pushed:
        pushed = index(children)
        await self.put(repo, pushed, *tag_names)
        return pushed

    async def native(
        self, repo: str, version: str, retention_class: str, until: dt.datetime | None = None
    ) -> Pushed:
        """A native artifact (an OCI image embedding its native manifest) with its retention."""
        n = next(_counter)
        config = blob(f'{{"native":{n}}}'.encode())
        data = blob(f"file {n}".encode())
        for info in (config, data):
            await self.writes.commit_blob(repo, info, actor="test")
        files = (native.NativeFile("a.txt", data.size, "text/plain", data.sha256, data.blake3),)
        m = native.NativeManifest(
            repo, version, files, created=mark(), retention=native.Retention(retention_class, until)
        )
        embedded = base64.b64encode(native.encode_cbor(m)).decode()
        pushed = image(config, [data], annotations={native.ANNOTATION_MANIFEST: embedded})
        await self.put(repo, pushed, version)
        return pushed

    async def head(self) -> int:
        found = await self.meta.events(0, 1_000_000)
        return found[-1].seq if found else 0

    async def events_after(self, seq: int) -> list[EventRecord]:
        return await self.meta.events(seq, 100_000)

    async def tags(self, repo: str) -> list[str]:
        return await self.meta.list_tags(repo, None, None)

    async def exists(self, repo: str, digest: Digest) -> bool:
        return await self.meta.get_manifest(repo, str(digest)) is not None

    async def pushed_at(self, repo: str, tag: str) -> dt.datetime:
        async with self.meta.reading() as conn:
            query = sa.select(tags.c.updated_at).where(tags.c.repository == repo, tags.c.tag == tag)
            value: dt.datetime = (await conn.execute(query)).scalar_one()
            return value

    async def touched_at(self, repo: str, digest: Digest) -> dt.datetime:
        async with self.meta.reading() as conn:
            query = sa.select(manifests.c.touched_at).where(
                manifests.c.repository == repo, manifests.c.digest == str(digest)
            )
            value: dt.datetime = (await conn.execute(query)).scalar_one()
            return value
