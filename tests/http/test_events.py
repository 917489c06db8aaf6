"""Every change made through /v2/ lands in the event log, in order."""

from __future__ import annotations

import json

import pytest

from tests.http._oci import Blob, image, push_blob, push_manifest, random_blob
from tests.http.conftest import Served

REPO = "team/app"


@pytest.mark.anyio
async def test_every_change_is_an_event(served: Served) -> None:
    client = served.client
    meta = served.registry.meta
    start = await meta.events(0, 10_000)
    after = start[-1].seq if start else 0

    layer, config = random_blob(), Blob(b"{}")
    response = await client.post(f"/v2/{REPO}/blobs/uploads/")
    location = response.headers["Location"]
    location = (await client.patch(location, content=layer.data[:10])).headers["Location"]
    await client.put(location, params={"digest": str(layer.digest)}, content=layer.data[10:])
    await push_blob(client, "source", config)
    mounted = await client.post(
        f"/v2/{REPO}/blobs/uploads/", params={"mount": str(config.digest), "from": "source"}
    )
    assert mounted.status_code == 201
    pushed = await push_manifest(client, REPO, "v1", image(config, [layer]))
    await push_manifest(client, REPO, "v2", json.loads(pushed.body))
    await client.delete(f"/v2/{REPO}/manifests/v2")
    await client.delete(f"/v2/{REPO}/manifests/{pushed.digest}")
    await client.delete(f"/v2/{REPO}/blobs/{layer.digest}")
    cancelled = (await client.post(f"/v2/{REPO}/blobs/uploads/")).headers["Location"]
    await client.delete(cancelled)

    events = await meta.events(after, 10_000)
    seen = [(e.repository, e.type) for e in events]
    assert seen == [
        (REPO, "upload.started"),
        (REPO, "upload.progressed"),
        (REPO, "blob.committed"),
        (REPO, "upload.ended"),
        ("source", "upload.started"),
        ("source", "blob.committed"),
        ("source", "upload.ended"),
        (REPO, "blob.mounted"),
        (REPO, "manifest.put"),
        (REPO, "manifest.put"),
        (REPO, "tag.deleted"),
        (REPO, "manifest.deleted"),
        (REPO, "blob.unlinked"),
        (REPO, "upload.started"),
        (REPO, "upload.ended"),
    ]
    assert [e.seq for e in events] == sorted(e.seq for e in events)
    put = events[8].event
    assert getattr(put, "tags", None) == ("v1",)
    assert getattr(put, "body", None) == pushed.body
    assert [getattr(e.event, "reason", None) for e in events if e.type == "upload.ended"] == [
        "completed",
        "completed",
        "cancelled",
    ]
