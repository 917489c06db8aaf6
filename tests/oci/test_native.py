"""The native manifest: round trips, canonical identity, every rejection, the OCI mapping."""

from __future__ import annotations

import base64
import copy
import dataclasses
import json
import random
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from oci import cbor, mediatype
from oci.digest import Digest
from oci.errors import ManifestInvalid
from oci.manifest import parse_manifest
from oci.native import (
    ANNOTATION_CREATED,
    ANNOTATION_MANIFEST,
    ANNOTATION_TITLE,
    NATIVE_ARTIFACT_TYPE,
    NATIVE_MANIFEST_CBOR,
    ExternalLink,
    NativeFile,
    NativeManifest,
    Retention,
    Tier,
    decode_cbor,
    digest,
    encode_cbor,
    from_json,
    from_oci_manifest,
    to_json,
    to_oci_manifest,
)

SHA_A = Digest.compute(b"a")
SHA_B = Digest.compute(b"bb")
B3_A = Digest.compute(b"a", "blake3")
B3_B = Digest.compute(b"bb", "blake3")
CREATED = datetime(2024, 5, 1, 12, 34, 56, 500000, tzinfo=UTC)


def make(**changes: Any) -> NativeManifest:
    fields: dict[str, Any] = {
        "name": "team/app",
        "version": "1.2.3",
        "files": (
            NativeFile("bin/app", 1, "application/octet-stream", SHA_A, B3_A),
            NativeFile("README.md", 2, "text/markdown", SHA_B, B3_B),
        ),
        "created": CREATED,
        "producer": "ci@build-7",
        "run": "run-42",
        "labels": {"branch": "main", "org.example.team": "core"},
        "links": (ExternalLink("jira", "ART-12", "https://tracker.example/ART-12"),),
        "retention": Retention("release", datetime(2030, 1, 1, tzinfo=UTC)),
        "tier": Tier.WARM,
    }
    fields.update(changes)
    return NativeManifest(**fields)


def wire() -> dict[str, Any]:
    return to_json(make())


# --- hypothesis: round trips and identity ------------------------------------

_component = st.text(
    st.characters(
        blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00", max_codepoint=0x2FFF
    ),
    min_size=1,
    max_size=12,
).filter(lambda c: c not in (".", ".."))
_paths = st.lists(
    st.lists(_component, min_size=1, max_size=3).map("/".join), max_size=6, unique=True
).map(lambda ps: [p for p in ps if not any(q.startswith(p + "/") for q in ps)])
_hex = st.binary(min_size=32, max_size=32).map(bytes.hex)
_slug = st.from_regex(r"[a-z0-9]{1,6}([._-][a-z0-9]{1,6})?", fullmatch=True)
_names = st.lists(
    st.from_regex(r"[a-z0-9]{1,6}([._]|__|-+)?[a-z0-9]{1,6}", fullmatch=True),
    min_size=1,
    max_size=3,
).map("/".join)
_tags = st.from_regex(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,15}", fullmatch=True)
_label_keys = st.text(
    st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=20
)
_line = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=20)
_times = st.datetimes(timezones=st.just(UTC))


@st.composite
def manifests(draw: st.DrawFn) -> NativeManifest:
    files = tuple(
        NativeFile(
            path,
            draw(st.integers(0, 2**63 - 1)),
            draw(st.sampled_from(["text/plain", "application/vnd.oci.image.layer.v1.tar"])),
            Digest("sha256", draw(_hex)),
            Digest("blake3", draw(_hex)),
        )
        for path in draw(_paths)
    )
    links = draw(
        st.lists(
            st.builds(ExternalLink, _slug, _line, st.none() | st.just("https://t.example/x?y=1")),
            max_size=3,
            unique_by=lambda x: (x.system, x.id),
        )
    )
    return NativeManifest(
        name=draw(_names),
        version=draw(_tags),
        files=files,
        created=draw(_times),
        producer=draw(st.none() | _line),
        run=draw(st.none() | _line),
        labels=draw(st.dictionaries(_label_keys, _line, max_size=4)),
        links=tuple(links),
        retention=draw(st.none() | st.builds(Retention, _slug, st.none() | _times)),
        tier=draw(st.none() | st.sampled_from(Tier)),
    )


