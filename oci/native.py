"""The native artifact manifest: artifact-store's own account of an artifact.

Theory of operation
-------------------
A native manifest names an artifact (``name`` + ``version``), lists its files
with both digests, and carries the metadata a registry of build outputs needs
(labels, producer, run, external links, retention, tier). Its identity is the
sha256 of its canonical CBOR encoding (ADR-0003), so everything here bends
towards *one logical manifest, one byte string*:

- the model canonicalises on construction: files sorted by path, links by
  (system, id), labels by key, times in UTC — the same content built in any
  order yields the same digest;
- the wire form has no bytes, no floats and no CBOR tags, only text, ints,
  lists, maps and ``true``; times are RFC 3339 text. So JSON is the same
  dict, and the JSON representation is lossless by construction;
- absent optional fields are *omitted*, never null or empty, and
  ``decode_cbor`` rejects anything :func:`encode_cbor` would not have written
  (non-canonical CBOR via ``oci.cbor.decode_canonical``, unsorted files or
  links, empty maps, ``"synth": false``). ``from_json`` is lenient about
  exactly those representation details — a JSON document is not an identity —
  and strict about everything else.

Every model invariant is checked in ``__post_init__``, so a ``NativeManifest``
that exists is valid however it was made. Violations raise
``NativeManifestInvalid`` (a ``ManifestInvalid``) naming the wire field, e.g.
``files[2].path``. The schema, the OCI mapping and the versioning rules are
written up in docs/native-manifest.md, with the translation onto an OCI image
manifest that ``to_oci_manifest`` and ``from_oci_manifest`` implement.
"""

from __future__ import annotations

import base64
import binascii
import enum
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from oci import cbor, mediatype
from oci._native_fields import (
    LABEL_KEY,
    LABEL_VALUE_MAX,
    MISSING,
    SIZE_MAX,
    URL_MAX,
    NativeManifestInvalid,
    check_path,
    digest_field,
    format_time,
    parse_time,
    slug,
    text,
    utc,
    within,
)
from oci.digest import Digest
from oci.errors import NameInvalid, TagInvalid
from oci.manifest import Manifest
from oci.reference import validate_repository, validate_tag

__all__ = [
    "NATIVE_ARTIFACT_TYPE",
    "NATIVE_MANIFEST_CBOR",
    "NATIVE_MANIFEST_JSON",
    "SCHEMA_VERSION",
    "ExternalLink",
    "NativeFile",
    "NativeManifest",
    "NativeManifestInvalid",
    "Retention",
    "Tier",
    "decode_cbor",
    "digest",
    "encode_cbor",
    "check_path",
    "format_time",
    "from_oci_manifest",
    "from_json",
    "to_json",
    "to_oci_manifest",
]

NATIVE_MANIFEST_CBOR = mediatype.NATIVE_MANIFEST
NATIVE_MANIFEST_JSON = "application/vnd.artifactstore.manifest.v1+json"
NATIVE_ARTIFACT_TYPE = mediatype.NATIVE_ARTIFACT
SCHEMA_VERSION = 1
# Manifest annotations: the authoritative copy of the native manifest, and the
# pre-defined keys of image-spec annotations.md that OCI tools already show.
# https://github.com/opencontainers/image-spec/blob/v1.1.0/annotations.md#pre-defined-annotation-keys
ANNOTATION_MANIFEST = "dev.artifactstore.manifest.cbor"
ANNOTATION_PRODUCER = "dev.artifactstore.producer"
ANNOTATION_RUN = "dev.artifactstore.run"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_VERSION = "org.opencontainers.image.version"


class Tier(enum.StrEnum):
    """Where the registry should keep the artifact's blobs; a hint, not a promise."""

    HOT = "hot"
    WARM = "warm"
    COLD = "cold"
    ARCHIVE = "archive"


@dataclass(frozen=True, slots=True)
class NativeFile:
    path: str
    size: int
    media_type: str
    sha256: Digest
    # None only in a synthesised view (see NativeManifest.synthesised).
    blake3: Digest | None = None

    def __post_init__(self) -> None:
        check_path(self.path)
        if type(self.size) is not int or not 0 <= self.size <= SIZE_MAX:
            raise NativeManifestInvalid("size", f"must be an integer in 0..{SIZE_MAX}", self.size)
        # A file's type becomes a layer's mediaType, which image-spec requires
        # to be RFC 6838: https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md#properties
        if not mediatype.is_valid(text("type", self.media_type)):
            raise NativeManifestInvalid("type", "is not an RFC 6838 media type", self.media_type)
        digest_field("sha256", self.sha256, "sha256")
        if self.blake3 is not None:
            digest_field("blake3", self.blake3, "blake3")


