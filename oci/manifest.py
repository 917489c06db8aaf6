"""Manifests: what a pushed manifest is, what it points at, and whether it is valid.

Strategy. The registry stores a manifest byte for byte and never re-serialises
it, so parsing only has to answer three questions: is the body acceptable,
which descriptors does it reference (for MANIFEST_BLOB_UNKNOWN checks and
garbage collection), and what are its subject and artifactType (for the
referrers API). Unknown fields are ignored, as image-spec requires
("Implementations MUST NOT generate an error if they encounter an unknown
property"), and every rejection is MANIFEST_INVALID naming the field.

Which schema applies is decided from the body's ``mediaType`` and the
request's Content-Type:

* both present: they must agree (distribution-spec, "Pushing manifests": "If a
  manifest includes a `mediaType` field, clients MUST set the `Content-Type`
  header to the value specified by the `mediaType` field");
* one present: that one;
* the type is not one we know, or neither is present: the body's shape decides,
  as real registries do for clients that push helm charts or signatures with
  their own Content-Type: ``manifests`` means an index, ``config`` and
  ``layers`` an image manifest, ``blobs`` an artifact manifest. The declared
  type (if any) is kept as the manifest's media type, so it is served as pushed.

https://github.com/opencontainers/distribution-spec/blob/v1.1.0/spec.md#pushing-manifests
https://github.com/opencontainers/image-spec/blob/v1.1.0/manifest.md
https://github.com/opencontainers/image-spec/blob/v1.1.0/image-index.md
https://github.com/distribution/distribution/blob/v2.8.2/docs/spec/manifest-v2-2.md
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal

from oci import mediatype
from oci.digest import Digest
from oci.errors import DigestInvalid, ManifestInvalid

__all__ = ["Descriptor", "Manifest", "parse_manifest"]

_Kind = Literal["image", "index", "artifact"]

_KIND_OF: dict[str, _Kind] = {
    mediatype.OCI_MANIFEST: "image",
    mediatype.DOCKER_MANIFEST: "image",
    mediatype.OCI_INDEX: "index",
    mediatype.DOCKER_MANIFEST_LIST: "index",
    mediatype.OCI_ARTIFACT_MANIFEST: "artifact",
}
_DEFAULT_TYPE: dict[_Kind, str] = {
    "image": mediatype.OCI_MANIFEST,
    "index": mediatype.OCI_INDEX,
    "artifact": mediatype.OCI_ARTIFACT_MANIFEST,
}
_SCHEMA1 = frozenset({mediatype.DOCKER_SCHEMA1_MANIFEST, mediatype.DOCKER_SCHEMA1_SIGNED_MANIFEST})
_EMPTY: Mapping[str, str] = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class Descriptor:
    """A typed, sized pointer to content (image-spec descriptor.md).

    https://github.com/opencontainers/image-spec/blob/v1.1.0/descriptor.md
    """

    media_type: str
    digest: Digest
    size: int
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    artifact_type: str | None = None
    platform: Mapping[str, Any] | None = None
    urls: tuple[str, ...] = ()

    def __hash__(self) -> int:
        # The mappings are not hashable; equal descriptors agree on these three.
        return hash((self.media_type, self.digest, self.size))

    @property
    def external(self) -> bool:
        """A non-distributable layer with ``urls``: its bytes live elsewhere, and a
        registry accepts the manifest without them (distribution's "foreign layers")."""
        return bool(self.urls) and self.media_type in mediatype.NONDISTRIBUTABLE_LAYERS


@dataclass(frozen=True, slots=True)
class Manifest:
    """The parts of a manifest the registry acts on; the bytes themselves are stored as sent."""

    media_type: str
    config: Descriptor | None = None
    layers: tuple[Descriptor, ...] = ()
    manifests: tuple[Descriptor, ...] = ()
    subject: Descriptor | None = None
    # Already the effective type: the manifest's artifactType, else (image
    # manifests only) its config's mediaType. distribution-spec, "Listing
    # Referrers": "If the artifactType is empty or missing in the image manifest,
    # the value of artifactType MUST be set to the config descriptor mediaType value."
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=lambda: _EMPTY)

    def references(self) -> tuple[Descriptor, ...]:
        """Everything this manifest needs present to be pulled: config, layers, child
        manifests. The subject is excluded: a referrer may be pushed before its
        subject (distribution-spec: the registry MUST accept such a manifest)."""
        head = (self.config,) if self.config is not None else ()
        return head + self.layers + self.manifests

    def __hash__(self) -> int:
        # annotations are a mapping, so the generated hash would fail; equal
        # manifests agree on these fields, which keeps hash consistent with ==.
        return hash((self.media_type, self.config, self.layers, self.manifests, self.subject))


