"""Media type constants and the RFC 6838 grammar."""

from __future__ import annotations

import pytest

from oci import mediatype


def test_constants_are_the_spec_strings() -> None:
    # Spelled out once more: a typo in a constant would silently break
    # content negotiation with every client.
    assert mediatype.OCI_MANIFEST == "application/vnd.oci.image.manifest.v1+json"
    assert mediatype.OCI_INDEX == "application/vnd.oci.image.index.v1+json"
    assert mediatype.OCI_CONFIG == "application/vnd.oci.image.config.v1+json"
    assert mediatype.OCI_EMPTY_JSON == "application/vnd.oci.empty.v1+json"
    assert mediatype.OCI_LAYER_GZIP == "application/vnd.oci.image.layer.v1.tar+gzip"
    assert mediatype.OCI_LAYER_ZSTD == "application/vnd.oci.image.layer.v1.tar+zstd"
    assert mediatype.DOCKER_MANIFEST == "application/vnd.docker.distribution.manifest.v2+json"
    assert (
        mediatype.DOCKER_MANIFEST_LIST
        == "application/vnd.docker.distribution.manifest.list.v2+json"
    )
    assert mediatype.DOCKER_CONFIG == "application/vnd.docker.container.image.v1+json"
    assert mediatype.DOCKER_LAYER == "application/vnd.docker.image.rootfs.diff.tar.gzip"


def test_manifest_type_sets() -> None:
    assert {
        mediatype.OCI_MANIFEST,
        mediatype.OCI_INDEX,
        mediatype.DOCKER_MANIFEST,
        mediatype.DOCKER_MANIFEST_LIST,
        mediatype.OCI_ARTIFACT_MANIFEST,
    } == mediatype.MANIFEST_TYPES
    assert {mediatype.OCI_INDEX, mediatype.DOCKER_MANIFEST_LIST} == mediatype.INDEX_TYPES
    assert mediatype.IMAGE_MANIFEST_TYPES.isdisjoint(mediatype.INDEX_TYPES)
    # Blob types are never manifests.
    assert mediatype.OCI_CONFIG not in mediatype.MANIFEST_TYPES
    assert mediatype.OCI_EMPTY_JSON not in mediatype.MANIFEST_TYPES


def test_every_constant_is_a_valid_media_type() -> None:
    for name in mediatype.__all__:
        value = getattr(mediatype, name)
        if isinstance(value, str):
            assert mediatype.is_valid(value), name


@pytest.mark.parametrize(
    "value",
    [
        "",
        "application",
        "application/",
        "/json",
        "application/json; charset=utf-8",
        "application/json ",
        "application/js on",
        "-app/json",
        "application/" + "a" * 128,
        "application/json/extra",
        None,
        42,
    ],
)
def test_invalid_media_types(value: object) -> None:
    assert not mediatype.is_valid(value)


def test_longest_valid_media_type() -> None:
    assert mediatype.is_valid("a" * 127 + "/" + "b" * 127)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("  ", None),
        ("application/json", "application/json"),
        ("Application/JSON; charset=utf-8", "application/json"),
        (" application/vnd.oci.image.manifest.v1+json ;x=y", mediatype.OCI_MANIFEST),
    ],
)
def test_base_type(header: str | None, expected: str | None) -> None:
    assert mediatype.base_type(header) == expected