@dataclass(frozen=True, slots=True)
class ExternalLink:
    """A pointer to the artifact's counterpart elsewhere: a tracker task, a CI run."""

    system: str
    id: str
    url: str | None = None

    def __post_init__(self) -> None:
        slug("system", self.system)
        text("id", self.id)
        if self.url is not None:
            parts = urlsplit(text("url", self.url, URL_MAX))
            if parts.scheme not in ("http", "https") or not parts.netloc or " " in self.url:
                raise NativeManifestInvalid("url", "must be an absolute http(s) URL", self.url)


@dataclass(frozen=True, slots=True)
class Retention:
    """How long the artifact must be kept: a named class and, optionally, a date."""

    class_: str
    until: datetime | None = None

    def __post_init__(self) -> None:
        slug("class", self.class_)
        if self.until is not None:
            object.__setattr__(self, "until", utc("until", self.until))


@dataclass(frozen=True, slots=True)
class NativeManifest:
    name: str
    version: str
    files: tuple[NativeFile, ...]
    created: datetime | None = None
    producer: str | None = None
    run: str | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    links: tuple[ExternalLink, ...] = ()
    retention: Retention | None = None
    tier: Tier | None = None
    # A view the registry made up from an OCI manifest pushed by another client
    # (from_oci_manifest). Only then may blake3 digests and `created` be absent,
    # and such a view is never published as a native artifact's config.
    synthesised: bool = False

    def __post_init__(self) -> None:
        try:
            validate_repository(self.name)
        except NameInvalid:
            # Name and version are the artifact's repository and tag when pushed:
            # https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pulling-manifests
            raise NativeManifestInvalid(
                "name", "is not a repository name of the distribution spec", self.name
            ) from None
        try:
            validate_tag(self.version)
        except TagInvalid:
            raise NativeManifestInvalid(
                "version", "is not a tag: [a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}", self.version
            ) from None
        if type(self.synthesised) is not bool:
            raise NativeManifestInvalid("synth", "must be a boolean", self.synthesised)
        for i, f in enumerate(self.files):
            if not isinstance(f, NativeFile):
                raise NativeManifestInvalid(f"files[{i}]", "must be a NativeFile", f)
        self._set("files", tuple(sorted(self.files, key=lambda f: f.path)))
        self._check_files()
        if self.created is not None:
            self._set("created", utc("created", self.created))
        elif not self.synthesised:
            raise NativeManifestInvalid("created", "is required")
        if self.producer is not None:
            text("producer", self.producer)
        if self.run is not None:
            text("run", self.run)
        self._check_labels()
        for i, link in enumerate(self.links):
            if not isinstance(link, ExternalLink):
                raise NativeManifestInvalid(f"links[{i}]", "must be an ExternalLink", link)
        if self.retention is not None and not isinstance(self.retention, Retention):
            raise NativeManifestInvalid("retention", "must be a Retention", self.retention)
        links = tuple(sorted(self.links, key=lambda link: (link.system, link.id)))
        for i in range(1, len(links)):
            if (links[i - 1].system, links[i - 1].id) == (links[i].system, links[i].id):
                raise NativeManifestInvalid(
                    "links", "has a duplicate (system, id)", (links[i].system, links[i].id)
                )
        self._set("links", links)
        if self.tier is not None:
            self._set("tier", _tier(self.tier))

    def __hash__(self) -> int:
        # labels is a mapping; the identifying fields are enough for a hash.
        return hash((self.name, self.version, self.files, self.created))

    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _check_files(self) -> None:
        paths = set()
        for i, f in enumerate(self.files):
            if f.path in paths:
                raise NativeManifestInvalid(f"files[{i}].path", "is a duplicate", f.path)
            if f.blake3 is None and not self.synthesised:
                raise NativeManifestInvalid(f"files[{i}].blake3", "is required", f.path)
            paths.add(f.path)
        # "a" and "a/b" cannot both be extracted: "a" would be a file and a directory.
        for i, f in enumerate(self.files):
            parts = f.path.split("/")
            for depth in range(1, len(parts)):
                parent = "/".join(parts[:depth])
                if parent in paths:
                    raise NativeManifestInvalid(
                        f"files[{i}].path", f"lies under the file {parent!r}", f.path
                    )

    def _check_labels(self) -> None:
        if not isinstance(self.labels, Mapping):
            raise NativeManifestInvalid("labels", "must be a mapping", self.labels)
        for key, value in self.labels.items():
            if not LABEL_KEY.fullmatch(text("labels", key)):
                raise NativeManifestInvalid("labels", "has a key with spaces or non-ASCII", key)
            text(f"labels[{key!r}]", value, LABEL_VALUE_MAX, controls=True)
            if "\x00" in value:
                raise NativeManifestInvalid(f"labels[{key!r}]", "contains NUL", value)
        self._set("labels", MappingProxyType(dict(sorted(self.labels.items()))))


