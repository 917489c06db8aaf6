"""Real blobs and manifests for the metadata tests, built the way a client would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from oci.digest import Digest
from oci.manifest import Manifest, parse_manifest
from storage.base import BlobInfo

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def blob(data: bytes) -> BlobInfo:
    return BlobInfo(
        sha256=Digest.compute(data), blake3=Digest.compute(data, "blake3"), size=len(data)
    )


def descriptor(media_type: str, digest: Digest, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size}


@dataclass(frozen=True)
class Pushed:
    """A manifest as put_manifest takes it."""

    digest: Digest
    manifest: Manifest
    body: bytes
    media_type: str


def _pushed(document: dict[str, Any], media_type: str) -> Pushed:
    body = json.dumps(document, sort_keys=True).encode()
    return Pushed(Digest.compute(body), parse_manifest(body, media_type), body, media_type)


def image(
    config: BlobInfo,
    layers: list[BlobInfo],
    *,
    layer_digest: str = "sha256",
    subject: Pushed | None = None,
    artifact_type: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Pushed:
    """An OCI image manifest; ``layer_digest`` picks how layers are named (sha256 or blake3)."""
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": descriptor(OCI_CONFIG, config.sha256, config.size),
        "layers": [
            descriptor(OCI_LAYER, getattr(layer, layer_digest), layer.size) for layer in layers
        ],
    }
    if subject is not None:
        document["subject"] = descriptor(subject.media_type, subject.digest, len(subject.body))
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if annotations:
        document["annotations"] = annotations
    return _pushed(document, OCI_MANIFEST)


def index(children: list[Pushed]) -> Pushed:
    document = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            descriptor(child.media_type, child.digest, len(child.body)) for child in children
        ],
    }
    return _pushed(document, OCI_INDEX)
