"""The referrers API, its pagination, and cosign's tag-schema fallback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from oci.mediatype import OCI_INDEX, OCI_MANIFEST
from registry.config import ServerSettings, Settings
from tests.http._oci import Blob, Pushed, error_code, image, push_blob, push_image, push_manifest
from tests.http.conftest import Served

REPO = "team/app"
SBOM = "application/vnd.example.sbom+json"
SIG = "application/vnd.example.signature"


async def _refer(served: Served, subject: Pushed, artifact_type: str, note: str = "") -> Pushed:
    empty = Blob(b"{}")
    await push_blob(served.client, REPO, empty)
    document = image(
        empty,
        [empty],
        subject=subject,
        artifact_type=artifact_type,
        config_type="application/vnd.oci.empty.v1+json",
        annotations={"note": note} if note else None,
    )
    return await push_manifest(served.client, REPO, None, document)


async def _index(served: Served, url: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    response = await served.client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"] == OCI_INDEX
    document = response.json()
    assert document["schemaVersion"] == 2
    assert document["mediaType"] == OCI_INDEX
    manifests: list[dict[str, Any]] = document["manifests"]
    return manifests, dict(response.headers)


@pytest.mark.anyio
async def test_referrers_list_and_filter(served: Served) -> None:
    subject = await push_image(served.client, REPO, "v1")
    sbom = await _refer(served, subject, SBOM, note="sbom")
    sig = await _refer(served, subject, SIG)
    await _refer(served, await push_image(served.client, REPO), SBOM)  # another subject

    found, headers = await _index(served, f"/v2/{REPO}/referrers/{subject.digest}")
    assert "OCI-Filters-Applied" not in headers
    by_digest = {d["digest"]: d for d in found}
    assert set(by_digest) == {str(sbom.digest), str(sig.digest)}
    assert by_digest[str(sbom.digest)] == {
        "mediaType": OCI_MANIFEST,
        "digest": str(sbom.digest),
        "size": len(sbom.body),
        "artifactType": SBOM,
        "annotations": {"note": "sbom"},
    }
    assert by_digest[str(sig.digest)]["artifactType"] == SIG

    found, headers = await _index(
        served, f"/v2/{REPO}/referrers/{subject.digest}?{urlencode({'artifactType': SBOM})}"
    )
    assert headers["oci-filters-applied"] == "artifactType"
    assert [d["digest"] for d in found] == [str(sbom.digest)]


@pytest.mark.anyio
async def test_referrers_of_unknown_and_all_zero_digests(served: Served) -> None:
    await push_image(served.client, REPO, "v1")
    for digest in ("sha256:" + "0" * 64, "sha256:" + "ab" * 32):
        found, _ = await _index(served, f"/v2/{REPO}/referrers/{digest}")
        assert found == []
    found, _ = await _index(served, f"/v2/never/pushed/referrers/sha256:{'0' * 64}")
    assert found == []


@pytest.mark.parametrize("digest", ["sha256:xyz", "sha256:" + "0" * 63, "md5:" + "0" * 32, "v1"])
@pytest.mark.anyio
async def test_referrers_of_an_invalid_digest(served: Served, digest: str) -> None:
    response = await served.client.get(f"/v2/{REPO}/referrers/{digest}")
    assert response.status_code == 400
    assert error_code(response) == "DIGEST_INVALID"


@pytest.mark.anyio
async def test_referrer_deleted_leaves_the_list(served: Served) -> None:
    subject = await push_image(served.client, REPO, "v1")
    sbom = await _refer(served, subject, SBOM)
    assert (await served.client.delete(f"/v2/{REPO}/manifests/{sbom.digest}")).status_code == 202
    found, _ = await _index(served, f"/v2/{REPO}/referrers/{subject.digest}")
    assert found == []


@pytest.mark.anyio
async def test_cosign_tag_schema_fallback(served: Served) -> None:
    """cosign without the referrers API stores signatures under ``sha256-<hex>.sig``."""
    subject = await push_image(served.client, REPO, "v1")
    tag = f"sha256-{subject.digest.hex}.sig"
    payload = Blob(b'{"critical":{"image":{"docker-manifest-digest":"x"}}}')
    await push_blob(served.client, REPO, payload)
    await push_blob(served.client, REPO, Blob(b"{}"))
    signature = await push_manifest(served.client, REPO, tag, image(Blob(b"{}"), [payload]))
    response = await served.client.get(f"/v2/{REPO}/manifests/{tag}")
    assert response.status_code == 200
    assert response.content == signature.body
    tags = (await served.client.get(f"/v2/{REPO}/tags/list")).json()["tags"]
    assert tags == [tag, "v1"]
    for suffix in (".att", ".sbom"):
        await push_manifest(
            served.client, REPO, tag.replace(".sig", suffix), json.loads(signature.body)
        )


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=str(tmp_path / "data"), server=ServerSettings(referrers_page_size=3))


@pytest.mark.anyio
async def test_referrers_paginate_with_link(served: Served) -> None:
    subject = await push_image(served.client, REPO, "v1")
    made = {str((await _refer(served, subject, SBOM, note=str(i))).digest) for i in range(7)}
    made.add(str((await _refer(served, subject, SIG)).digest))

    async def walk(url: str) -> list[list[str]]:
        pages: list[list[str]] = []
        while url:
            found, headers = await _index(served, url)
            pages.append([d["digest"] for d in found])
            link = headers.get("link")
            url = link[1 : link.index(">")] if link else ""
            if link:
                assert link.endswith('rel="next"')
        return pages

    pages = await walk(f"/v2/{REPO}/referrers/{subject.digest}")
    assert [len(p) for p in pages] == [3, 3, 2]
    flat = [d for p in pages for d in p]
    assert flat == sorted(made)

    pages = await walk(f"/v2/{REPO}/referrers/{subject.digest}?n=2")
    assert [len(p) for p in pages] == [2, 2, 2, 2]
    assert [d for p in pages for d in p] == sorted(made)

    # the filter survives into the next page's link
    pages = await walk(f"/v2/{REPO}/referrers/{subject.digest}?{urlencode({'artifactType': SBOM})}")
    assert [len(p) for p in pages] == [3, 3, 1]
    assert len({d for p in pages for d in p}) == 7

    response = await served.client.get(f"/v2/{REPO}/referrers/{subject.digest}?n=-1")
    assert response.status_code == 400
    assert error_code(response) == "PAGINATION_NUMBER_INVALID"
