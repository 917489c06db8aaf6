"""``serve --server granian``: the same app, lifespan included, on Granian's embedded server."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import httpx
import pytest

from oci.mediatype import OCI_MANIFEST
from tests.http._oci import Blob, push_blob, push_image
from tests.http._serve import free_port, serving


@pytest.mark.anyio
async def test_granian_serves_streams_and_stops_cleanly(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "d"
    # Chosen through the environment, as a container would.
    env = {"ARTIFACT_STORE_SERVER": "granian"}
    with serving(
        ["--listen", f"127.0.0.1:{port}", "--data-dir", str(data)], url, tmp_path, env
    ) as process:
        async with httpx.AsyncClient(base_url=url) as client:
            pushed = await push_image(client, "team/app", "v1")
            big = Blob(bytes(range(256)) * (12 * 1024))  # 3 MiB: several read chunks
            await push_blob(client, "team/app", big)

            got = await client.get("/v2/team/app/manifests/v1", headers={"Accept": OCI_MANIFEST})
            assert got.headers["server"] == "granian"
            assert got.status_code == 200
            assert got.content == pushed.body
            # HEAD keeps the Content-Length of the GET it stands for.
            head = await client.head("/v2/team/app/manifests/v1")
            assert head.headers["Content-Length"] == str(len(pushed.body))
            head = await client.head(f"/v2/team/app/blobs/{big.digest}")
            assert head.headers["Content-Length"] == str(big.size)

            async with client.stream("GET", f"/v2/team/app/blobs/{big.digest}") as streamed:
                assert streamed.status_code == 200
                assert b"".join([chunk async for chunk in streamed.aiter_raw()]) == big.data
            ranged = await client.get(
                f"/v2/team/app/blobs/{big.digest}", headers={"Range": "bytes=10-19"}
            )
            assert ranged.status_code == 206
            assert ranged.content == big.data[10:20]
    # SIGTERM ended it at once, after the lifespan's shutdown work: the pull
    # recorder's last flush wrote the GET above as a manifest.pulled event.
    assert process.returncode == 0
    with sqlite3.connect(data / "meta.db") as db:
        pulled = db.execute("SELECT count(*) FROM events WHERE type = 'manifest.pulled'").fetchone()
    assert pulled == (1,)
