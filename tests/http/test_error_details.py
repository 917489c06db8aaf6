"""The ``detail`` of each error the registry answers with: part of what a client is told.

The distribution spec's envelope is ``{"errors":[{"code","message","detail"}]}``;
``message`` is for people, ``detail`` is what a client (or its operator's
tooling) can act on without parsing prose: which digest is unknown, what a
digest should have been, where an upload stands, which holds deny a delete.
One row per kind of error; each names the request that provokes it. The
rows of the auth layer run on a registry with auth on (``tests/auth``).
https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#error-codes
"""

from __future__ import annotations

import datetime as dt
import json
import tomllib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from oci.digest import Digest
from oci.mediatype import DOCKER_MANIFEST, OCI_MANIFEST
from registry.config import LifecycleSettings, Settings
from tests.auth.conftest import AuthServed, authed, basic
from tests.http._oci import Blob, Pushed, error_code, image, push_blob, push_manifest, random_blob
from tests.http.conftest import Served

__all__ = ["authed"]

pytestmark = pytest.mark.anyio

REPO = "team/app"
IMMUTABLE = "team/frozen"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    rules = f'[[immutable_tags]]\nrepository = "{IMMUTABLE}"\ntags = ["v*"]\n'
    return Settings(
        data_dir=str(tmp_path / "data"),
        lifecycle=LifecycleSettings(policy=tomllib.loads(rules)),
    )


@dataclass
class World:
    """What the rows act on: one blob of 100 bytes and one tagged image, in REPO."""

    client: httpx.AsyncClient
    blob: Blob
    image: Pushed
    config: Blob


@dataclass
class Answer:
    response: httpx.Response
    status: int
    code: str
    detail: dict[str, Any]


Row = Callable[[World], Awaitable[Answer]]
ROWS: list[Row] = []


def row(function: Row) -> Row:
    ROWS.append(function)
    return function


def _mismatch(name: str, answer: Answer) -> str | None:
    response = answer.response
    got = (response.status_code, error_code(response), response.json()["errors"][0]["detail"])
    expected = (answer.status, answer.code, answer.detail)
    return None if got == expected else f"{name}: {got}, expected {expected}"


async def _start_upload(client: httpx.AsyncClient) -> str:
    started = await client.post(f"/v2/{REPO}/blobs/uploads/")
    assert started.status_code == 202, started.text
    return str(started.headers["Location"])


def _manifest(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


@row
async def blob_unknown(world: World) -> Answer:
    missing = random_blob().digest
    response = await world.client.get(f"/v2/{REPO}/blobs/{missing}")
    return Answer(response, 404, "BLOB_UNKNOWN", {"digest": str(missing)})


@row
async def blob_unknown_on_delete(world: World) -> Answer:
    missing = random_blob().digest
    response = await world.client.delete(f"/v2/{REPO}/blobs/{missing}")
    return Answer(response, 404, "BLOB_UNKNOWN", {"digest": str(missing)})


@row
async def range_outside_the_blob(world: World) -> Answer:
    response = await world.client.get(
        f"/v2/{REPO}/blobs/{world.blob.digest}", headers={"Range": "bytes=500-600"}
    )
    return Answer(response, 416, "BLOB_UPLOAD_INVALID", {"range": "bytes=500-600", "size": 100})


@row
async def chunk_not_at_the_upload_offset(world: World) -> Answer:
    location = await _start_upload(world.client)
    response = await world.client.patch(location, content=b"abcd", headers={"Content-Range": "5-8"})
    return Answer(response, 416, "BLOB_UPLOAD_INVALID", {"offset": 0, "range": "5-8"})


@row
async def malformed_content_range(world: World) -> Answer:
    location = await _start_upload(world.client)
    response = await world.client.patch(location, content=b"abcd", headers={"Content-Range": "abc"})
    return Answer(response, 400, "BLOB_UPLOAD_INVALID", {"range": "abc"})


@row
async def chunk_length_disagreeing_with_its_range(world: World) -> Answer:
    location = await _start_upload(world.client)
    response = await world.client.patch(location, content=b"abcd", headers={"Content-Range": "0-9"})
    return Answer(response, 400, "SIZE_INVALID", {"length": 4, "range": "0-9"})


@row
async def upload_unknown(world: World) -> Answer:
    response = await world.client.patch(f"/v2/{REPO}/blobs/uploads/no-such-upload", content=b"abcd")
    return Answer(response, 404, "BLOB_UPLOAD_UNKNOWN", {"upload": "no-such-upload"})


@row
async def blob_digest_mismatch(world: World) -> Answer:
    data, claimed = b"these bytes", random_blob().digest
    response = await world.client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"digest": str(claimed)}, content=data
    )
    actual = Digest.compute(data)
    return Answer(
        response, 400, "DIGEST_INVALID", {"expected": str(claimed), "actual": str(actual)}
    )


