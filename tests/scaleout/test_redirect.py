"""``--redirect-blobs``: full blob GETs answered 307 to a presigned object-store URL.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-blobs
"A GET request to an existing blob URL MUST provide the expected blob, with a
response code that MUST be 200 OK. A successful response SHOULD contain the
digest of the uploaded blob in the header Docker-Content-Digest." The spec
also lets the registry answer 307 to the blob's location; clients follow it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import anyio
import httpx
import oras.client
import pytest

from tests.clients._layout import Layout, build_image, run
from tests.http._oci import Blob, push_blob
from tests.scaleout._cluster import Server, started

pytestmark = [pytest.mark.postgres]

MiB = 1024 * 1024
SKOPEO = ("skopeo", "--insecure-policy")


@pytest.fixture(scope="module")
def replicas(
    tmp_path_factory: pytest.TempPathFactory, database_url: str, bucket_url: str
) -> Iterator[tuple[Server, Server]]:
    """(redirecting, default): the same registry, one with ``--redirect-blobs``."""
    workdir = tmp_path_factory.mktemp("redirect")
    with started(workdir, database_url, bucket_url, ("--redirect-blobs",), ()) as (r, d):
        yield r, d


@pytest.fixture(scope="module")
def pushed(replicas: tuple[Server, Server]) -> tuple[str, Blob]:
    """A 5 MiB blob, pushed through the default replica."""
    blob = Blob(os.urandom(5 * MiB))
    repo = "scaleout/redirect"

    async def push() -> None:
        async with httpx.AsyncClient(base_url=replicas[1].url, timeout=60) as client:
            await push_blob(client, repo, blob)

    anyio.run(push)
    return repo, blob


def test_full_get_is_redirected_to_a_presigned_object_url(
    replicas: tuple[Server, Server], pushed: tuple[str, Blob], bucket_url: str
) -> None:
    redirecting, _ = replicas
    repo, blob = pushed
    endpoint = urlsplit(parse_qs(urlsplit(bucket_url).query)["endpoint"][0])
    with httpx.Client(base_url=redirecting.url, timeout=60) as client:
        response = client.get(f"/v2/{repo}/blobs/{blob.digest}")
        assert response.status_code == 307
        assert response.headers["Docker-Content-Digest"] == str(blob.digest)
        target = urlsplit(response.headers["Location"])
        assert target.netloc == endpoint.netloc  # straight to the object store
        assert "X-Amz-Signature" in target.query
        # The presigned URL carries its own authority: no registry credentials needed.
        direct = httpx.get(response.headers["Location"], timeout=60)
        assert direct.status_code == 200
        assert direct.content == blob.data

        head = client.head(f"/v2/{repo}/blobs/{blob.digest}")
        assert head.status_code == 200  # HEAD is answered by the registry itself
        assert head.headers["Content-Length"] == str(blob.size)
        assert "Location" not in head.headers

        ranged = client.get(f"/v2/{repo}/blobs/{blob.digest}", headers={"Range": "bytes=10-19"})
        assert ranged.status_code == 206  # ranges are served, not redirected
        assert ranged.content == blob.data[10:20]


def test_redirects_are_off_by_default(
    replicas: tuple[Server, Server], pushed: tuple[str, Blob]
) -> None:
    _, default = replicas
    repo, blob = pushed
    response = httpx.get(f"{default.url}/v2/{repo}/blobs/{blob.digest}", timeout=60)
    assert response.status_code == 200
    assert response.content == blob.data


@pytest.mark.clients
def test_skopeo_pulls_through_the_redirect(replicas: tuple[Server, Server], tmp_path: Path) -> None:
    redirecting, default = replicas
    source = build_image(tmp_path / "in", "v1", {"/blob.bin": os.urandom(2 * MiB)})
    repo = "scaleout/redirect-skopeo"
    run(*SKOPEO, "copy", "--dest-tls-verify=false", f"oci:{source.path}:v1",
        default.ref(repo, "v1"))  # fmt: skip
    out = Layout(tmp_path / "out")
    run(*SKOPEO, "copy", "--src-tls-verify=false", redirecting.ref(repo, "v1"),
        f"oci:{out.path}:v1")  # fmt: skip
    assert out.descriptor("v1")["digest"] == source.descriptor("v1")["digest"]
    for digest in source.layer_digests("v1"):
        assert out.blob(digest) == source.blob(digest)


@pytest.mark.clients
def test_oras_pulls_through_the_redirect(replicas: tuple[Server, Server], tmp_path: Path) -> None:
    redirecting, default = replicas
    repo = "scaleout/redirect-oras"
    (tmp_path / "in").mkdir()
    model = tmp_path / "in" / "model.bin"
    model.write_bytes(os.urandom(3 * MiB))
    pusher = oras.client.OrasClient(hostname=default.address, insecure=True)
    puller = oras.client.OrasClient(hostname=redirecting.address, insecure=True)
    try:
        pusher.push(
            target=f"{default.address}/{repo}:v1", files=[str(model)],
            disable_path_validation=True, quiet=True,
        )  # fmt: skip
        pulled = puller.pull(
            target=f"{redirecting.address}/{repo}:v1", outdir=str(tmp_path / "out")
        )
    finally:
        pusher.session.close()
        puller.session.close()
    assert [Path(p).name for p in pulled] == ["model.bin"]
    assert (tmp_path / "out" / "model.bin").read_bytes() == model.read_bytes()