def parse_manifest(body: bytes, content_type: str | None) -> Manifest:
    """Validate a pushed manifest; raises ManifestInvalid naming what is wrong."""
    document = _load_json(body)
    declared_body = document.get("mediaType")
    if declared_body is not None and not isinstance(declared_body, str):
        raise ManifestInvalid(
            f"mediaType must be a string, got {declared_body!r}",
            detail={"field": "mediaType", "value": declared_body},
        )
    declared_header = mediatype.base_type(content_type)
    if (
        declared_body is not None
        and declared_header is not None
        and declared_body.lower() != declared_header
    ):
        raise ManifestInvalid(
            f"manifest mediaType {declared_body!r} does not match Content-Type {content_type!r}",
            detail={"mediaType": declared_body, "contentType": content_type},
        )
    declared = declared_body if declared_body is not None else declared_header
    version = document.get("schemaVersion")
    if declared in _SCHEMA1 or (type(version) is int and version == 1):
        raise ManifestInvalid(
            "Docker schema1 manifests are not supported; push schema2 or OCI",
            detail={"mediaType": declared, "schemaVersion": document.get("schemaVersion")},
        )
    kind = _KIND_OF.get(declared) if declared is not None else None
    if kind is None:
        kind = _detect(document, declared)
    media_type = declared if declared is not None else _DEFAULT_TYPE[kind]
    fields = _Fields(document)
    if kind == "index":
        return _index(media_type, fields)
    if kind == "artifact":
        return _artifact(media_type, fields)
    return _image(media_type, fields)


def _load_json(body: bytes) -> dict[str, Any]:
    def reject_constant(name: str) -> Any:
        # Python accepts NaN and Infinity; JSON (RFC 8259) does not.
        raise ValueError(f"{name} is not JSON")

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        # Two parsers reading different values for one key is how a signed
        # manifest could be read one way and pulled another; refuse the ambiguity.
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise ValueError(f"duplicate key {key!r}")
            out[key] = value
        return out

    # RFC 8259 §8.1: networked JSON is UTF-8 without a byte order mark. Given
    # bytes, json.loads would also read UTF-16/32 and skip a BOM, which Go's
    # encoding/json (most clients) does not: decode strictly first.
    if body.startswith(b"\xef\xbb\xbf"):
        raise ManifestInvalid(
            "manifest starts with a byte order mark (RFC 8259 §8.1: JSON has none)",
            detail={"reason": "byte order mark"},
        )
    try:
        text = body.decode("utf-8")
        document = json.loads(text, object_pairs_hook=no_duplicates, parse_constant=reject_constant)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ManifestInvalid(
            f"manifest is not valid JSON: {exc}", detail={"reason": str(exc)}
        ) from None
    if not isinstance(document, dict):
        raise ManifestInvalid(
            f"manifest must be a JSON object, got {type(document).__name__}",
            detail={"reason": "not an object"},
        )
    return document


def _detect(document: Mapping[str, Any], declared: str | None) -> _Kind:
    if "manifests" in document:
        return "index"
    if "config" in document and "layers" in document:
        return "image"
    if "blobs" in document:
        return "artifact"
    what = f"media type {declared!r}" if declared is not None else "no media type"
    raise ManifestInvalid(
        f"unsupported manifest: {what}, and the body has neither 'manifests' "
        "nor 'config' and 'layers'",
        detail={"mediaType": declared},
    )


def _image(media_type: str, fields: _Fields) -> Manifest:
    # image-spec manifest.md: schemaVersion "REQUIRED ... MUST be 2"; config and
    # layers are REQUIRED (layers may be empty for artifacts).
    fields.schema_version(required=True)
    config = fields.descriptor("config", required=True)
    assert config is not None  # required=True
    artifact_type = fields.artifact_type()
    return Manifest(
        media_type=media_type,
        config=config,
        layers=fields.descriptors("layers", required=True),
        subject=fields.descriptor("subject"),
        artifact_type=artifact_type if artifact_type is not None else config.media_type,
        annotations=fields.annotations(),
    )


def _index(media_type: str, fields: _Fields) -> Manifest:
    # image-index.md: schemaVersion REQUIRED, 2; manifests REQUIRED. An index
    # has no config, so artifactType is only ever its own field.
    fields.schema_version(required=True)
    return Manifest(
        media_type=media_type,
        manifests=fields.descriptors("manifests", required=True),
        subject=fields.descriptor("subject"),
        artifact_type=fields.artifact_type(),
        annotations=fields.annotations(),
    )


def _artifact(media_type: str, fields: _Fields) -> Manifest:
    # The v1.1-rc artifact manifest: no schemaVersion field (if one is sent it
    # must still be 2), artifactType REQUIRED, blobs OPTIONAL.
    # https://github.com/opencontainers/image-spec/blob/v1.1.0-rc2/artifact.md
    fields.schema_version(required=False)
    artifact_type = fields.artifact_type()
    if artifact_type is None:
        raise ManifestInvalid(
            "artifact manifest has no artifactType", detail={"field": "artifactType"}
        )
    return Manifest(
        media_type=media_type,
        layers=fields.descriptors("blobs", required=False),
        subject=fields.descriptor("subject"),
        artifact_type=artifact_type,
        annotations=fields.annotations(),
    )