@row
async def manifest_digest_mismatch(world: World) -> Answer:
    body = _manifest(image(world.config, [world.blob]))
    claimed = random_blob().digest
    response = await world.client.put(
        f"/v2/{REPO}/manifests/{claimed}", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    actual = Digest.compute(body)
    return Answer(
        response, 400, "DIGEST_INVALID", {"expected": str(claimed), "actual": str(actual)}
    )


@row
async def malformed_digest(world: World) -> Answer:
    response = await world.client.get(f"/v2/{REPO}/blobs/sha256:abc")
    return Answer(response, 400, "DIGEST_INVALID", {"digest": "sha256:abc"})


@row
async def manifest_blob_unknown(world: World) -> Answer:
    missing = random_blob()
    body = _manifest(image(world.config, [missing]))
    response = await world.client.put(
        f"/v2/{REPO}/manifests/dangling", content=body, headers={"Content-Type": OCI_MANIFEST}
    )
    return Answer(response, 400, "MANIFEST_BLOB_UNKNOWN", {"digest": str(missing.digest)})


@row
async def manifest_missing_a_field(world: World) -> Answer:
    document = image(world.config, [world.blob])
    del document["schemaVersion"]
    response = await world.client.put(
        f"/v2/{REPO}/manifests/broken",
        content=_manifest(document),
        headers={"Content-Type": OCI_MANIFEST},
    )
    return Answer(response, 400, "MANIFEST_INVALID", {"field": "schemaVersion"})


@row
async def manifest_with_a_bad_field(world: World) -> Answer:
    document = image(world.config, [world.blob])
    document["layers"][0]["size"] = -1
    response = await world.client.put(
        f"/v2/{REPO}/manifests/broken",
        content=_manifest(document),
        headers={"Content-Type": OCI_MANIFEST},
    )
    return Answer(response, 400, "MANIFEST_INVALID", {"field": "layers[0].size", "value": "-1"})


@row
async def manifest_too_large(world: World) -> Answer:
    limit = Settings().server.max_manifest_bytes
    response = await world.client.put(
        f"/v2/{REPO}/manifests/huge",
        content=b" " * (limit + 1),
        headers={"Content-Type": OCI_MANIFEST},
    )
    return Answer(response, 413, "SIZE_INVALID", {"size": limit + 1, "limit": limit})


@row
async def manifest_unknown(world: World) -> Answer:
    response = await world.client.get(f"/v2/{REPO}/manifests/no-such-tag")
    return Answer(response, 404, "MANIFEST_UNKNOWN", {"reference": "no-such-tag"})


@row
async def manifest_not_acceptable(world: World) -> Answer:
    response = await world.client.get(
        f"/v2/{REPO}/manifests/v1", headers={"Accept": DOCKER_MANIFEST}
    )
    return Answer(response, 404, "MANIFEST_UNKNOWN", {"reference": "v1", "mediaType": OCI_MANIFEST})


@row
async def name_with_an_encoded_slash(world: World) -> Answer:
    response = await world.client.get("/v2/team%2Fapp/tags/list")
    return Answer(response, 400, "NAME_INVALID", {"name": REPO})


@row
async def name_invalid(world: World) -> Answer:
    response = await world.client.get("/v2/team/App/tags/list")
    return Answer(response, 400, "NAME_INVALID", {"name": "team/App"})


@row
async def name_unknown(world: World) -> Answer:
    response = await world.client.get("/v2/team/nobody/tags/list")
    return Answer(response, 404, "NAME_UNKNOWN", {"name": "team/nobody"})


@row
async def tag_invalid(world: World) -> Answer:
    response = await world.client.put(
        f"/v2/{REPO}/manifests/.bad",
        content=world.image.body,
        headers={"Content-Type": OCI_MANIFEST},
    )
    return Answer(response, 400, "TAG_INVALID", {"tag": ".bad"})


@row
async def delete_denied_by_a_legal_hold(world: World) -> Answer:
    placed = await world.client.post(
        "/api/v1/holds",
        json={"repository": REPO, "reference": str(world.image.digest), "reason": "litigation"},
    )
    assert placed.status_code == 201, placed.text
    hold = placed.json()["id"]
    response = await world.client.delete(f"/v2/{REPO}/manifests/{world.image.digest}")
    released = await world.client.delete(f"/api/v1/holds/{hold}", params={"reason": "done"})
    assert released.status_code == 200, released.text
    return Answer(response, 403, "DENIED", {"reason": "legal-hold", "holds": [hold]})


@row
async def moving_an_immutable_tag(world: World) -> Answer:
    config, layer = Blob(b"{}"), random_blob()
    for blob in (config, layer):
        await push_blob(world.client, IMMUTABLE, blob)
    await push_manifest(world.client, IMMUTABLE, "v1", image(config, [layer]))
    moved = _manifest(image(config, [layer], annotations={"moved": "yes"}))
    response = await world.client.put(
        f"/v2/{IMMUTABLE}/manifests/v1", content=moved, headers={"Content-Type": OCI_MANIFEST}
    )
    return Answer(response, 403, "DENIED", {"tag": "v1", "reason": "immutable"})


@row
async def hold_without_a_reason(world: World) -> Answer:
    response = await world.client.post(
        "/api/v1/holds", json={"repository": REPO, "reference": "v1"}
    )
    return Answer(response, 400, "UNSUPPORTED", {"field": "reason"})


@row
async def hold_on_an_unknown_repository(world: World) -> Answer:
    response = await world.client.post(
        "/api/v1/holds", json={"repository": "team/nobody", "reason": "litigation"}
    )
    return Answer(response, 404, "NAME_UNKNOWN", {"name": "team/nobody"})


@row
async def releasing_an_unknown_hold(world: World) -> Answer:
    response = await world.client.delete(
        "/api/v1/holds/no-such-hold", params={"reason": "done", "repository": REPO}
    )
    return Answer(response, 404, "MANIFEST_UNKNOWN", {"hold": "no-such-hold"})


@row
async def retention_of_an_unknown_version(world: World) -> Answer:
    until = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).isoformat()
    response = await world.client.post(
        f"/api/v1/artifacts/{REPO}/versions/no-such-tag/retention", json={"until": until}
    )
    return Answer(response, 404, "MANIFEST_UNKNOWN", {"reference": "no-such-tag"})