def _tier(value: Any) -> Tier:
    try:
        return Tier(value)
    except ValueError:
        raise NativeManifestInvalid("tier", "must be hot, warm, cold or archive", value) from None


# --- the wire form: one dict for CBOR and JSON -------------------------------

_KEYS = {"v", "name", "version", "files", "created", "producer", "run", "labels", "links",
         "retention", "tier", "synth"}  # fmt: skip
_FILE_KEYS = {"path", "size", "type", "sha256", "blake3"}
_LINK_KEYS = {"system", "id", "url"}
_RETENTION_KEYS = {"class", "until"}


def to_json(m: NativeManifest) -> dict[str, Any]:
    """The wire form; also the JSON representation (json.dumps of it is lossless)."""
    out: dict[str, Any] = {"v": SCHEMA_VERSION, "name": m.name, "version": m.version}
    out["files"] = [_file_wire(f) for f in m.files]
    if m.created is not None:
        out["created"] = format_time(m.created)
    for key, value in (("producer", m.producer), ("run", m.run), ("tier", m.tier)):
        if value is not None:
            out[key] = str(value)
    if m.labels:
        out["labels"] = dict(m.labels)
    if m.links:
        out["links"] = [
            {"system": x.system, "id": x.id} | ({} if x.url is None else {"url": x.url})
            for x in m.links
        ]
    if m.retention is not None:
        out["retention"] = {"class": m.retention.class_}
        if m.retention.until is not None:
            out["retention"]["until"] = format_time(m.retention.until)
    if m.synthesised:
        out["synth"] = True
    return out


def _file_wire(f: NativeFile) -> dict[str, Any]:
    out: dict[str, Any] = {"path": f.path, "size": f.size, "type": f.media_type}
    out["sha256"] = str(f.sha256)
    if f.blake3 is not None:
        out["blake3"] = str(f.blake3)
    return out


def encode_cbor(m: NativeManifest) -> bytes:
    """The canonical CBOR (RFC 8949 §4.2.1) bytes: the stored form and the identity."""
    return cbor.encode(to_json(m))


def digest(m: NativeManifest) -> Digest:
    """The artifact's identity: sha256 of the canonical CBOR."""
    return Digest.compute(encode_cbor(m))


def decode_cbor(data: bytes) -> NativeManifest:
    """Decode stored bytes; reject anything encode_cbor would not have produced."""
    return _from_wire(cbor.decode_canonical(data), canonical=True)


def from_json(obj: Any) -> NativeManifest:
    """Accept the JSON representation (a parsed document, not text)."""
    return _from_wire(obj, canonical=False)


def _object(value: Any, keys: set[str], required: set[str]) -> dict[str, Any]:
    """A map with only ``keys`` and all of ``required``; callers add the field prefix."""
    if not isinstance(value, dict):
        raise NativeManifestInvalid("", "must be a map", value)
    for key in value:
        if key not in keys:
            raise NativeManifestInvalid(str(key), "is not a field")
    for key in sorted(required - value.keys()):
        raise NativeManifestInvalid(key, "is required")
    return value


def _optional(obj: dict[str, Any], key: str, canonical: bool, empty: Any = None) -> Any:
    """A present value, or None; canonical form writes neither null nor the empty value."""
    value = obj.get(key)
    if value is None or (empty is not None and value == empty):
        if key in obj and canonical:
            raise NativeManifestInvalid(key, "must be omitted, not written null or empty", value)
        return None
    return value


