"""oras-py (the ORAS Python client) pushes and pulls artifacts; an artifact
attached to an image through ``subject`` is found by the referrers API.

oras-py 0.2 has no ``artifactType`` option, so ``ArtifactClient`` adds the
field to the manifest just before oras-py uploads it — the rest (blob upload,
monolithic and chunked, manifest PUT, pull) is oras-py's own code.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import oras.client
import oras.oci
import pytest

from tests.clients._layout import OCI_INDEX, OCI_MANIFEST, sha256
from tests.clients.conftest import Registry

pytestmark = pytest.mark.clients

EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
MODEL_TYPE = "application/vnd.example.model.v1"
SBOM_TYPE = "application/vnd.example.sbom.v1+json"


class ArtifactClient(oras.client.OrasClient):  # type: ignore[misc]  # oras ships no types
    """An oras-py client whose next pushed manifest carries ``artifact_type``."""

    artifact_type: str | None = None

    def upload_manifest(self, manifest: dict[str, Any], container: Any) -> Any:
        if self.artifact_type is not None:
            manifest["artifactType"] = self.artifact_type
        return super().upload_manifest(manifest, container)


@pytest.fixture
def client(registry: Registry) -> Iterator[ArtifactClient]:
    client = ArtifactClient(hostname=registry.address, insecure=True)
    yield client
    client.session.close()


@pytest.fixture
def empty_config(tmp_path: Path) -> str:
    """oras-py's ``path:mediaType`` form for the OCI empty descriptor as config."""
    path = tmp_path / "empty.json"
    path.write_bytes(b"{}")
    return f"{path}:{EMPTY_CONFIG}"


def _files(root: Path) -> dict[str, bytes]:
    contents = {
        "model.bin": os.urandom(3 << 20),
        "README.md": b"# a model\n\nweights and card\n",
        "card.json": json.dumps({"name": "m", "version": 3}).encode(),
    }
    root.mkdir()
    for name, data in contents.items():
        (root / name).write_bytes(data)
    return contents


@pytest.mark.parametrize("chunked", [False, True], ids=["monolithic", "chunked"])
def test_push_pull_files_byte_identical(
    client: ArtifactClient,
    empty_config: str,
    registry: Registry,
    repo: str,
    http: httpx.Client,
    tmp_path: Path,
    chunked: bool,
) -> None:
    contents = _files(tmp_path / "in")
    client.artifact_type = MODEL_TYPE
    annotations = {"org.opencontainers.image.description": "client test", "example.run": "42"}
    response = client.push(
        target=f"{registry.address}/{repo}:v1",
        files=[str(tmp_path / "in" / name) for name in contents],
        manifest_config=empty_config,
        manifest_annotations=annotations,
        disable_path_validation=True,
        do_chunked=chunked,
        chunk_size=1 << 20,
        quiet=True,
    )
    assert response.status_code == 201

    pulled = client.pull(target=f"{registry.address}/{repo}:v1", outdir=str(tmp_path / "out"))
    assert sorted(Path(p).name for p in pulled) == sorted(contents)
    for name, data in contents.items():
        assert (tmp_path / "out" / name).read_bytes() == data

    got = http.get(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert got.status_code == 200
    assert got.headers["docker-content-digest"] == sha256(got.content)
    manifest = got.json()
    assert manifest["artifactType"] == MODEL_TYPE
    assert manifest["config"]["mediaType"] == EMPTY_CONFIG
    assert manifest["annotations"] == annotations
    titles = [
        layer["annotations"]["org.opencontainers.image.title"] for layer in manifest["layers"]
    ]
    assert titles == list(contents)


def test_referrer_found_through_referrers_api(
    client: ArtifactClient,
    empty_config: str,
    registry: Registry,
    repo: str,
    http: httpx.Client,
    tmp_path: Path,
) -> None:
    contents = _files(tmp_path / "in")
    client.artifact_type = MODEL_TYPE
    client.push(
        target=f"{registry.address}/{repo}:v1",
        files=[str(tmp_path / "in" / "model.bin")],
        manifest_config=empty_config,
        disable_path_validation=True,
        quiet=True,
    )
    head = http.head(f"/v2/{repo}/manifests/v1", headers={"Accept": OCI_MANIFEST})
    assert head.status_code == 200
    subject_digest = head.headers["docker-content-digest"]
    subject = oras.oci.Subject(OCI_MANIFEST, subject_digest, int(head.headers["content-length"]))

    sbom = tmp_path / "sbom.json"
    sbom.write_bytes(json.dumps({"files": sorted(contents)}).encode())
    client.artifact_type = SBOM_TYPE
    pushed = client.push(
        target=f"{registry.address}/{repo}:sbom",
        files=[f"{sbom}:{SBOM_TYPE}"],
        manifest_config=empty_config,
        manifest_annotations={"example.kind": "sbom"},
        subject=subject,
        disable_path_validation=True,
        quiet=True,
    )
    assert pushed.status_code == 201
    referrer_digest = pushed.headers["docker-content-digest"]

    # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#listing-referrers
    listing = http.get(f"/v2/{repo}/referrers/{subject_digest}")
    assert listing.status_code == 200
    assert listing.headers["content-type"].split(";")[0] == OCI_INDEX
    index = listing.json()
    assert index["mediaType"] == OCI_INDEX
    found = [d for d in index["manifests"] if d["digest"] == referrer_digest]
    assert len(found) == 1
    assert found[0]["artifactType"] == SBOM_TYPE
    assert found[0]["annotations"] == {"example.kind": "sbom"}

    filtered = http.get(
        f"/v2/{repo}/referrers/{subject_digest}", params={"artifactType": MODEL_TYPE}
    )
    assert filtered.status_code == 200
    assert filtered.headers.get("oci-filters-applied") == "artifactType"
    assert filtered.json()["manifests"] == []

    out = tmp_path / "out"
    client.pull(target=f"{registry.address}/{repo}@{referrer_digest}", outdir=str(out))
    assert (out / "sbom.json").read_bytes() == sbom.read_bytes()