@given(manifests())
def test_cbor_round_trip_is_byte_identical(m: NativeManifest) -> None:
    data = encode_cbor(m)
    back = decode_cbor(data)
    assert back == m
    assert encode_cbor(back) == data


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(manifests())
def test_json_round_trip_through_text_is_lossless(m: NativeManifest) -> None:
    text = json.dumps(to_json(m))
    back = from_json(json.loads(text))
    assert back == m
    assert encode_cbor(back) == encode_cbor(m)


@given(manifests(), st.randoms(use_true_random=False))
def test_same_content_in_any_order_has_one_digest(m: NativeManifest, rnd: random.Random) -> None:
    files, links, labels = list(m.files), list(m.links), list(m.labels.items())
    rnd.shuffle(files)
    rnd.shuffle(links)
    rnd.shuffle(labels)
    again = dataclasses.replace(m, files=tuple(files), links=tuple(links), labels=dict(labels))
    assert digest(again) == digest(m)
    shuffled = to_json(m)
    rnd.shuffle(shuffled["files"])
    assert digest(from_json(shuffled)) == digest(m)


def test_digest_is_sha256_of_the_cbor_and_changes_with_content() -> None:
    m = make()
    assert digest(m) == Digest.compute(encode_cbor(m))
    assert digest(make(labels={"branch": "dev"})) != digest(m)


def test_times_are_utc_rfc3339_text_in_the_wire_form() -> None:
    plus_two = timezone(timedelta(hours=2))
    m = make(created=datetime(2024, 5, 1, 14, 34, 56, tzinfo=plus_two))
    assert to_json(m)["created"] == "2024-05-01T12:34:56Z"
    assert to_json(make())["created"] == "2024-05-01T12:34:56.5Z"
    assert m.created is not None
    assert m.created.tzinfo == UTC


def test_absent_optionals_are_omitted() -> None:
    m = make(producer=None, run=None, labels={}, links=(), retention=None, tier=None)
    assert set(to_json(m)) == {"v", "name", "version", "files", "created"}
    assert (
        "blake3"
        not in to_json(make(files=(NativeFile("a", 0, "text/plain", SHA_A),), synthesised=True))[
            "files"
        ][0]
    )


def _doc_block(markdown: str, name: str) -> str:
    match = re.search(rf"<!-- example:{name} -->\n```[a-z]*\n(.*?)```", markdown, re.S)
    assert match is not None, name
    return match.group(1)


def test_the_documented_example_is_what_the_code_writes() -> None:
    markdown = (Path(__file__).parents[2] / "docs" / "native-manifest.md").read_text()
    m = from_json(json.loads(_doc_block(markdown, "json")))
    data = bytes.fromhex("".join(_doc_block(markdown, "cbor").split()))
    assert encode_cbor(m) == data
    assert decode_cbor(data) == m
    assert f"`{digest(m)}`, {len(data)} bytes" in markdown
    diagnostic = json.loads(_doc_block(markdown, "diagnostic"))
    assert diagnostic == to_json(m)
    assert list(diagnostic) == list(cbor.decode_canonical(data))


# --- rejections: each names its field ----------------------------------------


def _set(path: str, value: Any) -> dict[str, Any]:
    """The example wire form with one field replaced (or removed, for _REMOVE)."""
    doc = wire()
    *parents, last = path.split(".")
    target: Any = doc
    for part in parents:
        target = target[int(part)] if isinstance(target, list) else target[part]
    key: Any = int(last) if isinstance(target, list) else last
    if value is _REMOVE:
        del target[key]
    else:
        target[key] = value
    return doc


_REMOVE = object()

