"""Immutable tags over /v2/ (DENIED, the admin override and its event) and pull recording.

Driven through the in-process app with httpx (the real routes, service layer
and stores), on SQLite and PostgreSQL; and once through ``artifact-store
serve --config`` with oras-py, which is how the rules reach a real server.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, cast

import anyio
import anyio.lowlevel
import httpx
import oras.client
import pytest

from oci import mediatype, native
from oci.digest import Digest
from registry.config import Settings
from registry.http.app import create_app
from registry.http.state import state_of
from registry.lifecycle.gc import collect
from registry.lifecycle.pulls import PullRecorder
from registry.meta import MetadataStore
from registry.meta.events import ManifestPulled, TagOverridden
from registry.service.registry import Registry
from registry.service.writes import Writes
from storage.filesystem import FsBlobStore
from tests.auth.conftest import AuthServed, authed, extra_settings
from tests.http._oci import Blob, error_code, push_blob, push_image, push_manifest, random_blob
from tests.http._oci import image as oci_image
from tests.http._oci import index as oci_index
from tests.http._serve import free_port, serving
from tests.lifecycle._world import World
from tests.meta.conftest import UrlFactory, make_url
from tests.native.conftest import cbor_of, file_entry, manifest_json, upload_blob

__all__ = ["authed", "extra_settings", "make_url"]  # fixtures used here

pytestmark = pytest.mark.anyio

RULES = '[[immutable_tags]]\nrepository = "prod/**"\ntags = ["v*"]\n'
OVERRIDE = "X-Artifact-Store-Override"
REPO = "prod/app"


class Served:
    def __init__(self, client: httpx.AsyncClient, world: World, pulls: PullRecorder) -> None:
        self.client = client
        self.world = world
        self.pulls = pulls


@pytest.fixture
async def served(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[Served]:
    meta = await MetadataStore.open(make_url())
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    world = World(registry)
    world.configure(RULES)
    app = create_app(registry.settings, registry)
    transport = httpx.ASGITransport(app=app)
    try:
        async with httpx.AsyncClient(
            transport=transport, base_url="http://registry.test"
        ) as client:
            yield Served(client, world, state_of(app).pulls)
    finally:
        await meta.close()


def _denied_immutable(response: httpx.Response, tag: str) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["detail"] == {"tag": tag, "reason": "immutable"}


async def _digest_of(client: httpx.AsyncClient, repo: str, tag: str) -> str:
    response = await client.head(f"/v2/{repo}/manifests/{tag}")
    assert response.status_code == 200, response.text
    return response.headers["Docker-Content-Digest"]


async def _overrides(world: World, after: int) -> list[tuple[str, str, str, str]]:
    return [
        (r.actor, r.event.tag, r.event.action, r.event.reason)
        for r in await world.events_after(after)
        if isinstance(r.event, TagOverridden)
    ]


async def test_an_immutable_tag_cannot_be_moved_or_deleted(served: Served) -> None:
    client = served.client
    first = await push_image(client, REPO, "v1")
    response = await client.put(
        f"/v2/{REPO}/manifests/v1",
        content=(await push_image(client, REPO)).body,
        headers={"Content-Type": first.media_type},
    )
    _denied_immutable(response, "v1")
    _denied_immutable(await client.delete(f"/v2/{REPO}/manifests/v1"), "v1")
    _denied_immutable(await client.delete(f"/v2/{REPO}/manifests/{first.digest}"), "v1")
    assert await _digest_of(client, REPO, "v1") == str(first.digest)
    # Re-pushing the same manifest under the tag is not a move.
    await push_image(client, REPO, "latest")
    again = await client.put(
        f"/v2/{REPO}/manifests/v1", content=first.body, headers={"Content-Type": first.media_type}
    )
    assert again.status_code == 201


async def test_tags_outside_the_rule_stay_mutable(served: Served) -> None:
    client = served.client
    await push_image(client, REPO, "latest")
    await push_image(client, REPO, "latest")
    await push_image(client, "dev/app", "v1")
    await push_image(client, "dev/app", "v1")
    assert (await client.delete(f"/v2/{REPO}/manifests/latest")).status_code == 202
    assert (await client.delete("/v2/dev/app/manifests/v1")).status_code == 202


async def test_the_override_header_moves_and_deletes_and_is_recorded(served: Served) -> None:
    client, world = served.client, served.world
    await push_image(client, REPO, "v1")
    head = await world.head()
    moved = await push_image(client, REPO)
    response = await client.put(
        f"/v2/{REPO}/manifests/v1",
        content=moved.body,
        headers={"Content-Type": moved.media_type, OVERRIDE: "rebuilt after CVE-2024-0001"},
    )
    assert response.status_code == 201, response.text
    assert await _digest_of(client, REPO, "v1") == str(moved.digest)
    deleted = await client.delete(f"/v2/{REPO}/manifests/v1", headers={OVERRIDE: "withdrawn"})
    assert deleted.status_code == 202
    assert await _overrides(world, head) == [
        ("anonymous", "v1", "move", "rebuilt after CVE-2024-0001"),
        ("anonymous", "v1", "delete", "withdrawn"),
    ]


async def test_an_override_without_a_reason_is_refused(served: Served) -> None:
    await push_image(served.client, REPO, "v1")
    response = await served.client.delete(f"/v2/{REPO}/manifests/v1", headers={OVERRIDE: " "})
    assert response.status_code == 403
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["detail"]["reason"] == "override"
    assert await served.world.tags(REPO) == ["v1"]


async def _publish(client: httpx.AsyncClient, version: str, data: bytes) -> httpx.Response:
    await upload_blob(client, REPO, data)
    document = manifest_json(REPO, version, [file_entry("a.txt", data)])
    return await client.put(
        f"/api/v1/artifacts/{REPO}/versions/{version}",
        content=cbor_of(document),
        headers={"Content-Type": native.NATIVE_MANIFEST_CBOR},
    )


async def test_the_native_api_honours_immutability_and_the_override(served: Served) -> None:
    client, world = served.client, served.world
    assert (await _publish(client, "v1", b"first")).status_code == 201
    _denied_immutable(await _publish(client, "v1", b"second"), "v1")
    _denied_immutable(await client.delete(f"/api/v1/artifacts/{REPO}/versions/v1"), "v1")
    head = await world.head()
    await upload_blob(client, REPO, b"second")
    document = manifest_json(REPO, "v1", [file_entry("a.txt", b"second")])
    moved = await client.put(
        f"/api/v1/artifacts/{REPO}/versions/v1",
        content=cbor_of(document),
        headers={"Content-Type": native.NATIVE_MANIFEST_CBOR, OVERRIDE: "republished"},
    )
    assert moved.status_code == 201, moved.text
    gone = await client.delete(f"/api/v1/artifacts/{REPO}/versions/v1", headers={OVERRIDE: "gone"})
    assert gone.status_code == 204
    assert await _overrides(world, head) == [
        ("anonymous", "v1", "move", "republished"),
        ("anonymous", "v1", "delete", "gone"),
    ]


async def test_only_an_admin_may_override_with_auth_on(authed: AuthServed) -> None:
    world = World(authed.registry)
    world.configure('[[immutable_tags]]\nrepository = "acme/**"\ntags = ["v*"]\n')
    alice, root = authed.as_user("alice"), authed.as_user("root")
    repo = "acme/app"
    await push_image(alice, repo, "v1")
    moved = await push_image(alice, repo)
    put = {"Content-Type": moved.media_type, OVERRIDE: "because"}
    response = await alice.put(f"/v2/{repo}/manifests/v1", content=moved.body, headers=put)
    assert response.status_code == 403
    assert error_code(response) == "DENIED"
    assert response.json()["errors"][0]["detail"]["reason"] == "override"
    _denied_immutable(await alice.delete(f"/v2/{repo}/manifests/v1"), "v1")
    head = await world.head()
    response = await root.put(f"/v2/{repo}/manifests/v1", content=moved.body, headers=put)
    assert response.status_code == 201, response.text
    assert await _overrides(world, head) == [("root", "v1", "move", "because")]


# -- pulls -----------------------------------------------------------------------


async def test_manifest_gets_are_coalesced_into_one_pulled_event(served: Served) -> None:
    client, world = served.client, served.world
    pushed = await push_image(client, REPO, "v1")
    other = await push_image(client, REPO, "v2")
    head = await world.head()
    for _ in range(3):
        assert (await client.get(f"/v2/{REPO}/manifests/v1")).status_code == 200
    await client.get(f"/v2/{REPO}/manifests/{pushed.digest}")
    await client.head(f"/v2/{REPO}/manifests/v2")  # a HEAD is not a pull
    assert await world.head() == head  # nothing written on the request path
    assert served.pulls.pending == 1
    assert await served.pulls.flush(world.writes) == 1
    records = await world.events_after(head)
    assert [(r.type, r.actor) for r in records] == [(ManifestPulled.TYPE, "system")]
    assert isinstance(records[0].event, ManifestPulled)
    assert str(records[0].event.digest) == str(pushed.digest)
    assert other.digest != pushed.digest
    assert await served.pulls.flush(world.writes) == 0


class _Signalling:
    """The store as the recorder sees it, announcing each flush."""

    def __init__(self, writes: Writes) -> None:
        self.writes = writes
        self.recorded = anyio.Event()

    async def record_pulls(self, pulled: Iterable[tuple[str, str]], *, actor: str) -> int:
        count = await self.writes.record_pulls(pulled, actor=actor)
        self.recorded.set()
        return count


async def test_the_recorder_flushes_each_interval_and_at_shutdown(served: Served) -> None:
    world = served.world
    pushed = await push_image(served.client, REPO, "v1")
    head = await world.head()
    store = _Signalling(world.writes)
    recorder = PullRecorder(0.05)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(recorder.run, cast(Writes, store))
        recorder.note(REPO, str(pushed.digest))
        with anyio.fail_after(10):
            await store.recorded.wait()
        tasks.cancel_scope.cancel()
    assert [r.type for r in await world.events_after(head)] == [ManifestPulled.TYPE]
    head = await world.head()
    slow = PullRecorder(3600)
    async with anyio.create_task_group() as tasks:
        tasks.start_soon(slow.run, world.writes)
        await anyio.lowlevel.checkpoint()
        slow.note(REPO, str(pushed.digest))
        tasks.cancel_scope.cancel()
    # Cancelled long before its interval: the pending pull was flushed on the way out.
    assert [r.type for r in await world.events_after(head)] == [ManifestPulled.TYPE]


async def test_a_full_recorder_flushes_early_and_drops_nothing_it_can_keep() -> None:
    recorder = PullRecorder(3600, limit=2)
    recorder.note("a", "sha256:1")
    recorder.note("a", "sha256:1")
    recorder.note("a", "sha256:2")
    recorder.note("a", "sha256:3")
    assert recorder.pending == 2
    assert recorder.dropped == 1


# -- a real server and a real client ---------------------------------------------


def _oras_push(client: Any, target: str, path: Path) -> None:
    client.push(target=target, files=[str(path)], disable_path_validation=True)


def test_serve_with_a_config_file_enforces_it_for_a_real_client(tmp_path: Path) -> None:
    """The TOML file's rules reach ``serve``: oras pushes; moving v1 is DENIED; pulls recorded."""
    config = tmp_path / "artifact-store.toml"
    config.write_text("pull_record_seconds = 0.2\n" + RULES)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    args = ["--listen", f"127.0.0.1:{port}", "--data-dir", str(tmp_path / "data")]
    with (
        serving([*args, "--config", str(config)], url, tmp_path),
        httpx.Client(base_url=url) as http,
    ):
        client = oras.client.OrasClient(hostname=f"127.0.0.1:{port}", insecure=True)
        one, two = tmp_path / "one.txt", tmp_path / "two.txt"
        one.write_text("first")
        two.write_text("second")
        _oras_push(client, f"127.0.0.1:{port}/{REPO}:v1", one)
        _oras_push(client, f"127.0.0.1:{port}/{REPO}:latest", two)  # not immutable
        first = http.get(f"/v2/{REPO}/manifests/v1", headers={"Accept": "*/*"})
        second = http.get(f"/v2/{REPO}/manifests/latest", headers={"Accept": "*/*"})
        moved = http.put(
            f"/v2/{REPO}/manifests/v1",
            content=second.content,
            headers={"Content-Type": second.headers["content-type"]},
        )
        _denied_immutable(moved, "v1")
        digest = first.headers["Docker-Content-Digest"]
        pulled_dir = tmp_path / "pulled"
        client.pull(target=f"127.0.0.1:{port}/{REPO}:v1", outdir=str(pulled_dir))
        assert (pulled_dir / "one.txt").read_text() == "first"
        wanted = {digest, second.headers["Docker-Content-Digest"]}
        deadline = time.monotonic() + 15
        pulled: set[str] = set()
        while pulled != wanted and time.monotonic() < deadline:
            events = http.get("/api/v1/events", params={"after": 0}).json()["events"]
            pulled = {e["payload"]["digest"] for e in events if e["type"] == "manifest.pulled"}
            time.sleep(0.1)
        assert pulled == wanted
        client.session.close()


