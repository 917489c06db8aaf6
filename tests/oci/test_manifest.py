"""Manifest parsing: media type resolution, per-schema validation, descriptors."""

from __future__ import annotations

import base64
import contextlib
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from oci import mediatype
from oci.digest import Digest
from oci.errors import ErrorCode, ManifestInvalid
from oci.manifest import Descriptor, Manifest, parse_manifest

CONFIG_BYTES = b'{"architecture":"amd64","os":"linux"}'
CONFIG = Digest.compute(CONFIG_BYTES)
LAYER = Digest.compute(b"layer")
LAYER2 = Digest.compute(b"layer2", "sha512")
SUBJECT = Digest.compute(b"subject")
EMPTY = Digest.compute(b"{}")


def desc(media_type: str, digest: Digest, size: int, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size, **extra}


def image(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "config": desc(mediatype.OCI_CONFIG, CONFIG, len(CONFIG_BYTES)),
        "layers": [
            desc(mediatype.OCI_LAYER_GZIP, LAYER, 5),
            desc(mediatype.OCI_LAYER_ZSTD, LAYER2, 6, annotations={"k": "v"}),
        ],
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def index(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_INDEX,
        "manifests": [
            desc(
                mediatype.OCI_MANIFEST,
                LAYER,
                100,
                platform={"architecture": "arm64", "os": "linux", "variant": "v8"},
            ),
            desc(mediatype.OCI_INDEX, LAYER2, 200),
        ],
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not None}


def body(doc: Any) -> bytes:
    return json.dumps(doc).encode()


def invalid(doc_or_bytes: Any, content_type: str | None = None) -> ManifestInvalid:
    raw = doc_or_bytes if isinstance(doc_or_bytes, bytes) else body(doc_or_bytes)
    with pytest.raises(ManifestInvalid) as info:
        parse_manifest(raw, content_type)
    assert info.value.code is ErrorCode.MANIFEST_INVALID
    assert info.value.status == 400
    return info.value


# -- valid manifests ------------------------------------------------------------


def test_oci_image_manifest() -> None:
    m = parse_manifest(body(image(annotations={"a": "b"})), mediatype.OCI_MANIFEST)
    assert m.media_type == mediatype.OCI_MANIFEST
    assert m.config == Descriptor(mediatype.OCI_CONFIG, CONFIG, len(CONFIG_BYTES))
    assert [d.digest for d in m.layers] == [LAYER, LAYER2]
    assert m.layers[1].annotations == {"k": "v"}
    assert m.manifests == ()
    assert m.subject is None
    assert dict(m.annotations) == {"a": "b"}
    # image-spec: without artifactType, the config's mediaType is the artifact type.
    assert m.artifact_type == mediatype.OCI_CONFIG
    assert m.references() == (m.config, *m.layers)


def test_artifact_with_subject_and_artifact_type() -> None:
    doc = image(
        config=desc(mediatype.OCI_EMPTY_JSON, EMPTY, 2, data="e30="),
        layers=[],
        artifactType="application/vnd.example.sbom.v1",
        subject=desc(mediatype.OCI_MANIFEST, SUBJECT, 1234),
    )
    m = parse_manifest(body(doc), mediatype.OCI_MANIFEST)
    assert m.artifact_type == "application/vnd.example.sbom.v1"
    assert m.subject == Descriptor(mediatype.OCI_MANIFEST, SUBJECT, 1234)
    # The subject may not exist yet, so it is not among what must be present.
    assert SUBJECT not in [d.digest for d in m.references()]
    assert [d.digest for d in m.references()] == [EMPTY]


def test_empty_artifact_type_falls_back_to_config() -> None:
    m = parse_manifest(body(image(artifactType="")), None)
    assert m.artifact_type == mediatype.OCI_CONFIG


def test_oci_index() -> None:
    m = parse_manifest(body(index()), mediatype.OCI_INDEX)
    assert m.media_type == mediatype.OCI_INDEX
    assert m.config is None
    assert m.layers == ()
    assert [d.digest for d in m.manifests] == [LAYER, LAYER2]
    assert m.manifests[0].platform == {"architecture": "arm64", "os": "linux", "variant": "v8"}
    assert m.manifests[1].platform is None
    assert m.artifact_type is None  # an index has no config to fall back on
    assert m.references() == m.manifests


def test_index_artifact_type_and_subject() -> None:
    doc = index(
        artifactType="application/vnd.example+type",
        subject=desc(mediatype.OCI_MANIFEST, SUBJECT, 9),
    )
    m = parse_manifest(body(doc), mediatype.OCI_INDEX)
    assert m.artifact_type == "application/vnd.example+type"
    assert m.subject is not None
    assert m.subject.digest == SUBJECT


def test_docker_schema2_manifest() -> None:
    doc = image(
        mediaType=mediatype.DOCKER_MANIFEST,
        config=desc(mediatype.DOCKER_CONFIG, CONFIG, len(CONFIG_BYTES)),
        layers=[
            desc(mediatype.DOCKER_LAYER, LAYER, 5),
            desc(mediatype.DOCKER_FOREIGN_LAYER, LAYER2, 6, urls=["https://example.com/l"]),
        ],
    )
    m = parse_manifest(body(doc), mediatype.DOCKER_MANIFEST)
    assert m.media_type == mediatype.DOCKER_MANIFEST
    assert m.layers[1].urls == ("https://example.com/l",)
    assert m.artifact_type == mediatype.DOCKER_CONFIG


def test_docker_manifest_list() -> None:
    doc = index(mediaType=mediatype.DOCKER_MANIFEST_LIST)
    doc["manifests"][1]["mediaType"] = mediatype.DOCKER_MANIFEST
    m = parse_manifest(body(doc), mediatype.DOCKER_MANIFEST_LIST)
    assert m.media_type == mediatype.DOCKER_MANIFEST_LIST
    assert len(m.manifests) == 2


def test_oci_artifact_manifest_of_the_release_candidates() -> None:
    doc = {
        "mediaType": mediatype.OCI_ARTIFACT_MANIFEST,
        "artifactType": "application/vnd.example.sig",
        "blobs": [desc("application/octet-stream", LAYER, 5)],
        "subject": desc(mediatype.OCI_MANIFEST, SUBJECT, 10),
    }
    m = parse_manifest(body(doc), mediatype.OCI_ARTIFACT_MANIFEST)
    assert m.media_type == mediatype.OCI_ARTIFACT_MANIFEST
    assert m.config is None
    assert [d.digest for d in m.references()] == [LAYER]
    assert m.artifact_type == "application/vnd.example.sig"
    e = invalid({k: v for k, v in doc.items() if k != "artifactType"})
    assert "artifactType" in e.message


def test_unknown_fields_are_ignored() -> None:
    # image-spec: implementations MUST NOT error on unknown properties.
    m = parse_manifest(body(image(futureField={"x": [1, 2]})), None)
    assert m.media_type == mediatype.OCI_MANIFEST


def test_manifest_and_descriptor_are_frozen_and_hashable() -> None:
    m = parse_manifest(body(image()), None)
    assert len({m, parse_manifest(body(image()), None)}) == 1
    assert len(set(m.references())) == 3
    with pytest.raises(AttributeError):
        m.media_type = "x"  # type: ignore[misc]
    with pytest.raises(TypeError):
        m.layers[1].annotations["k"] = "w"  # type: ignore[index]


# -- media type resolution ------------------------------------------------------


def test_content_type_parameters_and_case_are_ignored() -> None:
    m = parse_manifest(body(image()), "Application/VND.oci.image.manifest.v1+json; charset=utf-8")
    assert m.media_type == mediatype.OCI_MANIFEST


def test_body_media_type_and_content_type_must_agree() -> None:
    e = invalid(image(), mediatype.DOCKER_MANIFEST)
    assert mediatype.DOCKER_MANIFEST in e.message
    assert mediatype.OCI_MANIFEST in e.message
    invalid(index(), mediatype.OCI_MANIFEST)
    invalid(image(), "application/json")


def test_content_type_alone_decides() -> None:
    doc = image(mediaType=None)
    assert parse_manifest(body(doc), mediatype.DOCKER_MANIFEST).media_type == (
        mediatype.DOCKER_MANIFEST
    )
    # and validates: an index schema for an image body fails on "manifests".
    e = invalid(doc, mediatype.OCI_INDEX)
    assert "manifests" in e.message


def test_body_alone_decides() -> None:
    assert parse_manifest(body(index()), None).media_type == mediatype.OCI_INDEX
    assert parse_manifest(body(index()), "").media_type == mediatype.OCI_INDEX


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (image(mediaType=None), mediatype.OCI_MANIFEST),
        (index(mediaType=None), mediatype.OCI_INDEX),
    ],
)
def test_shape_decides_when_nothing_is_declared(doc: dict[str, Any], expected: str) -> None:
    m = parse_manifest(body(doc), None)
    assert m.media_type == expected