REJECTED = [
    # (field replaced, new value, text the error must contain)
    ("surprise", 1, "surprise is not a field"),
    ("files.0.surprise", 1, "files[0].surprise is not a field"),
    ("links.0.surprise", 1, "links[0].surprise is not a field"),
    ("retention.surprise", 1, "retention.surprise is not a field"),
    ("v", _REMOVE, "v is required"),
    ("v", 2, "v is not a supported schema version"),
    ("v", "1", "v is not a supported schema version"),
    ("v", True, "v is not a supported schema version"),
    ("name", _REMOVE, "name is required"),
    ("name", "Team/App", "name is not a repository name"),
    ("version", "1.0+build.5", "version is not a tag"),
    ("files", _REMOVE, "files is required"),
    ("files", {"a": 1}, "files must be a list"),
    ("files.0", "bin/app", "files[0] must be a map"),
    ("files.0.path", _REMOVE, "files[0].path is required"),
    ("files.0.path", "/etc/passwd", "files[0].path is absolute"),
    ("files.0.path", "a/../../b", "files[0].path has a '..' component"),
    ("files.0.path", "..", "files[0].path has a '..' component"),
    ("files.0.path", "./a", "files[0].path has a '.' component"),
    ("files.0.path", "a//b", "files[0].path has an empty component"),
    ("files.0.path", "dir/", "files[0].path has an empty component"),
    ("files.0.path", "", "files[0].path must not be empty"),
    ("files.0.path", "a\\b", "files[0].path contains a backslash"),
    ("files.0.path", "a\x00b", "files[0].path contains NUL"),
    ("files.0.path", "a\nb", "files[0].path contains a control character"),
    ("files.0.path", "x" * 256, "files[0].path has a component over 255 bytes"),
    ("files.0.path", "/".join(["x" * 200] * 21), "files[0].path is longer than 4096 bytes"),
    ("files.0.path", 7, "files[0].path must be a string"),
    ("files.0.path", "a\ud800", "files[0].path is not valid Unicode text"),
    ("files.0.path", "bin/app", "path is a duplicate: 'bin/app'"),
    ("files.0.path", "bin/app/x", "files[1].path lies under the file 'bin/app'"),
    ("files.0.size", -1, "files[0].size must be an integer"),
    ("files.0.size", 1.0, "files[0].size must be an integer"),
    ("files.0.size", True, "files[0].size must be an integer"),
    ("files.0.size", "1", "files[0].size must be an integer"),
    ("files.0.size", 2**63, "files[0].size must be an integer"),
    ("files.0.type", "octet-stream", "files[0].type is not an RFC 6838 media type"),
    ("files.0.type", "text/plain; charset=utf-8", "files[0].type is not an RFC 6838"),
    ("files.0.sha256", "sha256:abc", "files[0].sha256 is not a valid digest"),
    ("files.0.sha256", "md5:" + "0" * 32, "files[0].sha256 is not a valid digest"),
    ("files.0.sha256", str(B3_A), "files[0].sha256 must be a sha256 digest"),
    ("files.0.sha256", _REMOVE, "files[0].sha256 is required"),
    ("files.0.blake3", str(SHA_A), "files[0].blake3 must be a blake3 digest"),
    ("files.0.blake3", _REMOVE, ".blake3 is required"),
    ("labels", ["a"], "labels must be a map"),
    ("labels", {"a b": "c"}, "labels has a key with spaces or non-ASCII"),
    ("labels", {"a": 1}, "labels['a'] must be a string"),
    ("labels", {"a": "b\x00c"}, "labels['a'] contains NUL"),
    ("labels", {1: "b"}, "labels must be a string"),
    ("links", {"jira": "x"}, "links must be a list"),
    ("links.0.system", "Jira", "links[0].system must match"),
    ("links.0.id", "", "links[0].id must not be empty"),
    ("links.0.id", _REMOVE, "links[0].id is required"),
    ("links.0.url", "ftp://tracker.example/1", "links[0].url must be an absolute http(s) URL"),
    ("links.0.url", "ART-12", "links[0].url must be an absolute http(s) URL"),
    ("created", _REMOVE, "created is required"),
    ("created", "2024-05-01T12:34:56+00:00", "created is not a UTC RFC 3339 time"),
    ("created", "2024-05-01 12:34:56Z", "created is not a UTC RFC 3339 time"),
    ("created", "2024-05-01T12:34:56.50Z", "created is not a UTC RFC 3339 time"),
    ("created", "2024-05-01t12:34:56z", "created is not a UTC RFC 3339 time"),
    ("created", "2024-02-30T00:00:00Z", "created is not a valid calendar time"),
    ("created", 1714566896, "created must be a string"),
    ("retention.class", _REMOVE, "retention.class is required"),
    ("retention.class", "Forever!", "retention.class must match"),
    ("retention.until", "2030-01-01", "retention.until is not a UTC RFC 3339 time"),
    ("tier", "lukewarm", "tier must be hot, warm, cold or archive"),
    ("producer", "x" * 257, "producer is longer than 256 bytes"),
    ("run", "a\tb", "run contains a control character"),
    ("synth", "yes", "synth must be a boolean"),
]


