"""Pushing real content through /v2/ the way a client does, for the HTTP tests."""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from typing import Any

import httpx

from oci.digest import Digest
from oci.mediatype import (
    DOCKER_CONFIG,
    DOCKER_LAYER,
    DOCKER_MANIFEST,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_LAYER_GZIP,
    OCI_MANIFEST,
)

__all__ = [
    "Blob",
    "Pushed",
    "descriptor",
    "docker_image",
    "error_code",
    "image",
    "index",
    "push_blob",
    "push_image",
    "push_manifest",
    "random_blob",
]


@dataclass(frozen=True)
class Blob:
    data: bytes

    @property
    def digest(self) -> Digest:
        return Digest.compute(self.data)

    @property
    def size(self) -> int:
        return len(self.data)


@dataclass(frozen=True)
class Pushed:
    digest: Digest
    body: bytes
    media_type: str


def random_blob(size: int = 64) -> Blob:
    return Blob(secrets.token_bytes(size))


def descriptor(media_type: str, digest: Digest, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size, **extra}


def image(
    config: Blob,
    layers: list[Blob],
    *,
    subject: Pushed | None = None,
    artifact_type: str | None = None,
    config_type: str = OCI_CONFIG,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(config_type, config.digest, config.size),
        "layers": [descriptor(OCI_LAYER_GZIP, layer.digest, layer.size) for layer in layers],
    }
    if subject is not None:
        document["subject"] = descriptor(subject.media_type, subject.digest, len(subject.body))
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if annotations:
        document["annotations"] = annotations
    return document


def docker_image(config: Blob, layers: list[Blob]) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": descriptor(DOCKER_CONFIG, config.digest, config.size),
        "layers": [descriptor(DOCKER_LAYER, layer.digest, layer.size) for layer in layers],
    }


def index(children: list[Pushed], media_type: str = OCI_INDEX) -> dict[str, Any]:
    return {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [
            descriptor(
                child.media_type,
                child.digest,
                len(child.body),
                platform={"architecture": "amd64", "os": "linux"},
            )
            for child in children
        ],
    }


async def push_blob(client: httpx.AsyncClient, repo: str, blob: Blob) -> None:
    response = await client.post(
        f"/v2/{repo}/blobs/uploads/", params={"digest": str(blob.digest)}, content=blob.data
    )
    assert response.status_code == 201, response.text


async def push_manifest(
    client: httpx.AsyncClient,
    repo: str,
    reference: str | None,
    document: dict[str, Any],
    media_type: str | None = None,
    params: dict[str, Any] | None = None,
) -> Pushed:
    """PUT ``document`` by ``reference`` (by its own digest when None); expects 201."""
    body = json.dumps(document, separators=(",", ":")).encode()
    media_type = media_type or document["mediaType"]
    digest = Digest.compute(body)
    response = await client.put(
        f"/v2/{repo}/manifests/{reference or digest}",
        content=body,
        headers={"Content-Type": media_type},
        params=params,
    )
    assert response.status_code == 201, response.text
    assert response.headers["Docker-Content-Digest"] == str(digest)
    return Pushed(digest, body, media_type)


async def push_image(
    client: httpx.AsyncClient, repo: str, tag: str | None = None, **kwargs: Any
) -> Pushed:
    """Push a config, one layer and an OCI image manifest; returns the manifest."""
    config, layer = Blob(b"{}"), random_blob()
    await push_blob(client, repo, config)
    await push_blob(client, repo, layer)
    return await push_manifest(client, repo, tag, image(config, [layer], **kwargs))


def error_code(response: httpx.Response) -> str:
    """The spec code of an error response; fails unless the body is the spec's envelope."""
    assert response.headers["content-type"].startswith("application/json"), response.text
    errors = response.json()["errors"]
    assert isinstance(errors, list)
    assert errors
    code = errors[0]["code"]
    assert isinstance(code, str)
    assert isinstance(errors[0]["message"], str)
    return code