# -- the content under an immutable tag --------------------------------------------


def _denied_content(response: httpx.Response, tag: str, digest: object) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    detail = response.json()["errors"][0]["detail"]
    assert detail == {"reason": "immutable", "tag": tag, "digest": str(digest)}


async def _gc_later(world: World) -> None:
    """A GC run as if two hours had passed: everything unreferenced is past its grace."""
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)
    await collect(world.registry, grace=dt.timedelta(hours=1), now=later)


async def _pull_all(client: httpx.AsyncClient, repo: str, reference: str) -> None:
    """The manifest and every blob it names (children too) download and verify."""
    accept = f"{mediatype.OCI_MANIFEST},{mediatype.OCI_INDEX}"
    response = await client.get(f"/v2/{repo}/manifests/{reference}", headers={"Accept": accept})
    assert response.status_code == 200, response.text
    document = response.json()
    for child in document.get("manifests", []):
        await _pull_all(client, repo, child["digest"])
    for desc in [document.get("config"), *document.get("layers", [])]:
        if desc is not None:
            got = await client.get(f"/v2/{repo}/blobs/{desc['digest']}")
            assert got.status_code == 200, got.text
            assert str(Digest.compute(got.content)) == desc["digest"]


async def test_a_blob_under_an_immutable_tag_cannot_be_deleted(served: Served) -> None:
    client = served.client
    config, layer, loose = Blob(b'{"os":"linux"}'), random_blob(), random_blob()
    for blob in (config, layer, loose):
        await push_blob(client, REPO, blob)
    await push_manifest(client, REPO, "v1", oci_image(config, [layer]))
    for blob in (layer, config):
        _denied_content(await client.delete(f"/v2/{REPO}/blobs/{blob.digest}"), "v1", blob.digest)
    # A blob nothing immutable names goes as before.
    assert (await client.delete(f"/v2/{REPO}/blobs/{loose.digest}")).status_code == 202
    await _gc_later(served.world)
    await _pull_all(client, REPO, "v1")