def _from_wire(obj: Any, *, canonical: bool) -> NativeManifest:
    if not isinstance(obj, dict):
        raise NativeManifestInvalid("manifest", "must be a map", obj)
    version = obj.get("v", MISSING)
    if version is MISSING:
        raise NativeManifestInvalid("v", "is required")
    if type(version) is not int or version != SCHEMA_VERSION:
        raise NativeManifestInvalid(
            "v", f"is not a supported schema version ({SCHEMA_VERSION})", version
        )
    _object(obj, _KEYS, {"v", "name", "version", "files"})
    raw_files = obj["files"]
    if not isinstance(raw_files, list):
        raise NativeManifestInvalid("files", "must be a list", raw_files)
    files = [_file_from_wire(i, raw, canonical) for i, raw in enumerate(raw_files)]
    raw_links = _optional(obj, "links", canonical, []) or []
    if not isinstance(raw_links, list):
        raise NativeManifestInvalid("links", "must be a list", raw_links)
    links = [_link_from_wire(i, raw, canonical) for i, raw in enumerate(raw_links)]
    labels = _optional(obj, "labels", canonical, {}) or {}
    if not isinstance(labels, dict):
        raise NativeManifestInvalid("labels", "must be a map", labels)
    created = _optional(obj, "created", canonical)
    retention = _optional(obj, "retention", canonical)
    tier = _optional(obj, "tier", canonical)
    synth = obj.get("synth", False)
    if canonical and synth is False and "synth" in obj:
        raise NativeManifestInvalid("synth", "must be true or omitted", synth)
    m = NativeManifest(
        name=obj["name"],
        version=obj["version"],
        files=tuple(files),
        created=None if created is None else parse_time("created", created),
        producer=_optional(obj, "producer", canonical),
        run=_optional(obj, "run", canonical),
        labels=labels,
        links=tuple(links),
        retention=None if retention is None else _retention_from_wire(retention, canonical),
        tier=None if tier is None else _tier(tier),
        synthesised=synth,
    )
    # Order is checked last, so that what is wrong with the content is
    # reported before how it was arranged.
    if canonical and list(m.files) != files:
        raise NativeManifestInvalid("files", "is not sorted by path (non-canonical)")
    if canonical and list(m.links) != links:
        raise NativeManifestInvalid("links", "is not sorted by (system, id) (non-canonical)")
    return m


def _file_from_wire(i: int, raw: Any, canonical: bool) -> NativeFile:
    with within(f"files[{i}]"):
        obj = _object(raw, _FILE_KEYS, {"path", "size", "type", "sha256"})
        blake3 = _optional(obj, "blake3", canonical)
        return NativeFile(
            path=obj["path"],
            size=obj["size"],
            media_type=obj["type"],
            sha256=digest_field("sha256", obj["sha256"], "sha256"),
            blake3=None if blake3 is None else digest_field("blake3", blake3, "blake3"),
        )


def _link_from_wire(i: int, raw: Any, canonical: bool) -> ExternalLink:
    with within(f"links[{i}]"):
        obj = _object(raw, _LINK_KEYS, {"system", "id"})
        return ExternalLink(obj["system"], obj["id"], _optional(obj, "url", canonical))


def _retention_from_wire(raw: Any, canonical: bool) -> Retention:
    with within("retention"):
        obj = _object(raw, _RETENTION_KEYS, {"class"})
        until = _optional(obj, "until", canonical)
        return Retention(obj["class"], None if until is None else parse_time("until", until))


# --- the translation onto an OCI image manifest ------------------------------


