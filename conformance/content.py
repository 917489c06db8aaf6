"""Manifests and blobs the checks push: small, random, and built by hand.

Every fixture is random so that two runs (or two checks) never share content
by accident: a registry that answers from a cache keyed on the wrong thing,
or a check that passes because an earlier run left a blob behind, shows up.
Manifests are built as bytes once and compared byte for byte on the way back,
since the spec requires the exact representation to be stored
(https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests).
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "OCI_CONFIG",
    "OCI_EMPTY",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_MANIFEST",
    "Blob",
    "Manifest",
    "digest_of",
    "docker_manifest",
    "docker_manifest_list",
    "oci_index",
    "oci_manifest",
    "random_blob",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


@dataclass(frozen=True, slots=True)
class Blob:
    data: bytes
    media_type: str = OCI_LAYER
    algorithm: str = "sha256"

    @property
    def digest(self) -> str:
        return digest_of(self.data, self.algorithm)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data)} | extra


@dataclass(frozen=True, slots=True)
class Manifest:
    """A manifest as pushed: its exact bytes, its media type, and the blobs it needs."""

    body: bytes
    media_type: str
    blobs: tuple[Blob, ...] = ()
    children: tuple[Manifest, ...] = field(default=())

    @property
    def digest(self) -> str:
        return digest_of(self.body)

    def descriptor(self, **extra: Any) -> dict[str, Any]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.body)} | extra


def random_blob(size: int = 1024, media_type: str = OCI_LAYER, algorithm: str = "sha256") -> Blob:
    return Blob(os.urandom(size), media_type, algorithm)


def _encode(document: dict[str, Any]) -> bytes:
    # Indented on purpose: a registry that re-serialises the JSON it was given
    # (compacting it) changes the digest, and the byte-equality checks see it.
    return json.dumps(document, indent=2).encode()


def _config(media_type: str) -> Blob:
    nonce = os.urandom(8).hex()
    document = {
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "config": {"Labels": {"conformance.nonce": nonce}},
    }
    return Blob(json.dumps(document).encode(), media_type)


def oci_manifest(
    layers: int = 1,
    *,
    artifact_type: str | None = None,
    subject: Manifest | None = None,
    annotations: dict[str, str] | None = None,
    empty_config: bool = False,
) -> Manifest:
    """An OCI image manifest; ``empty_config`` gives the ``{}`` config artifacts use."""
    # image-spec manifest.md "Guidance for an Empty Descriptor".
    config = Blob(b"{}", OCI_EMPTY) if empty_config else _config(OCI_CONFIG)
    blobs = [random_blob(512 + i) for i in range(layers)]
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob in blobs],
    }
    if artifact_type is not None:
        document["artifactType"] = artifact_type
    if subject is not None:
        document["subject"] = subject.descriptor()
    if annotations:
        document["annotations"] = annotations
    return Manifest(_encode(document), OCI_MANIFEST, (config, *blobs))


def with_external_layer(manifest: Manifest) -> Manifest:
    """``manifest`` (an OCI image) with a non-distributable layer in front, which names
    bytes that live at a URL and are never pushed (image-spec's "urls")."""
    document = json.loads(manifest.body)
    absent = random_blob(4096)
    document["layers"].insert(
        0,
        absent.descriptor()
        | {
            "mediaType": "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            "urls": [f"https://layers.example.com/{absent.digest}"],
        },
    )
    return Manifest(_encode(document), manifest.media_type, manifest.blobs)


def oci_index(children: list[Manifest], annotations: dict[str, str] | None = None) -> Manifest:
    document: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [
            child.descriptor(platform={"architecture": f"arch{i}", "os": "linux"})
            for i, child in enumerate(children)
        ],
    }
    if annotations:
        document["annotations"] = annotations
    return Manifest(_encode(document), OCI_INDEX, (), tuple(children))


def docker_manifest(layers: int = 1) -> Manifest:
    config = _config(DOCKER_CONFIG)
    blobs = [random_blob(300 + i, DOCKER_LAYER) for i in range(layers)]
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [blob.descriptor() for blob in blobs],
    }
    return Manifest(_encode(document), DOCKER_MANIFEST, (config, *blobs))


def docker_manifest_list(children: list[Manifest]) -> Manifest:
    document = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST_LIST,
        "manifests": [
            child.descriptor(platform={"architecture": f"arch{i}", "os": "linux"})
            for i, child in enumerate(children)
        ],
    }
    return Manifest(_encode(document), DOCKER_MANIFEST_LIST, (), tuple(children))
