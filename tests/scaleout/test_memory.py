"""A huge push through a served process on the S3 backend keeps its memory flat.

Blobs stream (docs/architecture.md): request bodies go to the bucket in parts,
hashed as they pass, so server memory must not grow with blob size. The body
is generated on the fly on the client side too, so the test itself holds at
most one MiB of it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from bench.servers import RssSampler
from tests.scaleout._cluster import started

pytestmark = pytest.mark.slow

MiB = 1024 * 1024
# 1 GiB keeps the test near a minute on a 2-core machine; set it to 2048 to run
# the 2 GiB case by hand.
SIZE = int(os.environ.get("ARTIFACT_STORE_TEST_HUGE_MIB", "1024")) * MiB
LIMIT = 100 * MiB


def _body(size: int, digest: hashlib._Hash) -> Iterator[bytes]:
    block = os.urandom(MiB)
    for number in range(size // MiB):
        chunk = number.to_bytes(8, "big") + block[8:]  # distinct blocks, no repetition to dedupe
        digest.update(chunk)
        yield chunk


def test_pushing_a_huge_blob_keeps_server_rss_flat(tmp_path: Path, s3_store_url: str) -> None:
    database = f"sqlite:///{tmp_path / 'meta.db'}"
    with (
        started(tmp_path, database, s3_store_url, ()) as (server,),
        httpx.Client(base_url=server.url, timeout=600) as client,
    ):
        # Warm up: one small push loads every code path the big one will use.
        warm = os.urandom(9 * MiB)
        response = client.post(
            "/v2/memory/huge/blobs/uploads/",
            params={"digest": f"sha256:{hashlib.sha256(warm).hexdigest()}"},
            content=warm,
        )
        assert response.status_code == 201, response.text
        assert server.process.pid is not None
        with RssSampler(server.process.pid) as baseline_sampler:
            client.get("/v2/")
        baseline = baseline_sampler.peak
        started_upload = client.post("/v2/memory/huge/blobs/uploads/")
        location = urlsplit(started_upload.headers["Location"]).path
        digest = hashlib.sha256()
        with RssSampler(server.process.pid) as sampler:
            patched = client.patch(
                location,
                content=_body(SIZE, digest),
                headers={"Content-Type": "application/octet-stream"},
            )
            assert patched.status_code == 202, patched.text
            done = client.put(location, params={"digest": f"sha256:{digest.hexdigest()}"})
            assert done.status_code == 201, done.text
        head = client.head(f"/v2/memory/huge/blobs/sha256:{digest.hexdigest()}")
        assert head.headers["Content-Length"] == str(SIZE)
    growth = sampler.peak - baseline
    print(f"pushed {SIZE // MiB} MiB: server RSS {baseline / MiB:.0f} MiB -> peak "
          f"{sampler.peak / MiB:.0f} MiB (+{growth / MiB:.1f} MiB)")  # fmt: skip
    assert growth < LIMIT, f"RSS grew by {growth / MiB:.1f} MiB"
