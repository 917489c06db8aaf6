"""Media types the registry recognises, and the grammar every media type obeys.

The OCI names are from image-spec media-types.md,
https://github.com/opencontainers/image-spec/blob/v1.1.0/media-types.md ;
the Docker names from the Image Manifest V2, Schema 2 document,
https://github.com/distribution/distribution/blob/v2.8.2/docs/spec/manifest-v2-2.md .

Only the manifest types change how the registry behaves (they decide how a
``PUT /v2/<name>/manifests/<reference>`` body is validated); the others are
named so tests and the native API do not spell them out by hand.
"""

from __future__ import annotations

import re

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_FOREIGN_LAYER",
    "DOCKER_LAYER",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "DOCKER_PLUGIN_CONFIG",
    "DOCKER_SCHEMA1_MANIFEST",
    "DOCKER_SCHEMA1_SIGNED_MANIFEST",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_TYPES",
    "MEDIA_TYPE",
    "NATIVE_ARTIFACT",
    "NATIVE_MANIFEST",
    "OCI_ARTIFACT_MANIFEST",
    "OCI_CONFIG",
    "OCI_EMPTY_JSON",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE",
    "OCI_LAYER_NONDISTRIBUTABLE_GZIP",
    "OCI_LAYER_NONDISTRIBUTABLE_ZSTD",
    "OCI_LAYER_ZSTD",
    "OCI_MANIFEST",
    "base_type",
    "is_valid",
]

# -- OCI image-spec v1.1 -------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
# Deprecated by image-spec v1.1 ("SHOULD NOT be pushed"), still found in old images.
OCI_LAYER_NONDISTRIBUTABLE = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDISTRIBUTABLE_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDISTRIBUTABLE_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
# The two-byte blob ``{}``: the config of an artifact that has none.
# https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md#guidance-for-an-empty-descriptor
OCI_EMPTY_JSON = "application/vnd.oci.empty.v1+json"
# The artifact manifest of the v1.1 release candidates, dropped from the final
# spec; early oras releases push it, so it is accepted (its ``blobs`` are layers).
OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"

# -- Docker Image Manifest V2 -----------------------------------------------------

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
DOCKER_PLUGIN_CONFIG = "application/vnd.docker.plugin.v1+json"

# Layers whose bytes a registry need not hold: clients fetch them from the
# descriptor's ``urls`` (Windows base layers are the usual case).
NONDISTRIBUTABLE_LAYERS = frozenset(
    {
        OCI_LAYER_NONDISTRIBUTABLE,
        OCI_LAYER_NONDISTRIBUTABLE_GZIP,
        OCI_LAYER_NONDISTRIBUTABLE_ZSTD,
        DOCKER_FOREIGN_LAYER,
    }
)
# Schema 1 is named only to be refused with a clear message: distribution
# deprecated it, and its signatures cannot survive byte-for-byte storage checks.
DOCKER_SCHEMA1_MANIFEST = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED_MANIFEST = "application/vnd.docker.distribution.manifest.v1+prettyjws"

# -- artifact-store native artifacts (docs/architecture.md, "Native artifacts on OCI")

NATIVE_ARTIFACT = "application/vnd.artifactstore.artifact.v1"
NATIVE_MANIFEST = "application/vnd.artifactstore.manifest.v1+cbor"

# -- sets -------------------------------------------------------------------------

IMAGE_MANIFEST_TYPES: frozenset[str] = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
INDEX_TYPES: frozenset[str] = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
# Everything ``PUT /v2/<name>/manifests/<reference>`` stores as a manifest.
MANIFEST_TYPES: frozenset[str] = IMAGE_MANIFEST_TYPES | INDEX_TYPES | {OCI_ARTIFACT_MANIFEST}

# -- grammar ----------------------------------------------------------------------

# image-spec descriptor.md: "mediaType ... Values MUST comply with RFC 6838,
# including the naming requirements in its section 4.2."
# https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#properties
# RFC 6838 §4.2, https://www.rfc-editor.org/rfc/rfc6838#section-4.2 :
#
#     type-name = restricted-name
#     subtype-name = restricted-name
#     restricted-name = restricted-name-first *126restricted-name-chars
#     restricted-name-first  = ALPHA / DIGIT
#     restricted-name-chars  = ALPHA / DIGIT / "!" / "#" /
#                              "$" / "&" / "-" / "^" / "_"
#     restricted-name-chars =/ "." ; Characters before first dot always
#                                  ; specify a facet name
#     restricted-name-chars =/ "+" ; Characters after last plus always
#                                  ; specify a structured syntax suffix
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MEDIA_TYPE = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")


def is_valid(media_type: object) -> bool:
    """Whether ``media_type`` is a bare RFC 6838 ``type/subtype`` (no parameters)."""
    return isinstance(media_type, str) and MEDIA_TYPE.fullmatch(media_type) is not None


def base_type(content_type: str | None) -> str | None:
    """The media type of a Content-Type header, parameters dropped, lower-cased.

    distribution-spec: "The registry SHOULD ignore parameters on the
    `Content-Type` header"; RFC 9110 §8.3.1 makes type and subtype
    case-insensitive. An absent or blank header gives None.
    https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests
    """
    if content_type is None:
        return None
    value = content_type.split(";", 1)[0].strip().lower()
    return value or None