@pytest.mark.parametrize(("path", "value", "message"), REJECTED)
def test_every_violation_is_rejected_naming_its_field(path: str, value: Any, message: str) -> None:
    doc = _set(path, value)
    with pytest.raises(ManifestInvalid, match=re.escape(message)):
        from_json(doc)
    if "\ud800" not in str(value):  # CBOR cannot even carry a lone surrogate
        with pytest.raises(ManifestInvalid, match=re.escape(message)):
            decode_cbor(cbor.encode(doc))


def test_duplicate_links_are_rejected() -> None:
    doc = wire()
    doc["links"].append({"system": "jira", "id": "ART-12"})
    with pytest.raises(ManifestInvalid, match=r"links has a duplicate \(system, id\)"):
        from_json(doc)


def test_not_a_map_is_rejected() -> None:
    with pytest.raises(ManifestInvalid, match="manifest must be a map"):
        decode_cbor(cbor.encode([1, 2]))


def test_constructor_checks_types_and_timezones() -> None:
    with pytest.raises(ManifestInvalid, match="created must be timezone-aware"):
        make(created=datetime(2024, 1, 1))
    with pytest.raises(ManifestInvalid, match=r"files\[0\] must be a NativeFile"):
        make(files=({"path": "a"},))
    with pytest.raises(ManifestInvalid, match=r"files\[0\]\.blake3 is required"):
        make(files=(NativeFile("a", 0, "text/plain", SHA_A),))


# --- canonical form: CBOR is strict, JSON is a lenient representation ----------


def test_non_canonical_cbor_is_rejected() -> None:
    data = encode_cbor(make())
    assert data[0] == 0xA0 + len(wire())  # a map header that fits the initial byte
    indefinite = bytes([0xBF]) + data[1:] + bytes([0xFF])  # same map, indefinite length
    with pytest.raises(ManifestInvalid):
        decode_cbor(indefinite)


NON_CANONICAL = [
    # (change to the wire form, field named in the CBOR rejection)
    (lambda d: d["files"].reverse(), "files is not sorted by path"),
    (lambda d: d["links"].insert(0, {"system": "zz", "id": "1"}), "links is not sorted"),
    (lambda d: d.update(labels={}), "labels must be omitted"),
    (lambda d: d.update(links=[]), "links must be omitted"),
    (lambda d: d.update(producer=None), "producer must be omitted"),
    (lambda d: d.update(synth=False), "synth must be true or omitted"),
    (lambda d: d["files"][0].update(blake3=None), "blake3 must be omitted"),
    (lambda d: d["links"][0].update(url=None), "url must be omitted"),
    (lambda d: d["retention"].update(until=None), "until must be omitted"),
]


@pytest.mark.parametrize(("change", "message"), NON_CANONICAL)
def test_cbor_rejects_what_encode_would_not_write_and_json_normalises_it(
    change: Any, message: str
) -> None:
    doc = wire()
    change(doc)
    with pytest.raises(ManifestInvalid, match=re.escape(message)):
        decode_cbor(cbor.encode(doc))
    if message.startswith("blake3"):
        return  # JSON may omit nothing the model requires
    normalised = from_json(doc)
    assert decode_cbor(encode_cbor(normalised)) == normalised


def test_json_null_blake3_means_absent_which_only_a_synthesised_view_allows() -> None:
    doc = wire()
    doc["files"][0]["blake3"] = None
    with pytest.raises(ManifestInvalid, match=r"files\[0\]\.blake3 is required"):
        from_json(doc)
    doc["synth"] = True
    assert from_json(doc).files[0].blake3 is None