class _Fields:
    """Typed access to one JSON object's fields; every failure names its path."""

    def __init__(self, document: Mapping[str, Any], path: str = "") -> None:
        self._doc = document
        self._path = path

    def _name(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def invalid(self, key: str, problem: str, value: Any) -> ManifestInvalid:
        name = self._name(key)
        shown = repr(value)
        if len(shown) > 200:
            shown = shown[:200] + "..."
        return ManifestInvalid(
            f"{name}: {problem}, got {shown}", detail={"field": name, "value": shown}
        )

    def schema_version(self, *, required: bool) -> None:
        if "schemaVersion" not in self._doc:
            if required:
                raise ManifestInvalid(
                    "schemaVersion is missing; it must be 2", detail={"field": "schemaVersion"}
                )
            return
        value = self._doc["schemaVersion"]
        if type(value) is not int or value != 2:
            raise self.invalid("schemaVersion", "must be the integer 2", value)

    def media_type(self, key: str, *, required: bool) -> str | None:
        value = self._doc.get(key)
        if value is None or value == "":
            # image-spec treats an empty artifactType as missing.
            if required:
                raise ManifestInvalid(
                    f"{self._name(key)} is missing", detail={"field": self._name(key)}
                )
            return None
        if not mediatype.is_valid(value):
            raise self.invalid(key, "not an RFC 6838 media type", value)
        assert isinstance(value, str)
        return value

    def artifact_type(self) -> str | None:
        return self.media_type("artifactType", required=False)

    def annotations(self) -> Mapping[str, str]:
        # descriptor.md / annotations.md: "a key-value map where both the key and
        # value MUST be strings".
        value = self._doc.get("annotations")
        if value is None:
            return _EMPTY
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self.invalid("annotations", "must be an object of strings", value)
        return MappingProxyType(dict(value))

    def descriptor(self, key: str, *, required: bool = False) -> Descriptor | None:
        value = self._doc.get(key)
        if value is None:
            if required:
                raise ManifestInvalid(
                    f"{self._name(key)} is missing", detail={"field": self._name(key)}
                )
            return None
        return _descriptor(value, self._name(key))

    def descriptors(self, key: str, *, required: bool) -> tuple[Descriptor, ...]:
        value = self._doc.get(key)
        if value is None:
            if required:
                raise ManifestInvalid(
                    f"{self._name(key)} is missing", detail={"field": self._name(key)}
                )
            return ()
        if not isinstance(value, list):
            raise self.invalid(key, "must be an array of descriptors", value)
        return tuple(_descriptor(item, f"{self._name(key)}[{i}]") for i, item in enumerate(value))


def _descriptor(value: Any, path: str) -> Descriptor:
    """One descriptor, per image-spec descriptor.md "Properties"."""
    if not isinstance(value, dict):
        raise ManifestInvalid(
            f"{path}: a descriptor must be an object, got {type(value).__name__}",
            detail={"field": path},
        )
    fields = _Fields(value, path)
    media_type = fields.media_type("mediaType", required=True)
    assert media_type is not None  # required=True
    raw_digest = value.get("digest")
    if not isinstance(raw_digest, str):
        raise fields.invalid("digest", "must be an algorithm:hex string", raw_digest)
    try:
        # distribution answers a malformed digest inside a manifest with
        # MANIFEST_INVALID, not DIGEST_INVALID: the manifest is what is wrong.
        digest = Digest.parse(raw_digest)
    except DigestInvalid as exc:
        raise fields.invalid("digest", exc.message, raw_digest) from None
    size = value.get("size")
    # "size int64 ... REQUIRED"; bool is an int subclass in Python, not in JSON.
    if type(size) is not int or size < 0 or size > 2**63 - 1:
        raise fields.invalid("size", "must be a non-negative integer", size)
    urls = value.get("urls", [])
    if not isinstance(urls, list) or not all(isinstance(u, str) for u in urls):
        raise fields.invalid("urls", "must be an array of strings", urls)
    if "data" in value:
        _check_data(fields, value["data"], digest, size)
    return Descriptor(
        media_type=media_type,
        digest=digest,
        size=size,
        annotations=fields.annotations(),
        artifact_type=fields.artifact_type(),
        platform=_platform(fields, value.get("platform")),
        urls=tuple(urls),
    )


def _platform(fields: _Fields, value: Any) -> Mapping[str, Any] | None:
    # image-index.md: platform.architecture and platform.os are REQUIRED strings.
    if value is None:
        return None
    if not isinstance(value, dict) or not all(
        isinstance(value.get(k), str) for k in ("architecture", "os")
    ):
        raise fields.invalid(
            "platform", "must be an object with string 'architecture' and 'os'", value
        )
    return MappingProxyType(dict(value))


def _check_data(fields: _Fields, data: Any, digest: Digest, size: int) -> None:
    # descriptor.md: "data ... MUST conform to the Base 64 encoding, as defined in
    # RFC 4648. The decoded data MUST be identical to the referenced content".
    # Embedded bytes are inside the manifest, so checking them costs little.
    try:
        decoded = base64.b64decode(data, validate=True) if isinstance(data, str) else None
    except binascii.Error:
        decoded = None
    if decoded is None:
        raise fields.invalid("data", "must be RFC 4648 base64", data)
    if len(decoded) != size or Digest.compute(decoded, digest.algorithm) != digest:
        raise fields.invalid("data", f"does not match size {size} and digest {digest}", data)
