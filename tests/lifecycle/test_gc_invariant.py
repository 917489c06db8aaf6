"""GC's invariant, as a property: no sequence of API calls and runs loses a manifest's bytes.

A hypothesis state machine drives the in-process app over httpx (the real
routes, rules and stores) with a few repositories, one of whose ``v*`` tags
are immutable: it pushes blobs, images and indexes, moves and deletes tags,
deletes manifests and blobs, and runs GC as if hours had passed. After
every step:

- every manifest the registry holds, in any repository (reachable by digest,
  so also every tagged one), still has the bytes of each config and layer
  it names in the blob store;
- every manifest an immutable tag points at pulls completely over ``/v2/``:
  children, config and layers (so no blob under it lost its link either).

Hypothesis drives the machine synchronously, so it runs in a worker thread
and each call is sent back to the test's event loop (as
``storage/testing/model.py`` does).
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import anyio.from_thread
import anyio.to_thread
import httpx
import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, rule, run_state_machine_as_test

from oci.digest import Digest
from registry.config import Settings
from registry.http.app import create_app
from registry.lifecycle.gc import collect
from registry.meta import MetadataStore
from registry.meta.tables import blobs as blob_rows
from registry.meta.tables import manifest_references
from registry.service.registry import Registry
from storage.errors import BlobNotFound
from storage.memory import MemoryBlobStore
from tests.http._oci import Blob, Pushed, image, index, push_blob
from tests.lifecycle._world import World
from tests.meta.conftest import UrlFactory, make_url

__all__ = ["make_url"]  # the fixture used here

pytestmark = pytest.mark.anyio

_T = TypeVar("_T")

REPOS = ("prod/app", "dev/app")
TAGS = ("v1", "v2", "latest")  # v* immutable in prod/**
RULES = '[[immutable_tags]]\nrepository = "prod/**"\ntags = ["v*"]\n'
BLOBS = tuple(Blob(b"blob %d" % n) for n in range(5))
ACCEPT = "application/vnd.oci.image.manifest.v1+json,application/vnd.oci.image.index.v1+json"

_ok_or_refused = {201, 202, 400, 403, 404}


def _call(fn: Callable[[], Awaitable[_T]]) -> _T:
    async def run() -> _T:
        return await fn()

    return anyio.from_thread.run(run)


class GcInvariant(RuleBasedStateMachine):
    def __init__(self, url: str, root: Path) -> None:
        super().__init__()
        self.meta = _call(lambda: MetadataStore.open(url))
        self.store = MemoryBlobStore()
        registry = Registry(self.meta, self.store, Settings(data_dir=str(root)))
        World(registry).configure(RULES)
        self.registry = registry
        transport = httpx.ASGITransport(app=create_app(registry.settings, registry))
        self.client = httpx.AsyncClient(transport=transport, base_url="http://registry.test")
        self.pushed: dict[str, list[Pushed]] = {repo: [] for repo in REPOS}
        self.whole: set[tuple[str, str]] = set()  # immutable tags whose content was whole

    def _status(self, request: Callable[[], Awaitable[httpx.Response]]) -> int:
        response = _call(request)
        assert response.status_code in _ok_or_refused, response.text
        return response.status_code

    def _put(self, repo: str, tag: str | None, document: object, media_type: str) -> None:
        body = json.dumps(document, separators=(",", ":")).encode()
        digest = Digest.compute(body)
        status = self._status(
            lambda: self.client.put(
                f"/v2/{repo}/manifests/{tag or digest}",
                content=body,
                headers={"Content-Type": media_type},
            )
        )
        if status == 201:
            self.pushed[repo].append(Pushed(digest, body, media_type))
            # Content already broken when tagged (a child whose blob was
            # deleted before) is not the tag's to keep; whole content is.
            name = tag or ""
            if self.registry.rules.immutable(repo, name) and _call(lambda: self._pulls(repo, name)):
                self.whole.add((repo, name))

    @rule(repo=st.sampled_from(REPOS), blob=st.sampled_from(BLOBS))
    def push_blob(self, repo: str, blob: Blob) -> None:
        _call(lambda: push_blob(self.client, repo, blob))

    @rule(
        repo=st.sampled_from(REPOS),
        tag=st.none() | st.sampled_from(TAGS),
        config=st.sampled_from(BLOBS),
        layers=st.lists(st.sampled_from(BLOBS), min_size=1, max_size=2, unique=True),
        upload=st.booleans(),
    )
    def push_image(
        self, repo: str, tag: str | None, config: Blob, layers: list[Blob], upload: bool
    ) -> None:
        """An image, its blobs uploaded first or (``upload`` False) relying on what is linked."""
        if upload:
            for blob in {config, *layers}:
                _call(lambda: push_blob(self.client, repo, blob))  # noqa: B023 - called at once
        document = image(config, layers)
        self._put(repo, tag, document, document["mediaType"])

    @rule(repo=st.sampled_from(REPOS), tag=st.none() | st.sampled_from(TAGS), data=st.data())
    def push_index(self, repo: str, tag: str | None, data: st.DataObject) -> None:
        images = [p for p in self.pushed[repo] if "index" not in p.media_type]
        if not images:
            return
        children = data.draw(st.lists(st.sampled_from(images), min_size=1, max_size=2))
        document = index(list(dict.fromkeys(children)))
        self._put(repo, tag, document, document["mediaType"])

    @rule(repo=st.sampled_from(REPOS), tag=st.sampled_from(TAGS))
    def delete_tag(self, repo: str, tag: str) -> None:
        if self._status(lambda: self.client.delete(f"/v2/{repo}/manifests/{tag}")) == 202:
            self.whole.discard((repo, tag))

    @rule(repo=st.sampled_from(REPOS), data=st.data())
    def delete_manifest(self, repo: str, data: st.DataObject) -> None:
        if not self.pushed[repo]:
            return
        target = data.draw(st.sampled_from(self.pushed[repo]))
        self._status(lambda: self.client.delete(f"/v2/{repo}/manifests/{target.digest}"))

    @rule(repo=st.sampled_from(REPOS), blob=st.sampled_from(BLOBS))
    def delete_blob(self, repo: str, blob: Blob) -> None:
        self._status(lambda: self.client.delete(f"/v2/{repo}/blobs/{blob.digest}"))

    @rule(hours=st.sampled_from([0, 2, 48]))
    def gc(self, hours: int) -> None:
        now = dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours)
        _call(lambda: collect(self.registry, grace=dt.timedelta(hours=1), now=now))
        self._check()

    def _check(self) -> None:
        for repo, reference in _call(self._named):
            try:
                _call(lambda: self.store.stat(Digest.parse(reference)))  # noqa: B023
            except BlobNotFound:
                pytest.fail(f"{repo} has a manifest naming {reference}, whose bytes are gone")
        for repo, tag in self.whole:
            assert _call(lambda: self._pulls(repo, tag)), f"{repo}:{tag} no longer pulls"  # noqa: B023

    async def _named(self) -> list[tuple[str, str]]:
        """(repository, sha256) of every config and layer any stored manifest names."""
        query = (
            sa.select(manifest_references.c.repository, blob_rows.c.sha256)
            .select_from(
                manifest_references.outerjoin(
                    blob_rows, blob_rows.c.sha256 == manifest_references.c.referenced_digest
                )
            )
            .where(manifest_references.c.kind.in_(("config", "layer")))
        )
        async with self.meta.reading() as conn:
            rows = (await conn.execute(query)).all()
        missing = [r.repository for r in rows if r.sha256 is None]
        assert not missing, f"manifests in {missing} name a blob with no row"
        return [(r.repository, r.sha256) for r in rows]

    async def _pulls(self, repo: str, reference: str) -> bool:
        """Whether the manifest, its children, configs and layers all download and verify."""
        response = await self.client.get(
            f"/v2/{repo}/manifests/{reference}", headers={"Accept": ACCEPT}
        )
        if response.status_code != 200:
            return False
        document = response.json()
        for child in document.get("manifests", []):
            if not await self._pulls(repo, child["digest"]):
                return False
        for desc in [document.get("config"), *document.get("layers", [])]:
            if desc is None:
                continue
            got = await self.client.get(f"/v2/{repo}/blobs/{desc['digest']}")
            if got.status_code != 200 or str(Digest.compute(got.content)) != desc["digest"]:
                return False
        return True

    def teardown(self) -> None:
        _call(self.client.aclose)
        _call(self.meta.close)


_runs = itertools.count()


async def test_no_sequence_of_calls_and_gc_runs_loses_a_manifest_s_bytes(
    make_url: UrlFactory, tmp_path: Path
) -> None:
    # PostgreSQL's round trips make each example slower: fewer keep the run under a minute.
    examples = 12 if make_url().startswith("postgresql") else 25

    def run() -> None:
        class Bound(GcInvariant):
            def __init__(self) -> None:
                super().__init__(make_url(), tmp_path / f"run-{next(_runs)}")

        run_state_machine_as_test(
            Bound,
            settings=settings(
                max_examples=examples,
                stateful_step_count=20,
                deadline=None,
                database=None,
                suppress_health_check=[HealthCheck.too_slow],
            ),
        )

    await anyio.to_thread.run_sync(run)