def to_oci_manifest(native: NativeManifest, config_digest: Digest, config_size: int) -> bytes:
    """The OCI image manifest that publishes ``native``, as the exact bytes to push.

    The config blob is the native manifest's canonical CBOR, so the caller's
    descriptor of the blob it uploaded must match it. The JSON is written with
    sorted keys and compact separators: the same artifact always gives the
    same manifest digest, however often it is pushed.
    """
    if native.synthesised:
        raise NativeManifestInvalid("synth", "is true: a synthesised view cannot be published")
    body = encode_cbor(native)
    expected = Digest.compute(body)
    if config_digest != expected or config_size != len(body):
        raise NativeManifestInvalid(
            "config",
            f"does not describe this manifest's CBOR ({expected}, {len(body)} bytes)",
            f"{config_digest}, {config_size} bytes",
        )
    annotations = {
        ANNOTATION_MANIFEST: base64.b64encode(body).decode("ascii"),
        ANNOTATION_VERSION: native.version,
    }
    if native.created is not None:
        annotations[ANNOTATION_CREATED] = format_time(native.created)
    if native.producer is not None:
        annotations[ANNOTATION_PRODUCER] = native.producer
    if native.run is not None:
        annotations[ANNOTATION_RUN] = native.run
    # https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md#image-manifest-property-descriptions
    # schemaVersion MUST be 2; artifactType is the artifact's own type because
    # the config is not an empty descriptor.
    document = {
        "schemaVersion": 2,
        "mediaType": mediatype.OCI_MANIFEST,
        "artifactType": NATIVE_ARTIFACT_TYPE,
        "config": {"mediaType": NATIVE_MANIFEST_CBOR, "digest": str(expected), "size": len(body)},
        "layers": [
            {
                "mediaType": f.media_type,
                "digest": str(f.sha256),
                "size": f.size,
                "annotations": {ANNOTATION_TITLE: f.path},
            }
            for f in native.files
        ],
        "annotations": annotations,
    }
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def from_oci_manifest(
    manifest: Manifest,
    name: str,
    version: str,
    blake3_of: Callable[[Digest], Digest | None] | None = None,
) -> NativeManifest:
    """The native view of an OCI image manifest.

    A native artifact yields the manifest it embeds — its identity, whatever
    repository or tag it was copied to — after checking that the config and
    layers still agree with it. Anything else (oras, a hand-made artifact)
    yields a *synthesised* view named ``name``/``version``: one file per layer
    that has an ``org.opencontainers.image.title``, blake3 digests from
    ``blake3_of`` (the blob store knows them) where it has them, ``created``
    from the ``org.opencontainers.image.created`` annotation, and the other
    annotations as labels.
    """
    if manifest.media_type in mediatype.INDEX_TYPES or manifest.manifests:
        raise NativeManifestInvalid(
            "mediaType", "is an index, which has no files", manifest.media_type
        )
    embedded = manifest.annotations.get(ANNOTATION_MANIFEST)
    if embedded is not None:
        return _embedded(manifest, embedded)
    if manifest.artifact_type == NATIVE_ARTIFACT_TYPE:
        raise NativeManifestInvalid(f"annotations[{ANNOTATION_MANIFEST!r}]", "is required")
    files = []
    for i, layer in enumerate(manifest.layers):
        path = layer.annotations.get(ANNOTATION_TITLE)
        if path is None:
            continue  # as oras pull does: a layer without a title is no file
        with within(f"layers[{i}]"):
            sha256 = digest_field("digest", layer.digest, "sha256")
            blake3 = None if blake3_of is None else blake3_of(sha256)
            files.append(NativeFile(path, layer.size, layer.media_type, sha256, blake3))
    labels = dict(manifest.annotations)
    created = _lenient_time(labels.get(ANNOTATION_CREATED))
    if created is not None:
        del labels[ANNOTATION_CREATED]
    return NativeManifest(name, version, tuple(files), created, labels=labels, synthesised=True)


def _lenient_time(value: str | None) -> datetime | None:
    """A third party's RFC 3339 time, any offset; None when it is not one."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


def _embedded(manifest: Manifest, embedded: str) -> NativeManifest:
    """The embedded native manifest, if the OCI manifest around it still agrees with it."""
    name = f"annotations[{ANNOTATION_MANIFEST!r}]"
    try:
        body = base64.b64decode(embedded, validate=True)
    except (binascii.Error, ValueError):
        raise NativeManifestInvalid(name, "is not base64", embedded) from None
    with within(name):
        native = decode_cbor(body)
    if manifest.artifact_type != NATIVE_ARTIFACT_TYPE:
        raise NativeManifestInvalid(
            "artifactType", f"must be {NATIVE_ARTIFACT_TYPE}", manifest.artifact_type
        )
    config = manifest.config
    described = None if config is None else (config.media_type, config.digest, config.size)
    if described != (NATIVE_MANIFEST_CBOR, Digest.compute(body), len(body)):
        raise NativeManifestInvalid(
            "config", "is not a descriptor of the embedded manifest", described
        )
    layers = [
        (x.media_type, x.digest, x.size, x.annotations.get(ANNOTATION_TITLE))
        for x in manifest.layers
    ]
    files = [(f.media_type, f.sha256, f.size, f.path) for f in native.files]
    if layers != files:
        raise NativeManifestInvalid("layers", "do not match the embedded manifest's files")
    return native