@row
async def retention_into_the_past(world: World) -> Answer:
    response = await world.client.post(
        f"/api/v1/artifacts/{REPO}/versions/v1/retention",
        json={"until": "2001-01-01T00:00:00+00:00"},
    )
    return Answer(response, 403, "DENIED", {"reason": "retention", "until": None})


@row
async def retention_shortened(world: World) -> Answer:
    url = f"/api/v1/artifacts/{REPO}/versions/v1/retention"
    kept = (dt.datetime.now(dt.UTC) + dt.timedelta(days=30)).replace(microsecond=0)
    extended = await world.client.post(url, json={"until": kept.isoformat()})
    assert extended.status_code == 200, extended.text
    shorter = kept - dt.timedelta(days=1)
    response = await world.client.post(url, json={"until": shorter.isoformat()})
    return Answer(response, 403, "DENIED", {"reason": "retention", "until": kept.isoformat()})


async def test_each_error_kind_names_its_facts_in_the_detail(served: Served) -> None:
    config, blob = Blob(b"{}"), random_blob(100)
    for pushed in (config, blob):
        await push_blob(served.client, REPO, pushed)
    tagged = await push_manifest(served.client, REPO, "v1", image(config, [blob]))
    world = World(served.client, blob, tagged, config)
    wrong = [_mismatch(case.__name__, await case(world)) for case in ROWS]
    assert not any(wrong), "\n".join(filter(None, wrong))


# -- with auth on --------------------------------------------------------------------

AuthRow = Callable[[AuthServed], Awaitable[Answer]]
AUTH_ROWS: list[AuthRow] = []
OWNED = "acme/app"  # alice's tenant's; bob (tenant globex) may not see into it


@pytest.fixture
def extra_settings() -> dict[str, object]:
    return {"rate_per_second": 0.001, "rate_burst": 2}  # two requests per principal


def auth_row(function: AuthRow) -> AuthRow:
    AUTH_ROWS.append(function)
    return function


@auth_row
async def unsupported_grant_type(served: AuthServed) -> Answer:
    response = await served.client().post("/token", data={"grant_type": "magic"})
    return Answer(response, 401, "UNAUTHORIZED", {"grant_type": "magic"})


@auth_row
async def token_for_another_service(served: AuthServed) -> Answer:
    response = await served.client(basic("alice")).get("/token", params={"service": "elsewhere"})
    return Answer(response, 403, "DENIED", {"service": "elsewhere"})


@auth_row
async def action_not_granted(served: AuthServed) -> Answer:
    response = await served.as_user("reader").post(f"/v2/{OWNED}/blobs/uploads/")
    return Answer(response, 403, "DENIED", {"name": OWNED, "action": "push"})


@auth_row
async def blob_of_another_tenant(served: AuthServed) -> Answer:
    digest = random_blob().digest
    response = await served.as_user("bob").get(f"/v2/{OWNED}/blobs/{digest}")
    return Answer(response, 404, "BLOB_UNKNOWN", {"digest": str(digest)})


@auth_row
async def repository_of_another_tenant(served: AuthServed) -> Answer:
    response = await served.as_user("bob").get(f"/v2/{OWNED}/tags/list")
    return Answer(response, 404, "NAME_UNKNOWN", {"name": OWNED})


@auth_row
async def rate_limit_exceeded(served: AuthServed) -> Answer:
    client = served.as_user("root")
    for _ in range(2):  # the burst
        assert (await client.get("/v2/")).status_code == 200
    response = await client.get("/v2/")
    return Answer(response, 429, "TOOMANYREQUESTS", {"limit": "p"})


async def test_each_auth_error_names_its_facts_in_the_detail(authed: AuthServed) -> None:
    wrong = [_mismatch(case.__name__, await case(authed)) for case in AUTH_ROWS]
    assert not any(wrong), "\n".join(filter(None, wrong))