def test_unrecognised_content_type_with_an_image_shaped_body() -> None:
    # e.g. a client pushing with its own manifest type: parsed as an image
    # manifest, served back under the type it was pushed with.
    helm = "application/vnd.example.custom.manifest.v1+json"
    m = parse_manifest(body(image(mediaType=None)), helm)
    assert m.media_type == helm
    assert m.config is not None
    assert m.config.digest == CONFIG
    assert len(m.references()) == 3
    m = parse_manifest(body(image(mediaType=helm)), helm)
    assert m.media_type == helm


def test_unrecognised_type_without_a_known_shape() -> None:
    e = invalid({"schemaVersion": 2, "hello": "world"}, "application/vnd.example+json")
    assert "application/vnd.example+json" in e.message
    invalid({"schemaVersion": 2}, None)


@pytest.mark.parametrize(
    ("doc", "content_type"),
    [
        ({"schemaVersion": 1, "name": "x", "tag": "y", "fsLayers": []}, None),
        ({"schemaVersion": 1}, mediatype.DOCKER_SCHEMA1_SIGNED_MANIFEST),
        (image(mediaType=None), mediatype.DOCKER_SCHEMA1_MANIFEST),
    ],
)
def test_docker_schema1_is_refused(doc: dict[str, Any], content_type: str | None) -> None:
    assert "schema1" in invalid(doc, content_type).message


