"""Legal holds end to end: every deletion path over HTTP refuses held content until release.

An in-process app (``httpx.ASGITransport``: the real routes, services,
``MetadataStore`` and ``FsBlobStore``) on SQLite and on PostgreSQL metadata.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from registry.config import Settings
from registry.events import running_events
from registry.http.app import create_app
from registry.http.state import state_of
from registry.meta import MetadataStore
from registry.service.registry import Registry
from storage.filesystem import FsBlobStore
from tests.http._oci import (
    Blob,
    Pushed,
    error_code,
    image,
    push_blob,
    push_manifest,
    random_blob,
)
from tests.meta.conftest import UrlFactory, make_url
from tests.native.conftest import cbor_of, file_entry, manifest_json, upload_blob

__all__ = ["make_url"]

pytestmark = pytest.mark.anyio

REPO = "team/app"
OTHER = "team/other"
CBOR = "application/vnd.artifactstore.manifest.v1+cbor"
SIGNATURE_TYPE = "application/vnd.dev.cosign.artifact.sig.v1+json"


@dataclass
class Lifecycle:
    client: httpx.AsyncClient
    registry: Registry


@pytest.fixture
async def lifecycle(make_url: UrlFactory, tmp_path: Path) -> AsyncIterator[Lifecycle]:
    meta = await MetadataStore.open(make_url())
    registry = Registry(meta, FsBlobStore(tmp_path / "blobs"), Settings(data_dir=str(tmp_path)))
    app = create_app(registry.settings, registry)
    transport = httpx.ASGITransport(app=app)
    try:
        async with (
            running_events(meta, None, registry.settings.events.nats_subject) as events,
            httpx.AsyncClient(transport=transport, base_url="http://registry.test") as client,
        ):
            state_of(app).events = events
            yield Lifecycle(client, registry)
    finally:
        await meta.close()


@dataclass
class Image:
    manifest: Pushed
    config: Blob
    layer: Blob


async def push_image(client: httpx.AsyncClient, repo: str, tag: str | None) -> Image:
    config, layer = Blob(b'{"architecture":"amd64","os":"linux"}'), random_blob(4096)
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    return Image(await push_manifest(client, repo, tag, image(config, [layer])), config, layer)


async def push_signature(client: httpx.AsyncClient, repo: str, subject: Pushed) -> Pushed:
    payload = random_blob(128)
    await push_blob(client, repo, payload)
    document = image(payload, [], subject=subject, artifact_type=SIGNATURE_TYPE)
    return await push_manifest(client, repo, None, document)


def assert_held(response: httpx.Response, hold_id: str) -> None:
    assert response.status_code == 403, response.text
    assert error_code(response) == "DENIED"
    [error] = response.json()["errors"]
    assert "legal hold" in error["message"]
    assert error["detail"]["reason"] == "legal-hold"
    assert hold_id in error["detail"]["holds"]


async def place(
    client: httpx.AsyncClient, repo: str, reference: str | None, reason: str = "case 42"
) -> dict[str, Any]:
    response = await client.post(
        "/api/v1/holds", json={"repository": repo, "reference": reference, "reason": reason}
    )
    assert response.status_code == 201, response.text
    hold: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/api/v1/holds/{hold['id']}"
    return hold


async def release(client: httpx.AsyncClient, hold_id: str, reason: str = "closed") -> None:
    response = await client.delete(f"/api/v1/holds/{hold_id}", params={"reason": reason})
    assert response.status_code == 200, response.text


# -- /v2/ and the native API refuse held content ------------------------------------


async def test_a_held_image_and_its_signature_cannot_be_deleted_until_released(
    lifecycle: Lifecycle,
) -> None:
    client = lifecycle.client
    pushed = await push_image(client, REPO, "v1")
    signature = await push_signature(client, REPO, pushed.manifest)
    hold = await place(client, REPO, "v1")
    assert (hold["repository"], hold["tag"], hold["digest"]) == (
        REPO,
        "v1",
        str(pushed.manifest.digest),
    )

    attempts = [
        f"/v2/{REPO}/manifests/v1",
        f"/v2/{REPO}/manifests/{pushed.manifest.digest}",
        f"/v2/{REPO}/manifests/{signature.digest}",
        f"/v2/{REPO}/blobs/{pushed.layer.digest}",
        f"/v2/{REPO}/blobs/{pushed.config.digest}",
    ]
    for url in attempts:
        assert_held(await client.delete(url), hold["id"])
    # Everything is still there, bytes included.
    pulled = await client.get(f"/v2/{REPO}/manifests/v1")
    assert pulled.content == pushed.manifest.body
    assert (await client.get(f"/v2/{REPO}/blobs/{pushed.layer.digest}")).content == (
        pushed.layer.data
    )
    referrers = (await client.get(f"/v2/{REPO}/referrers/{pushed.manifest.digest}")).json()
    assert [m["digest"] for m in referrers["manifests"]] == [str(signature.digest)]

    await release(client, hold["id"])
    for url in attempts[2:3] + attempts[:2] + attempts[3:]:
        response = await client.delete(url)
        assert response.status_code == 202, (url, response.text)
    assert (await client.get(f"/v2/{REPO}/manifests/{pushed.manifest.digest}")).status_code == 404


async def test_a_held_native_version_refuses_the_native_delete_too(lifecycle: Lifecycle) -> None:
    client = lifecycle.client
    files = {"bin/tool": b"\x7fELF tool bytes" * 50, "README": b"read me\n"}
    for data in files.values():
        await upload_blob(client, REPO, data, chunk=4096)
    document = manifest_json(REPO, "1.0", [file_entry(p, d) for p, d in files.items()])
    published = await client.put(
        f"/api/v1/artifacts/{REPO}/versions/1.0",
        content=cbor_of(document),
        headers={"Content-Type": CBOR},
    )
    assert published.status_code == 201, published.text
    digest = published.json()["digest"]
    hold = await place(client, REPO, "1.0")

    assert_held(await client.delete(f"/api/v1/artifacts/{REPO}/versions/1.0"), hold["id"])
    assert_held(await client.delete(f"/v2/{REPO}/manifests/{digest}"), hold["id"])
    assert_held(await client.delete(f"/v2/{REPO}/manifests/1.0"), hold["id"])
    got = await client.get(f"/api/v1/artifacts/{REPO}/versions/1.0/files/bin/tool")
    assert got.content == files["bin/tool"]

    await release(client, hold["id"])
    assert (await client.delete(f"/api/v1/artifacts/{REPO}/versions/1.0")).status_code == 204
    assert (await client.get(f"/api/v1/artifacts/{REPO}/versions/1.0")).status_code == 404


async def test_a_repository_hold_covers_everything_in_it_and_nothing_else(
    lifecycle: Lifecycle,
) -> None:
    client = lifecycle.client
    held = await push_image(client, REPO, "v1")
    loose = random_blob()
    await push_blob(client, REPO, loose)
    elsewhere = await push_image(client, OTHER, "v1")
    hold = await place(client, REPO, None)
    assert (hold["digest"], hold["tag"]) == (None, None)

    assert_held(await client.delete(f"/v2/{REPO}/manifests/v1"), hold["id"])
    assert_held(await client.delete(f"/v2/{REPO}/manifests/{held.manifest.digest}"), hold["id"])
    assert_held(await client.delete(f"/v2/{REPO}/blobs/{loose.digest}"), hold["id"])
    # New pushes still land, and are held as soon as they do.
    late = await push_image(client, REPO, "v2")
    assert_held(await client.delete(f"/v2/{REPO}/manifests/{late.manifest.digest}"), hold["id"])
    other = await client.delete(f"/v2/{OTHER}/manifests/{elsewhere.manifest.digest}")
    assert other.status_code == 202

    await release(client, hold["id"])
    assert (await client.delete(f"/v2/{REPO}/blobs/{loose.digest}")).status_code == 202
    assert (await client.delete(f"/v2/{REPO}/manifests/v1")).status_code == 202


async def test_a_digest_hold_keeps_the_manifest_while_its_tag_may_go(
    lifecycle: Lifecycle,
) -> None:
    client = lifecycle.client
    pushed = await push_image(client, REPO, "v1")
    digest = str(pushed.manifest.digest)
    hold = await place(client, REPO, digest)
    assert (hold["digest"], hold["tag"]) == (digest, None)
    assert_held(await client.delete(f"/v2/{REPO}/manifests/{digest}"), hold["id"])
    # The hold is on the content, not on the name: untagging destroys nothing.
    assert (await client.delete(f"/v2/{REPO}/manifests/v1")).status_code == 202
    assert (await client.get(f"/v2/{REPO}/manifests/{digest}")).status_code == 200
    assert_held(await client.delete(f"/v2/{REPO}/blobs/{pushed.layer.digest}"), hold["id"])


async def test_every_hold_and_release_is_an_event(lifecycle: Lifecycle) -> None:
    client = lifecycle.client
    await push_image(client, REPO, "v1")
    start = (await client.get("/api/v1/events", params={"limit": 1000})).json()["next"]
    hold = await place(client, REPO, "v1", reason="litigation 2024-17")
    await release(client, hold["id"], reason="settled")

    answer = await client.get("/api/v1/events", params={"after": start, "repository": REPO})
    found = [(e["type"], e["actor"], e["payload"]) for e in answer.json()["events"]]
    assert found == [
        (
            "hold.placed",
            "anonymous",
            {
                "repository": REPO,
                "hold_id": hold["id"],
                "digest": hold["digest"],
                "tag": "v1",
                "reason": "litigation 2024-17",
                "placed_by": "anonymous",
            },
        ),
        (
            "hold.released",
            "anonymous",
            {"repository": REPO, "hold_id": hold["id"], "reason": "settled"},
        ),
    ]
    typed = await client.get("/api/v1/events", params={"after": start, "type": "hold.released"})
    assert [e["type"] for e in typed.json()["events"]] == ["hold.released"]


# -- the hold API itself ------------------------------------------------------------


async def test_holds_are_listed_fetched_and_released_with_a_reason(lifecycle: Lifecycle) -> None:
    client = lifecycle.client
    await push_image(client, REPO, "v1")
    await push_image(client, OTHER, "v1")
    first = await place(client, REPO, None)
    second = await place(client, OTHER, "v1")

    listed = (await client.get("/api/v1/holds")).json()["holds"]
    assert [h["id"] for h in listed] == [first["id"], second["id"]]
    assert listed[0] == first
    scoped = await client.get("/api/v1/holds", params={"repository": OTHER})
    assert scoped.json() == {"holds": [second]}
    assert (await client.get(f"/api/v1/holds/{first['id']}")).json() == first
    foreign = await client.get(f"/api/v1/holds/{first['id']}", params={"repository": OTHER})
    assert foreign.status_code == 404
    placed_at = dt.datetime.fromisoformat(first["placed_at"])
    assert abs(placed_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)

    unreasoned = await client.delete(f"/api/v1/holds/{first['id']}")
    assert unreasoned.status_code == 400
    assert error_code(unreasoned) == "UNSUPPORTED"
    assert unreasoned.json()["errors"][0]["message"] == "releasing a legal hold needs a reason"
    blank = await client.delete(f"/api/v1/holds/{first['id']}", params={"reason": "  "})
    assert blank.status_code == 400
    # A release scoped to another repository cannot reach this hold.
    wrong = await client.delete(
        f"/api/v1/holds/{first['id']}", params={"reason": "x", "repository": OTHER}
    )
    assert wrong.status_code == 404
    assert error_code(wrong) == "MANIFEST_UNKNOWN"

    released = await client.request(
        "DELETE", f"/api/v1/holds/{first['id']}", json={"reason": "case closed"}
    )
    assert released.status_code == 200
    assert released.json() == {**first, "released": {"reason": "case closed", "by": "anonymous"}}
    again = await client.delete(f"/api/v1/holds/{first['id']}", params={"reason": "again"})
    assert again.status_code == 404
    assert (await client.get("/api/v1/holds")).json() == {"holds": [second]}


MALFORMED_HOLDS: list[tuple[bytes, int, str]] = [
    (b"not json", 400, "UNSUPPORTED"),
    (b"[1, 2]", 400, "UNSUPPORTED"),
    (json.dumps({"repository": REPO}).encode(), 400, "UNSUPPORTED"),
    (json.dumps({"repository": REPO, "reason": ""}).encode(), 400, "UNSUPPORTED"),
    (json.dumps({"repository": REPO, "reason": "x" * 5000}).encode(), 400, "UNSUPPORTED"),
    (json.dumps({"repository": 7, "reason": "r"}).encode(), 400, "UNSUPPORTED"),
    (json.dumps({"repository": "Bad Name", "reason": "r"}).encode(), 400, "NAME_INVALID"),
    (json.dumps({"repository": "team/none", "reason": "r"}).encode(), 404, "NAME_UNKNOWN"),
    (json.dumps({"repository": REPO, "reference": "v9", "reason": "r"}).encode(), 404,
     "MANIFEST_UNKNOWN"),
    (json.dumps({"repository": REPO, "reference": "bad tag!", "reason": "r"}).encode(), 400,
     "TAG_INVALID"),
    (json.dumps({"repository": REPO, "reference": "sha256:abc", "reason": "r"}).encode(), 400,
     "DIGEST_INVALID"),
    (b"{" + b" " * 70_000 + b"}", 413, "SIZE_INVALID"),
]  # fmt: skip


async def test_a_malformed_hold_request_is_a_clear_4xx_and_places_nothing(
    lifecycle: Lifecycle,
) -> None:
    client = lifecycle.client
    await push_image(client, REPO, "v1")
    for body, status, code in MALFORMED_HOLDS:
        response = await client.post(
            "/api/v1/holds", content=body, headers={"Content-Type": "application/json"}
        )
        assert (response.status_code, error_code(response)) == (status, code), body[:80]
    assert (await client.get("/api/v1/holds")).json() == {"holds": []}
    assert await lifecycle.registry.meta.events(0, 1000, types=["hold.placed"]) == []


async def test_a_scoped_request_acts_only_on_its_repository(lifecycle: Lifecycle) -> None:
    client = lifecycle.client
    await push_image(client, REPO, "v1")
    body = {"repository": REPO, "reason": "case"}
    mismatch = await client.post("/api/v1/holds", json=body, params={"repository": OTHER})
    assert mismatch.status_code == 403
    assert error_code(mismatch) == "DENIED"
    scoped = await client.post("/api/v1/holds", json=body, params={"repository": REPO})
    assert scoped.status_code == 201
    invalid = await client.get("/api/v1/holds", params={"repository": "Not/Valid"})
    assert invalid.status_code == 400
    assert error_code(invalid) == "NAME_INVALID"


# -- retention extension ------------------------------------------------------------


async def _publish_with_retention(client: httpx.AsyncClient, until: str) -> str:
    data = b"model weights"
    await upload_blob(client, REPO, data, chunk=4096)
    document = manifest_json(
        REPO, "2.0", [file_entry("w.bin", data)], retention={"class": "release", "until": until}
    )
    published = await client.put(
        f"/api/v1/artifacts/{REPO}/versions/2.0",
        content=cbor_of(document),
        headers={"Content-Type": CBOR},
    )
    assert published.status_code == 201, published.text
    digest: str = published.json()["digest"]
    return digest


async def test_retention_is_extended_never_shortened(lifecycle: Lifecycle) -> None:
    client = lifecycle.client
    current = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    digest = await _publish_with_retention(client, current.isoformat().replace("+00:00", "Z"))
    url = f"/api/v1/artifacts/{REPO}/versions/2.0/retention"
    start = (await client.get("/api/v1/events", params={"limit": 1000})).json()["next"]

    for earlier in (current - dt.timedelta(days=1), current):
        shorter = await client.post(url, json={"until": earlier.isoformat()})
        assert shorter.status_code == 403, shorter.text
        assert error_code(shorter) == "DENIED"
        [error] = shorter.json()["errors"]
        assert "can only be extended" in error["message"]
        assert dt.datetime.fromisoformat(error["detail"]["until"]) == current

    later = current + dt.timedelta(days=365)
    extended = await client.post(url, json={"until": later.isoformat().replace("+00:00", "Z")})
    assert extended.status_code == 200, extended.text
    assert extended.json() == {
        "name": REPO,
        "version": "2.0",
        "digest": digest,
        "until": later.isoformat().replace("+00:00", "Z"),
    }
    # By digest too; and the date now to beat is the extended one.
    by_digest = f"/api/v1/artifacts/{REPO}/versions/{digest}/retention"
    again = await client.post(by_digest, json={"until": (later - dt.timedelta(days=1)).isoformat()})
    assert again.status_code == 403

    events = (await client.get("/api/v1/events", params={"after": start})).json()["events"]
    assert [(e["type"], e["payload"]["until"]) for e in events] == [
        ("retention.extended", later.isoformat())
    ]


BAD_EXTENSIONS: list[tuple[str, dict[str, str], int, str]] = [
    ("2.0", {"until": "next tuesday"}, 400, "UNSUPPORTED"),
    ("2.0", {"until": "2099-01-01T00:00:00"}, 400, "UNSUPPORTED"),  # no offset
    ("2.0", {}, 400, "UNSUPPORTED"),
    ("2.0", {"until": "2001-01-01T00:00:00Z"}, 403, "DENIED"),  # the past shortens
    ("9.9", {"until": "2099-01-01T00:00:00Z"}, 404, "MANIFEST_UNKNOWN"),
    ("bad!", {"until": "2099-01-01T00:00:00Z"}, 400, "TAG_INVALID"),
]


async def test_a_bad_retention_extension_is_a_clear_4xx(lifecycle: Lifecycle) -> None:
    client = lifecycle.client
    await _publish_with_retention(client, "2098-01-01T00:00:00Z")
    for version, body, status, code in BAD_EXTENSIONS:
        response = await client.post(
            f"/api/v1/artifacts/{REPO}/versions/{version}/retention", json=body
        )
        assert (response.status_code, error_code(response)) == (status, code), (version, body)
    unknown = await client.post(
        "/api/v1/artifacts/team/none/versions/1/retention", json={"until": "2099-01-01T00:00:00Z"}
    )
    assert (unknown.status_code, error_code(unknown)) == (404, "NAME_UNKNOWN")
    assert await lifecycle.registry.meta.events(0, 1000, types=["retention.extended"]) == []