# --- the OCI mapping ---------------------------------------------------------


def oci_body(m: NativeManifest) -> bytes:
    config = encode_cbor(m)
    return to_oci_manifest(m, Digest.compute(config), len(config))


def test_to_oci_manifest_parses_and_carries_the_files_as_titled_layers() -> None:
    m = make()
    body = oci_body(m)
    parsed = parse_manifest(body, mediatype.OCI_MANIFEST)
    assert parsed.media_type == mediatype.OCI_MANIFEST
    assert parsed.artifact_type == NATIVE_ARTIFACT_TYPE
    assert parsed.config is not None
    assert parsed.config.media_type == NATIVE_MANIFEST_CBOR
    assert parsed.config.digest == digest(m)
    assert parsed.config.size == len(encode_cbor(m))
    layers = [
        (x.media_type, x.digest, x.size, x.annotations[ANNOTATION_TITLE]) for x in parsed.layers
    ]
    assert layers == [
        ("text/markdown", SHA_B, 2, "README.md"),
        ("application/octet-stream", SHA_A, 1, "bin/app"),
    ]
    assert parsed.annotations[ANNOTATION_CREATED] == "2024-05-01T12:34:56.5Z"
    assert parsed.annotations["org.opencontainers.image.version"] == "1.2.3"
    assert json.loads(body)["schemaVersion"] == 2


def test_to_oci_manifest_is_deterministic_compact_sorted_json() -> None:
    body = oci_body(make())
    assert body == oci_body(make(files=tuple(reversed(make().files))))
    document = json.loads(body)
    assert body == json.dumps(document, sort_keys=True, separators=(",", ":")).encode()


def test_to_oci_manifest_refuses_a_config_that_is_not_this_manifest() -> None:
    m = make()
    size = len(encode_cbor(m))
    with pytest.raises(ManifestInvalid, match="config does not describe"):
        to_oci_manifest(m, Digest.compute(b"other"), size)
    with pytest.raises(ManifestInvalid, match="config does not describe"):
        to_oci_manifest(m, digest(m), size + 1)
    synthesised = make(synthesised=True)
    config = encode_cbor(synthesised)
    with pytest.raises(
        ManifestInvalid, match="synth is true: a synthesised view cannot be published"
    ):
        to_oci_manifest(synthesised, Digest.compute(config), len(config))


def test_a_native_artifact_reads_back_as_itself_wherever_it_was_copied() -> None:
    m = make()
    parsed = parse_manifest(oci_body(m), mediatype.OCI_MANIFEST)
    back = from_oci_manifest(parsed, "elsewhere/copy", "latest")
    assert back == m
    assert encode_cbor(back) == encode_cbor(m)


def _tampered(change: Any) -> bytes:
    document = json.loads(oci_body(make()))
    change(document)
    return json.dumps(document).encode()


TAMPERED = [
    (
        lambda d: d["layers"][0]["annotations"].update({ANNOTATION_TITLE: "x"}),
        "layers do not match",
    ),
    (lambda d: d["layers"].pop(), "layers do not match"),
    (lambda d: d["layers"][1].update(size=5), "layers do not match"),
    (lambda d: d["config"].update(size=d["config"]["size"] + 1), "config is not a descriptor"),
    (lambda d: d.pop("artifactType"), "artifactType must be"),
    (lambda d: d["annotations"].update({ANNOTATION_MANIFEST: "%%%"}), "is not base64"),
    (lambda d: d["annotations"].pop(ANNOTATION_MANIFEST), f"{ANNOTATION_MANIFEST}'] is required"),
]


@pytest.mark.parametrize(("change", "message"), TAMPERED)
def test_a_native_artifact_whose_oci_manifest_disagrees_is_rejected(
    change: Any, message: str
) -> None:
    parsed = parse_manifest(_tampered(change), mediatype.OCI_MANIFEST)
    with pytest.raises(ManifestInvalid, match=re.escape(message)):
        from_oci_manifest(parsed, "team/app", "1.2.3")