# -- whole-document errors ------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"", "not valid JSON"),
        (b"not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid JSON"),
        (b'{"schemaVersion": NaN}', "not valid JSON"),
        (b'{"a": 1, "a": 2}', "duplicate key 'a'"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON"),
        (b"[]", "JSON object"),
        (b'"string"', "JSON object"),
        (b"null", "JSON object"),
    ],
)
def test_bodies_that_are_not_json_objects(raw: bytes, words: str) -> None:
    assert words in invalid(raw).message


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        # RFC 8259 §8.1: a networked JSON text has no BOM; Go's encoding/json rejects one.
        (b"\xef\xbb\xbf" + body(image()), "byte order mark"),
        # RFC 8259 §8.1: UTF-8 only; Python's json.loads would detect UTF-16 and read it.
        (body(image()).decode().encode("utf-16"), "not valid JSON"),
        (body(image()).decode().encode("utf-16-le"), "not valid JSON"),
    ],
)
def test_a_valid_manifest_in_another_encoding_is_refused(raw: bytes, words: str) -> None:
    assert words in invalid(raw).message


@pytest.mark.parametrize("version", [None, 1.0, 2.0, "2", True, 3, [2]])
def test_schema_version_must_be_the_integer_2(version: Any) -> None:
    e = invalid(image(schemaVersion=version))
    assert "schemaVersion" in e.message


def test_media_type_must_be_a_string() -> None:
    assert "mediaType" in invalid(image(mediaType=5)).message


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"config": None}, "config"),
        ({"layers": None}, "layers"),
        ({"layers": {"0": {}}}, "layers"),
        ({"config": "sha256:abc"}, "config"),
        ({"annotations": {"a": 1}}, "annotations"),
        ({"annotations": ["a"]}, "annotations"),
        ({"artifactType": "not a media type"}, "artifactType"),
        ({"subject": {"mediaType": mediatype.OCI_MANIFEST}}, "subject.digest"),
    ],
)
def test_image_manifest_field_errors(overrides: dict[str, Any], field: str) -> None:
    e = invalid(image(**overrides))
    assert e.message.startswith(field) or f"{field} is missing" in e.message
    assert isinstance(e.detail, dict)
    assert e.detail["field"] == field


def test_index_requires_manifests() -> None:
    assert "manifests is missing" in invalid(index(manifests=None)).message


# -- descriptor errors -----------------------------------------------------------

GOOD = desc(mediatype.OCI_LAYER_GZIP, LAYER, 5)