async def test_the_children_of_an_immutable_index_and_their_blobs_stay(served: Served) -> None:
    client = served.client
    config, layer = Blob(b'{"os":"linux"}'), random_blob()
    for blob in (config, layer):
        await push_blob(client, REPO, blob)
    child = await push_manifest(client, REPO, None, oci_image(config, [layer]))
    await push_manifest(client, REPO, "v2", oci_index([child]))
    _denied_content(await client.delete(f"/v2/{REPO}/blobs/{layer.digest}"), "v2", layer.digest)
    response = await client.delete(f"/v2/{REPO}/manifests/{child.digest}")
    _denied_content(response, "v2", child.digest)
    # An override names a tag's change; it does not lift the content's protection.
    response = await client.delete(
        f"/v2/{REPO}/manifests/{child.digest}", headers={OVERRIDE: "cleanup"}
    )
    _denied_content(response, "v2", child.digest)
    await _gc_later(served.world)
    await _pull_all(client, REPO, "v2")


async def test_once_the_tag_is_gone_its_blobs_may_be_deleted(served: Served) -> None:
    client = served.client
    config, layer = Blob(b'{"os":"linux"}'), random_blob()
    for blob in (config, layer):
        await push_blob(client, REPO, blob)
    await push_manifest(client, REPO, "v1", oci_image(config, [layer]))
    _denied_content(await client.delete(f"/v2/{REPO}/blobs/{layer.digest}"), "v1", layer.digest)
    deleted = await client.delete(f"/v2/{REPO}/manifests/v1", headers={OVERRIDE: "withdrawn"})
    assert deleted.status_code == 202, deleted.text
    assert (await client.delete(f"/v2/{REPO}/blobs/{layer.digest}")).status_code == 202