def test_an_embedded_manifest_is_decoded_strictly() -> None:
    doc = wire()
    doc["files"].reverse()
    body = cbor.encode(doc)
    document = json.loads(oci_body(make()))
    document["annotations"][ANNOTATION_MANIFEST] = base64.b64encode(body).decode()
    parsed = parse_manifest(json.dumps(document).encode(), mediatype.OCI_MANIFEST)
    with pytest.raises(ManifestInvalid, match="files is not sorted by path"):
        from_oci_manifest(parsed, "team/app", "1.2.3")


# What `oras push registry/team/tool:v1 tool.tar.gz README.md` sends: the
# empty config, one titled layer per file, a created annotation.
ORAS_MANIFEST: dict[str, Any] = {
    "schemaVersion": 2,
    "mediaType": "application/vnd.oci.image.manifest.v1+json",
    "artifactType": "application/vnd.example.tool",
    "config": {
        "mediaType": "application/vnd.oci.empty.v1+json",
        "digest": str(Digest.compute(b"{}")),
        "size": 2,
        "data": "e30=",
    },
    "layers": [
        {
            "mediaType": "application/vnd.oci.image.layer.v1.tar",
            "digest": str(SHA_B),
            "size": 2,
            "annotations": {ANNOTATION_TITLE: "tool.tar.gz"},
        },
        {
            "mediaType": "text/markdown",
            "digest": str(SHA_A),
            "size": 1,
            "annotations": {ANNOTATION_TITLE: "README.md"},
        },
        {"mediaType": "application/octet-stream", "digest": str(SHA_A), "size": 1},
    ],
    "annotations": {ANNOTATION_CREATED: "2024-05-01T14:34:56+02:00", "com.example.ci": "yes"},
}


def test_an_oras_artifact_gets_a_synthesised_view() -> None:
    parsed = parse_manifest(json.dumps(ORAS_MANIFEST).encode(), mediatype.OCI_MANIFEST)
    view = from_oci_manifest(parsed, "team/tool", "v1")
    assert view.synthesised
    assert (view.name, view.version) == ("team/tool", "v1")
    assert [(f.path, f.size, f.media_type, f.sha256, f.blake3) for f in view.files] == [
        ("README.md", 1, "text/markdown", SHA_A, None),
        ("tool.tar.gz", 2, "application/vnd.oci.image.layer.v1.tar", SHA_B, None),
    ]
    assert view.created == datetime(2024, 5, 1, 12, 34, 56, tzinfo=UTC)
    assert dict(view.labels) == {"com.example.ci": "yes"}
    assert to_json(view)["synth"] is True
    assert decode_cbor(encode_cbor(view)) == view


def test_the_blob_store_fills_in_blake3_of_a_synthesised_view() -> None:
    parsed = parse_manifest(json.dumps(ORAS_MANIFEST).encode(), mediatype.OCI_MANIFEST)
    known = {SHA_A: B3_A, SHA_B: B3_B}
    view = from_oci_manifest(parsed, "team/tool", "v1", blake3_of=known.get)
    assert [f.blake3 for f in view.files] == [B3_A, B3_B]
    with pytest.raises(ManifestInvalid, match=r"layers\[0\]\.blake3 must be a blake3 digest"):
        from_oci_manifest(parsed, "team/tool", "v1", blake3_of=lambda d: d)


def test_a_synthesised_view_still_validates_titles() -> None:
    document = copy.deepcopy(ORAS_MANIFEST)
    document["layers"][1]["annotations"][ANNOTATION_TITLE] = "../escape"
    parsed = parse_manifest(json.dumps(document).encode(), mediatype.OCI_MANIFEST)
    with pytest.raises(ManifestInvalid, match=r"layers\[1\]\.path has a '\.\.' component"):
        from_oci_manifest(parsed, "team/tool", "v1")


def test_an_index_has_no_native_view() -> None:
    index = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_INDEX,
        "manifests": [
            {"mediaType": mediatype.OCI_MANIFEST, "digest": str(SHA_A), "size": 1},
        ],
    }
    parsed = parse_manifest(json.dumps(index).encode(), mediatype.OCI_INDEX)
    with pytest.raises(ManifestInvalid, match="is an index"):
        from_oci_manifest(parsed, "team/tool", "v1")