@pytest.mark.parametrize(
    ("change", "field", "shown"),
    [
        ({"mediaType": None}, "mediaType", None),
        ({"mediaType": "application/json; charset=utf-8"}, "mediaType", "charset"),
        ({"mediaType": 7}, "mediaType", "7"),
        ({"digest": None}, "digest", "None"),
        ({"digest": "sha256:../.."}, "digest", "sha256:../.."),
        ({"digest": "sha256:" + "A" * 64}, "digest", "AAAA"),
        ({"digest": "sha256:" + "a" * 63}, "digest", "aaaa"),
        ({"digest": "md5:d41d8cd98f00b204e9800998ecf8427e"}, "digest", "md5"),
        ({"digest": 12}, "digest", "12"),
        ({"size": None}, "size", "None"),
        ({"size": -1}, "size", "-1"),
        ({"size": 5.0}, "size", "5.0"),
        ({"size": True}, "size", "True"),
        ({"size": "5"}, "size", "'5'"),
        ({"size": 2**63}, "size", str(2**63)),
        ({"urls": "https://x"}, "urls", "https://x"),
        ({"urls": [1]}, "urls", "1"),
        ({"annotations": {"k": None}}, "annotations", "None"),
        ({"artifactType": "bad type"}, "artifactType", "bad type"),
        ({"platform": {"os": "linux"}}, "platform", "linux"),
        ({"platform": "linux/amd64"}, "platform", "linux/amd64"),
        ({"data": "!!!"}, "data", "!!!"),
        ({"data": base64.b64encode(b"other").decode()}, "data", "does not match"),
        ({"data": base64.b64encode(b"layer!").decode()}, "data", "size 5"),
        # the bytes and digest agree; the size lies about them
        ({"size": 6, "data": base64.b64encode(b"layer").decode()}, "data", "size 6"),
    ],
)
def test_descriptor_errors_name_the_field_and_value(
    change: dict[str, Any], field: str, shown: str | None
) -> None:
    bad = {k: v for k, v in {**GOOD, **change}.items() if v is not None}
    e = invalid(image(layers=[GOOD, bad]))
    assert e.message.startswith(f"layers[1].{field}")
    assert e.detail["field"] == f"layers[1].{field}"
    if shown is not None:
        assert shown in e.message


def test_descriptor_must_be_an_object() -> None:
    e = invalid(index(manifests=[GOOD, "sha256:abc"]))
    assert e.message.startswith("manifests[1]")


def test_matching_embedded_data_is_accepted() -> None:
    good = desc(mediatype.OCI_LAYER_GZIP, LAYER, 5, data=base64.b64encode(b"layer").decode())
    m = parse_manifest(body(image(layers=[good])), None)
    assert m.layers[0].digest == LAYER


def test_blake3_and_sha512_descriptors() -> None:
    b3 = Digest.compute(b"x", "blake3")
    m = parse_manifest(body(image(layers=[desc(mediatype.OCI_LAYER, b3, 1)])), None)
    assert m.layers[0].digest == b3


# -- properties ------------------------------------------------------------------

media_types = st.from_regex(r"[a-z][a-z0-9.+-]{0,20}/[a-z][a-z0-9.+-]{0,30}", fullmatch=True)
descriptors = st.builds(
    lambda mt, data, alg, ann: desc(mt, Digest.compute(data, alg), len(data), annotations=ann),
    media_types,
    st.binary(max_size=16),
    st.sampled_from(["sha256", "sha512", "blake3"]),
    st.dictionaries(st.text(max_size=8), st.text(max_size=8), max_size=3),
)


@given(descriptors, st.lists(descriptors, max_size=5), st.none() | descriptors)
def test_parse_returns_every_descriptor(
    config: dict[str, Any], layers: list[dict[str, Any]], subject: dict[str, Any] | None
) -> None:
    m = parse_manifest(body(image(config=config, layers=layers, subject=subject)), None)
    expected = [config, *layers]
    assert [(d.media_type, str(d.digest), d.size) for d in m.references()] == [
        (d["mediaType"], d["digest"], d["size"]) for d in expected
    ]
    assert [dict(d.annotations) for d in m.references()] == [d["annotations"] for d in expected]
    assert (m.subject is None) == (subject is None)
    assert m.artifact_type == config["mediaType"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "mediaType",
                    "schemaVersion",
                    "config",
                    "layers",
                    "manifests",
                    "digest",
                    "size",
                    "subject",
                    "artifactType",
                    "annotations",
                    "blobs",
                    "platform",
                    "urls",
                    "data",
                ]
            )
            | st.text(max_size=5),
            children,
            max_size=6,
        )
    ),
    max_leaves=30,
)


@given(json_values, st.none() | st.sampled_from(sorted(mediatype.MANIFEST_TYPES)))
def test_any_json_is_a_manifest_or_manifest_invalid(doc: Any, content_type: str | None) -> None:
    # Nothing but ManifestInvalid may escape: any other exception would be a 500.
    try:
        m = parse_manifest(body(doc), content_type)
    except ManifestInvalid:
        return
    assert isinstance(m, Manifest)


@given(st.binary(max_size=200))
def test_any_bytes_are_a_manifest_or_manifest_invalid(raw: bytes) -> None:
    with contextlib.suppress(ManifestInvalid):
        parse_manifest(raw, None)
